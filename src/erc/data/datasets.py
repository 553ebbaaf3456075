"""The real IEMOCAP and MELD metadata (labels, speakers, transcripts) and their standard splits."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from erc.runtime.errors import InputError
from erc.runtime.files import load_pickle

CLASSES = {
    "iemocap": ["hap", "sad", "neu", "ang", "exc", "fru"],
    "meld": ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"],
}
N_SPEAKERS = {"iemocap": 2, "meld": 9}
SPLITS = ("train", "valid", "test")
# MELD dialogue ids in COSMIC's meld.pkl: train = CSV id, dev = CSV id + 1039, test = CSV id + 1153.
MELD_ID_OFFSET = {"train": 0, "valid": 1039, "test": 1153}
MELD_CSV = {"train": "train_sent_emo.csv", "valid": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}


@dataclass
class Dialogue:
    id: str
    split: str
    speakers: list[int]
    labels: list[int]
    sentences: list[str]
    utterance_keys: list = field(default_factory=list)  # IEMOCAP utterance ids; MELD (csv dialogue, utterance) ids

    def __len__(self) -> int:
        return len(self.labels)


# ---------------------------------------------------------------- the one place test labels are hidden
# Every stage but evaluate holds test labels as -1 (unlabelled): the dialogues of finetune_text and the probes
# through ``without_test_labels``, the feature file of every later stage through ``hide_test_labels``
# (``erc.data.feature_file.load_features``).

def without_test_labels(dialogues: list[Dialogue]) -> list[Dialogue]:
    """Copies of ``dialogues`` whose test dialogues' labels are all -1."""
    return [dataclasses.replace(d, labels=[-1] * len(d)) if d.split == "test" else d for d in dialogues]


def hide_test_labels(labels, utterance_split):
    """A copy of the (N,) label tensor with the test utterances' labels -1 (``utterance_split``: (N,) split
    indices, 0 train, 1 valid, 2 test)."""
    labels = labels.clone()
    labels[utterance_split == SPLITS.index("test")] = -1
    return labels


def session_of(dialogue_id: str) -> str:
    """IEMOCAP's recording session (``Ses01`` of ``Ses01F_impro01``): its two speakers appear in no other session."""
    return dialogue_id[:5]


def folds_of(dialogue_ids: list[str], k: int, seed: int, by: str = "dialogue") -> dict[str, int]:
    """Training dialogue -> fold in 0..k-1: a seeded shuffle dealt round-robin (disjoint, covering, sizes ±1).

    ``by="session"`` deals IEMOCAP's sessions instead of dialogues, so that a fold encoder never saw the speakers of
    the utterances it makes features for (as the test speakers are unseen)."""
    if by not in ("dialogue", "session"):
        raise ValueError(f"folds by {by!r}: dialogue or session")
    if by == "dialogue":
        order = np.random.default_rng(seed).permutation(len(dialogue_ids))
        return {dialogue_ids[i]: rank % k for rank, i in enumerate(order)}
    sessions = sorted({session_of(d) for d in dialogue_ids})
    if len(sessions) < k:
        raise InputError(f"finetune.folds: {k} folds by session, but the training dialogues come from "
                         f"{len(sessions)} sessions")
    fold = {sessions[i]: rank % k for rank, i in enumerate(np.random.default_rng(seed).permutation(len(sessions)))}
    return {d: fold[session_of(d)] for d in dialogue_ids}


def _read_pickle(path: Path, n_items: int):
    obj = load_pickle(path, "metadata pickle")
    if not isinstance(obj, (list, tuple)) or len(obj) != n_items:
        raise InputError(f"{path}: expected a list of {n_items} items, got {type(obj).__name__}")
    n_dicts = n_items - 3  # per-dialogue dicts, then the train / test / valid id lists
    if not all(isinstance(x, dict) for x in obj[:n_dicts]) or not all(isinstance(x, (list, tuple)) for x in obj[n_dicts:]):
        raise InputError(f"{path}: expected {n_dicts} dicts keyed by dialogue id, then the train, test and valid id lists")
    return obj


