"""The canonical per-dataset feature file that every later stage reads.

Layout (a dict saved with torch): utterances are stored flat, dialogue after dialogue, in conversation order.
  dataset, classes, n_speakers, sources{text,audio,visual}
  dialogue_ids [D], splits [D], lengths LongTensor (D,)
  speakers LongTensor (N,), labels LongTensor (N,), sentences [N]
  features {modality: FloatTensor}: text (N, layers, dim); audio (N, dim) whose last column is the
  "audio missing" flag; visual (N, dim). Absent modalities are left out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from erc import audio as audio_lib
from erc import text as text_lib
from erc.datasets import CLASSES, N_SPEAKERS, SPLITS, Dialogue, load_dialogues
from erc.feature_files import read_feature_file
from erc.io import InputError, load_torch, save_torch
from erc.params import choice, get, positive

MODALITIES = ("text", "audio", "visual")
SOURCES = {"text": ("minilm", "mpnet", "file", "none"), "audio": ("praat", "opensmile", "file", "none"),
           "visual": ("file", "none")}


def align_file_features(per_dialogue: dict[str, np.ndarray], dialogues: list[Dialogue], path) -> np.ndarray:
    """Stack a file's per-dialogue arrays in our dialogue order; refuse the first dialogue that disagrees."""
    rows = []
    for d in dialogues:
        array = per_dialogue.get(d.id)
        if array is None:
            raise InputError(f"{path}: dialogue {d.id} is missing")
        if len(array) != len(d):
            raise InputError(f"{path}: dialogue {d.id} has {len(array)} utterances, the metadata has {len(d)}")
        if rows and array.shape[1:] != rows[0].shape[1:]:
            raise InputError(f"{path}: dialogue {d.id} features have shape {array.shape[1:]}, expected {rows[0].shape[1:]}")
        rows.append(array)
    return np.concatenate(rows).astype(np.float32)


def check_finite(name: str, array: np.ndarray, dialogues: list[Dialogue], where) -> None:
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        ends = np.cumsum([len(d) for d in dialogues])
        dialogue = dialogues[int(np.searchsorted(ends, first, side="right"))]
        raise InputError(f"{where}: {name} features hold NaN or inf (first in dialogue {dialogue.id})")


def extract(dataset: str, params: dict, raw_dir: str | Path = "data/raw", dialogues=None, progress=True) -> dict:
    """Build the canonical feature dict for ``dataset`` from the sources chosen in ``params['features']``."""
    raw_dir = Path(raw_dir)
    sources = {m: choice(params, f"features.{m}", SOURCES[m]) for m in MODALITIES}
    if all(s == "none" for s in sources.values()):
        raise InputError("params.yaml: 'features' selects no modality (text, audio and visual are all none)")
    dialogues = dialogues if dialogues is not None else load_dialogues(dataset, raw_dir)
    for d in dialogues:
        if len(d) == 0:
            raise InputError(f"{dataset}: dialogue {d.id} has no utterances")
    train_rows = np.concatenate([[d.split == "train"] * len(d) for d in dialogues])
    features = {}
    for modality, source in sources.items():
        if source == "none":
            continue
        if source == "file":
            key = f"features.files.{dataset}.{modality}"
            path = get(params, key)
            if not path:
                raise InputError(f"params.yaml: '{key}' must name a feature file when features.{modality}=file")
            array = align_file_features(read_feature_file(path, modality), dialogues, path)
            where = path
        elif modality == "text":
            encoder = text_lib.encoder_for(source)
            sentences = [text_lib.repair_cp1252(s) for d in dialogues for s in d.sentences]
            array = encoder.encode(sentences, int(positive(params, "features.text_batch_size")), progress)
            where = f"{source} text encoder"
        else:
            if source == "praat":
                reader = audio_lib.praat_iemocap if dataset == "iemocap" else audio_lib.praat_meld
                values, missing, columns = reader(dialogues, raw_dir / "found")
            else:
                values, missing, columns = audio_lib.opensmile_features(
                    dataset, dialogues, get(params, f"features.wav_dirs.{dataset}"))
            scaled = audio_lib.standardise(values, train_rows, columns)
            array = np.concatenate([scaled, missing[:, None].astype(np.float32)], axis=1)
            where = f"{source} audio"
        if modality == "text" and array.ndim == 2:
            array = array[:, None, :]  # a single text vector is one "layer"
        check_finite(modality, array, dialogues, where)
        features[modality] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return {
        "dataset": dataset,
        "classes": CLASSES[dataset],
        "n_speakers": N_SPEAKERS[dataset],
        "sources": sources,
        "dialogue_ids": [d.id for d in dialogues],
        "splits": [d.split for d in dialogues],
        "lengths": torch.tensor([len(d) for d in dialogues]),
        "speakers": torch.tensor([s for d in dialogues for s in d.speakers]),
        "labels": torch.tensor([y for d in dialogues for y in d.labels]),
        "sentences": [s for d in dialogues for s in d.sentences],
        "features": features,
    }


REQUIRED = ("dataset", "classes", "n_speakers", "dialogue_ids", "splits", "lengths", "speakers", "labels", "features")


def validate(feats: dict, where) -> dict:
    missing = [k for k in REQUIRED if k not in feats]
    if missing:
        raise InputError(f"{where}: not a feature file (missing keys {missing})")
    n = int(feats["lengths"].sum())
    if (feats["lengths"] <= 0).any():
        raise InputError(f"{where}: dialogue {feats['dialogue_ids'][int((feats['lengths'] <= 0).nonzero()[0])]} is empty")
    for name, tensor in [("labels", feats["labels"]), ("speakers", feats["speakers"])] + list(feats["features"].items()):
        if len(tensor) != n:
            raise InputError(f"{where}: '{name}' has {len(tensor)} rows, the dialogues hold {n} utterances")
    if not feats["features"]:
        raise InputError(f"{where}: no modality present")
    bad_split = set(feats["splits"]) - set(SPLITS)
    if bad_split:
        raise InputError(f"{where}: unknown split names {sorted(bad_split)}")
    return feats


def save_features(feats: dict, path) -> None:
    save_torch(validate(feats, path), path)


def load_features(path, hide_test_labels: bool = True) -> dict:
    """Read a feature file; test labels become -1 unless the caller is the evaluation stage."""
    feats = validate(load_torch(path, "feature file"), path)
    if hide_test_labels:
        feats["labels"] = feats["labels"].clone()
        feats["labels"][utterance_split(feats) == SPLITS.index("test")] = -1
    return feats


def utterance_split(feats: dict) -> torch.Tensor:
    """(N,) split index (0 train, 1 valid, 2 test) per utterance."""
    per_dialogue = torch.tensor([SPLITS.index(s) for s in feats["splits"]])
    return per_dialogue.repeat_interleave(feats["lengths"])
