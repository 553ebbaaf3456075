"""The canonical per-dataset feature file that every later stage reads.

Layout (a dict saved with torch): utterances are stored flat, dialogue after dialogue, in conversation order.
  dataset, classes, n_speakers, sources{text,audio,visual}
  dialogue_ids [D], splits [D], lengths LongTensor (D,)
  speakers LongTensor (N,), labels LongTensor (N,), sentences [N]
  features {modality: FloatTensor}: text (N, layers, dim); audio (N, dim) whose last column is the
  "audio missing" flag; visual (N, dim). Absent modalities are left out.
"""
from __future__ import annotations

import numpy as np
import torch

from erc.data.datasets import SPLITS, hide_test_labels as hide_labels
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch, save_torch

# audio sources whose last column is the "audio missing" flag (erc.features.extract appends it); `file` audio has none
FLAGGED_SOURCES = ("praat", "praat-wav", "opensmile")
REQUIRED = ("dataset", "classes", "n_speakers", "dialogue_ids", "splits", "lengths", "speakers", "labels", "features")


def validate(feats: dict, where) -> dict:
    missing = [k for k in REQUIRED if not isinstance(feats, dict) or k not in feats]
    if missing:
        raise InputError(f"{where}: not a feature file (missing keys {missing})")
    tensors = {"lengths": feats["lengths"], "labels": feats["labels"], "speakers": feats["speakers"]}
    if not isinstance(feats["features"], dict):
        raise InputError(f"{where}: 'features' should map modality -> tensor")
    for name, tensor in {**tensors, **feats["features"]}.items():
        if not torch.is_tensor(tensor):
            raise InputError(f"{where}: '{name}' should be a tensor, got {type(tensor).__name__}")
    if len(feats["dialogue_ids"]) != len(feats["lengths"]) or len(feats["splits"]) != len(feats["lengths"]):
        raise InputError(f"{where}: dialogue_ids, splits and lengths disagree on the number of dialogues")
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
        feats["labels"] = hide_labels(feats["labels"], utterance_split(feats))
    return feats


def utterance_split(feats: dict) -> torch.Tensor:
    """(N,) split index (0 train, 1 valid, 2 test) per utterance."""
    per_dialogue = torch.tensor([SPLITS.index(s) for s in feats["splits"]])
    return per_dialogue.repeat_interleave(feats["lengths"])


def utterance_dialogues(feats: dict) -> np.ndarray:
    """(N,) dialogue id of each utterance (utterances are stored dialogue after dialogue)."""
    return np.repeat(np.asarray(feats["dialogue_ids"], dtype=object), feats["lengths"].numpy())


def mark_missing(x: torch.Tensor, rows: torch.Tensor, flagged: bool) -> torch.Tensor:
    """A copy of one modality's (N, dim) features with ``rows`` (bool, (N,)) marked missing, as extraction marks
    an utterance without audio: descriptors 0 (the training mean after standardisation), the flag column 1."""
    x = x.clone()
    if flagged:
        x[rows, :-1], x[rows, -1] = 0.0, 1.0
    else:
        x[rows] = 0.0
    return x


def text_only(feats: dict) -> dict:
    """``feats`` with every utterance's audio and visual marked missing (what a dialogue without recordings gives)."""
    n = len(feats["labels"])
    every = torch.ones(n, dtype=torch.bool)
    features = {m: x if m == "text" else mark_missing(x, every, feats["sources"].get(m) in FLAGGED_SOURCES)
                for m, x in feats["features"].items()}
    return dict(feats, features=features)
