"""Audio features: the shipped Praat/signal descriptors (default) or openSMILE eGeMAPS on raw wav files.

Every function returns per-utterance raw descriptors aligned to ``dialogues`` plus a "missing" flag;
``fit_scaling`` / ``apply_scaling`` then impute and scales with training-split statistics only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from erc.data.datasets import Dialogue, load_dialogues
from erc.runtime.errors import InputError

PRAAT_COLUMNS = ["duration", "avg_intensity", "intensity_variation", "avg_pitch", "pitch_std",
                 "pitch_range", "articulation_rate", "mean_hnr"]
SIGNAL_COLUMNS = ["sig_mean", "sig_std", "rmse_mean", "rmse_std", "silence", "harmonic",
                  "auto_corr_max", "auto_corr_std"]
# Positive, heavy-tailed descriptors are scaled in log space.
LOG_COLUMNS = {"duration", "sig_mean", "sig_std", "rmse_mean", "rmse_std", "auto_corr_max", "auto_corr_std"}
MELD_PRAAT = {"train": "voiceerc_meld_train_praat_features.csv", "valid": "voiceerc_meld_dev_praat_features.csv",
              "test": "voiceerc_meld_test_praat_features.csv"}
MELD_WAV_SPLIT = {"train": "train", "valid": "dev", "test": "test"}


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: audio descriptor file not found")
    table = pd.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    return table


def _gather(dialogues: list[Dialogue], lookup: dict, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``lookup`` (key -> vector) in dialogue order; absent keys give NaN rows and missing=True."""
    keys = [k for d in dialogues for k in d.utterance_keys]
    values = np.full((len(keys), width), np.nan, dtype=np.float64)
    missing = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        row = lookup.get(key)
        if row is None:
            missing[i] = True
        else:
            values[i] = row
    return values, missing