def split_ids(dataset: str, raw_dir: str | Path = "data/raw") -> dict[str, list]:
    """The one owner of the splits: IEMOCAP 108/12/31 (COSMIC), MELD 1038/114/280 (official)."""
    raw_dir = Path(raw_dir)
    if dataset == "iemocap":
        _, _, _, train, test, valid = _read_pickle(raw_dir / "iemocap.pkl", 6)
    elif dataset == "meld":
        _, _, _, _, train, test, valid = _read_pickle(raw_dir / "meld.pkl", 7)
    else:
        raise InputError(f"unknown dataset {dataset!r}")
    return {"train": list(train), "valid": list(valid), "test": list(test)}


def check_listed(path: Path, splits: dict, *fields: dict) -> None:
    """Every dialogue of the splits has an entry in every per-dialogue field of the pickle."""
    for split, ids in splits.items():
        for vid in ids:
            if not all(vid in field for field in fields):
                raise InputError(f"{path}: {split} dialogue {vid!r} is missing from the per-dialogue fields")


def load_dialogues(dataset: str, raw_dir: str | Path = "data/raw") -> list[Dialogue]:
    """All dialogues of a dataset, in split order (train, valid, test), utterances in conversation order.

    Dialogues with no utterances (MELD train dialogue 60 is absent from the pickle) are skipped knowingly.
    """
    raw_dir = Path(raw_dir)
    splits = split_ids(dataset, raw_dir)
    dialogues = []
    if dataset == "iemocap":
        speakers, labels, sentences, *_ = _read_pickle(raw_dir / "iemocap.pkl", 6)
        check_listed(raw_dir / "iemocap.pkl", splits, speakers, labels, sentences)
        id_map_path = raw_dir / "found" / "iemocap_standard_order_utterance_ids.json"
        if not id_map_path.is_file():
            raise InputError(f"{id_map_path}: utterance-id map not found")
        try:
            utterance_ids = json.loads(id_map_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{id_map_path}: not valid JSON ({err})") from None
        if not isinstance(utterance_ids, dict):
            raise InputError(f"{id_map_path}: expected a mapping of dialogue id -> utterance ids")
        for split in SPLITS:
            for vid in splits[split]:
                if vid not in utterance_ids or len(utterance_ids[vid]) != len(labels[vid]):
                    raise InputError(f"{id_map_path}: no utterance ids of the right length for dialogue {vid}")
                dialogues.append(Dialogue(
                    vid, split, [0 if s == "M" else 1 for s in speakers[vid]], list(labels[vid]),
                    list(sentences[vid]), list(utterance_ids[vid])))
    else:
        speakers, labels, _, sentences, *_ = _read_pickle(raw_dir / "meld.pkl", 7)
        check_listed(raw_dir / "meld.pkl", splits, speakers, labels, sentences)
        for split in SPLITS:
            csv_path = raw_dir / "MELD" / MELD_CSV[split]
            if not csv_path.is_file():
                raise InputError(f"{csv_path}: MELD CSV not found")
            try:
                table = pd.read_csv(csv_path, usecols=["Dialogue_ID", "Utterance_ID"])
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:  # missing columns, not a CSV
                raise InputError(f"{csv_path}: not a MELD CSV with Dialogue_ID and Utterance_ID ({str(err).splitlines()[0]})") from None
            utt_ids = table.sort_values(["Dialogue_ID", "Utterance_ID"]).groupby("Dialogue_ID")["Utterance_ID"].apply(list)
            for vid in splits[split]:
                if len(labels[vid]) == 0:
                    continue
                csv_dialogue = vid - MELD_ID_OFFSET[split]
                if csv_dialogue not in utt_ids.index or len(utt_ids[csv_dialogue]) != len(labels[vid]):
                    raise InputError(f"{csv_path}: dialogue {csv_dialogue} does not match meld.pkl dialogue {vid}")
                dialogues.append(Dialogue(
                    str(vid), split, [row.index(1) for row in speakers[vid]], list(labels[vid]),
                    list(sentences[vid]), [(csv_dialogue, u) for u in utt_ids[csv_dialogue]]))
    return dialogues


def repair_cp1252(text: str) -> str:
    """MELD mixes Unicode with raw cp1252 bytes: map only code points 0x80-0x9F through cp1252."""
    out = []
    for ch in text:
        if 0x80 <= ord(ch) <= 0x9F:
            try:
                ch = bytes([ord(ch)]).decode("cp1252")
            except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined in cp1252
                pass
        out.append(ch)
    return "".join(out)