def praat_iemocap(dialogues: list[Dialogue], found_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """16 descriptors: 8 Praat (VoiceERC) + 8 signal ones (MrCrowbar), keyed by IEMOCAP utterance id."""
    praat = _read_csv(found_dir / "voiceerc_iemocap_praat_features.csv", PRAAT_COLUMNS)
    index = _read_csv(found_dir / "voiceerc_iemocap_full_dataset.csv", ["path"])
    if len(praat) != len(index):
        raise InputError(f"{found_dir / 'voiceerc_iemocap_praat_features.csv'}: {len(praat)} rows, "
                         f"but voiceerc_iemocap_full_dataset.csv has {len(index)}")
    utt_ids = index["path"].map(lambda p: Path(p).stem)
    praat_lookup = dict(zip(utt_ids, praat[PRAAT_COLUMNS].to_numpy(np.float64)))
    # The signal file also has an emotion `label` column: it is never read.
    signal = _read_csv(found_dir / "mrcrowbar_iemocap_audio_features_8dim.csv", ["wav_file"] + SIGNAL_COLUMNS)
    signal_lookup = dict(zip(signal["wav_file"], signal[SIGNAL_COLUMNS].to_numpy(np.float64)))
    a, miss_a = _gather(dialogues, praat_lookup, len(PRAAT_COLUMNS))
    b, miss_b = _gather(dialogues, signal_lookup, len(SIGNAL_COLUMNS))
    return np.concatenate([a, b], axis=1), miss_a | miss_b, PRAAT_COLUMNS + SIGNAL_COLUMNS


def meld_praat_tables(found_dir: Path) -> dict[str, pd.DataFrame]:
    """Per split, the Praat table with integer ``dialogue`` and ``utterance`` columns parsed from the file name."""
    tables = {}
    for split, name in MELD_PRAAT.items():
        table = _read_csv(found_dir / name, ["filename"] + PRAAT_COLUMNS)
        parts = table["filename"].str.extract(r"dia(\d+)_utt(\d+)\.wav")
        if parts.isna().any().any():
            raise InputError(f"{found_dir / name}: file names must look like dia<D>_utt<U>.wav")
        tables[split] = table.assign(dialogue=parts[0].astype(int), utterance=parts[1].astype(int))
    return tables


def praat_meld(dialogues: list[Dialogue], found_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """8 Praat descriptors joined on (split, Dialogue_ID, Utterance_ID); rows absent from the CSVs are ignored."""
    tables = meld_praat_tables(found_dir)
    parts = []
    for split, table in tables.items():
        lookup = dict(zip(zip(table["dialogue"], table["utterance"]), table[PRAAT_COLUMNS].to_numpy(np.float64)))
        parts.append(_gather([d for d in dialogues if d.split == split], lookup, len(PRAAT_COLUMNS)))
    # dialogues are in split order, so concatenating per split keeps dialogue order
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), list(PRAAT_COLUMNS)


def wav_path(dataset: str, wav_dir: Path, dialogue: Dialogue, position: int) -> Path:
    key = dialogue.utterance_keys[position]
    if dataset == "iemocap":
        return wav_dir / f"{key}.wav"
    return wav_dir / MELD_WAV_SPLIT[dialogue.split] / f"dia{key[0]}_utt{key[1]}.wav"


def opensmile_features(dataset: str, dialogues: list[Dialogue], wav_dir: str | None):
    """eGeMAPSv02 functionals (88) per utterance; a wav that does not exist is flagged missing."""
    wav_dir = Path(wav_dir)  # set: the params schema requires it for audio=opensmile
    if not wav_dir.is_dir():
        raise InputError(f"{wav_dir}: wav folder not found (features.wav_dirs.{dataset})")
    try:
        import opensmile
    except ImportError as err:
        raise InputError("features.audio=opensmile needs the package opensmile: pip install -r requirements-optional.txt") from err
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    rows, missing = [], []
    for dialogue in dialogues:
        for position in range(len(dialogue)):
            path = wav_path(dataset, wav_dir, dialogue, position)
            missing.append(not path.is_file())
            rows.append(smile.process_file(str(path)).to_numpy()[0] if path.is_file() else None)
    width = len(smile.feature_names)
    values = np.stack([r if r is not None else np.full(width, np.nan) for r in rows]).astype(np.float64)
    return values, np.array(missing), list(smile.feature_names)


def shipped_descriptors(dataset: str, dialogues: list[Dialogue], found_dir: Path):
    """The shipped descriptors of ``dialogues`` (``features.audio: praat``): IEMOCAP 16, MELD 8 columns."""
    reader = praat_iemocap if dataset == "iemocap" else praat_meld
    return reader(dialogues, Path(found_dir))


def shipped_scaling(dataset: str, raw_dir: str | Path = "data/raw") -> dict:
    """The statistics extraction scales the shipped descriptors with (training split only): what a measured wav
    must be scaled with to sit where the model's training inputs sat."""
    dialogues = load_dialogues(dataset, raw_dir)
    values, _, columns = shipped_descriptors(dataset, dialogues, Path(raw_dir) / "found")
    train_rows = np.concatenate([[d.split == "train"] * len(d) for d in dialogues])
    return fit_scaling(values, train_rows, columns)


def fit_scaling(values: np.ndarray, train_rows: np.ndarray, columns: list[str]) -> dict:
    """Training-split statistics for ``apply_scaling``: log-scaled columns' medians (for NaN), means and stds."""
    logged = _log_columns(values, columns)
    train = logged[train_rows]
    median = np.nanmedian(train, axis=0)
    if np.isnan(median).any():
        bad = [columns[j] for j in np.flatnonzero(np.isnan(median))]
        raise InputError(f"audio descriptor columns {bad} have no value in the training split")
    train = np.where(np.isnan(train), median, train)
    return {"columns": list(columns), "median": median, "mean": train.mean(0), "std": train.std(0)}


def apply_scaling(values: np.ndarray, scaling: dict) -> np.ndarray:
    """Log-scale heavy-tailed columns, impute NaN with the training median, z-score, clip to ±5."""
    logged = _log_columns(values, scaling["columns"])
    logged = np.where(np.isnan(logged), scaling["median"], logged)
    std = scaling["std"]
    return np.clip((logged - scaling["mean"]) / np.where(std > 0, std, 1.0), -5, 5).astype(np.float32)


def _log_columns(values: np.ndarray, columns: list[str]) -> np.ndarray:
    values = np.array(values, dtype=np.float64)
    for j, name in enumerate(columns):
        if name in LOG_COLUMNS:
            values[:, j] = np.log(np.clip(values[:, j], 1e-6, None))
    return values
