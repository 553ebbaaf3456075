"""The canonical per-dataset feature file that every later stage reads.

Layout (a dict saved with torch): utterances are stored flat, dialogue after dialogue, in conversation order.
  dataset, classes, n_speakers, sources{text,audio,visual}
  dialogue_ids [D], splits [D], lengths LongTensor (D,)
  speakers LongTensor (N,), labels LongTensor (N,), sentences [N]
  features {modality: FloatTensor}: text (N, layers, dim); audio (N, dim) whose last column is the
  "audio missing" flag; visual (N, dim). Absent modalities are left out.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from erc.data.datasets import SPLITS, hide_test_labels as hide_labels
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch, save_torch

# audio sources whose last column is the "audio missing" flag (erc.features.extract appends it); `file` audio has none
FLAGGED_SOURCES = ("praat", "praat-wav", "opensmile")
# the file's entries in the order extraction writes them (the saved bytes depend on it); the optional ones are left
# out when absent
ORDER = ("dataset", "classes", "n_speakers", "sources", "dialogue_ids", "splits", "lengths", "speakers", "labels",
         "sentences", "features", "devices", "audio_scaling", "corpus")


@dataclass
class FeatureFile:
    """data/features/<dataset>.pt, typed: ``load`` validates what it reads, ``save`` writes a plain dict of tensors,
    lists and strings (``load_torch`` reads it with ``weights_only``)."""
    dataset: str
    classes: list
    n_speakers: int
    dialogue_ids: list[str]
    splits: list[str]  # per dialogue: train / valid / test
    lengths: torch.Tensor  # (D,) utterances per dialogue
    speakers: torch.Tensor  # (N,) speaker index per utterance
    labels: torch.Tensor  # (N,) class index, -1 unlabelled (a corpus's turn, or a test label hidden)
    features: dict  # modality -> (N, layers, dim) text, (N, dim) audio (last column: the missing flag) and visual
    sources: dict = field(default_factory=dict)  # modality -> where its features came from
    sentences: list[str] | None = None
    devices: dict = field(default_factory=dict)  # where the text encoders ran
    audio_scaling: dict | None = None  # praat-wav: the training statistics predict.py scales a new wav with
    corpus: dict | None = None  # a registered corpus's card and split (erc.features.extract.corpus_record)

    def but(self, **changes) -> "FeatureFile":
        """A copy with ``changes`` (the tensors shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ORDER if getattr(self, k) is not None}

    def save(self, path) -> None:
        save_torch(FeatureFile.from_dict(self.as_dict(), path).as_dict(), path)  # validated before it is written

    @classmethod
    def from_dict(cls, stored: dict, where) -> "FeatureFile":
        """The feature file held by ``stored``, checked: its entries, their types, and that they agree."""
        if not isinstance(stored, dict):
            raise InputError(f"{where}: not a feature file (a {type(stored).__name__})")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in stored
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise InputError(f"{where}: not a feature file (missing keys {missing})")
        unknown = sorted(set(stored) - set(ORDER))
        if unknown:
            raise InputError(f"{where}: unknown feature file entries {unknown}")
        return _validated(cls(**stored), where)

    @classmethod
    def load(cls, path, hide_test_labels: bool = True) -> "FeatureFile":
        """Read a feature file; test labels become -1 unless the caller is the evaluation stage."""
        feats = cls.from_dict(load_torch(path, "feature file"), path)
        return feats.but(labels=hide_labels(feats.labels, utterance_split(feats))) if hide_test_labels else feats


def _validated(feats: FeatureFile, where) -> FeatureFile:
    if not isinstance(feats.features, dict):
        raise InputError(f"{where}: 'features' should map modality -> tensor")
    tensors = {"lengths": feats.lengths, "labels": feats.labels, "speakers": feats.speakers}
    for name, tensor in {**tensors, **feats.features}.items():
        if not torch.is_tensor(tensor):
            raise InputError(f"{where}: '{name}' should be a tensor, got {type(tensor).__name__}")
    if len(feats.dialogue_ids) != len(feats.lengths) or len(feats.splits) != len(feats.lengths):
        raise InputError(f"{where}: dialogue_ids, splits and lengths disagree on the number of dialogues")
    n = int(feats.lengths.sum())
    if (feats.lengths <= 0).any():
        raise InputError(f"{where}: dialogue {feats.dialogue_ids[int((feats.lengths <= 0).nonzero()[0])]} is empty")
    for name, tensor in [("labels", feats.labels), ("speakers", feats.speakers)] + list(feats.features.items()):
        if len(tensor) != n:
            raise InputError(f"{where}: '{name}' has {len(tensor)} rows, the dialogues hold {n} utterances")
    if not feats.features:
        raise InputError(f"{where}: no modality present")
    bad_split = set(feats.splits) - set(SPLITS)
    if bad_split:
        raise InputError(f"{where}: unknown split names {sorted(bad_split)}")
    return feats


def save_features(feats: FeatureFile, path) -> None:
    feats.save(path)


def load_features(path, hide_test_labels: bool = True) -> FeatureFile:
    """Read a feature file; test labels become -1 unless the caller is the evaluation stage."""
    return FeatureFile.load(path, hide_test_labels)


def utterance_split(feats: FeatureFile) -> torch.Tensor:
    """(N,) split index (0 train, 1 valid, 2 test) per utterance."""
    per_dialogue = torch.tensor([SPLITS.index(s) for s in feats.splits])
    return per_dialogue.repeat_interleave(feats.lengths)


def utterance_dialogues(feats: FeatureFile) -> np.ndarray:
    """(N,) dialogue id of each utterance (utterances are stored dialogue after dialogue)."""
    return np.repeat(np.asarray(feats.dialogue_ids, dtype=object), feats.lengths.numpy())


def mark_missing(x: torch.Tensor, rows: torch.Tensor, flagged: bool) -> torch.Tensor:
    """A copy of one modality's (N, dim) features with ``rows`` (bool, (N,)) marked missing, as extraction marks
    an utterance without audio: descriptors 0 (the training mean after standardisation), the flag column 1."""
    x = x.clone()
    if flagged:
        x[rows, :-1], x[rows, -1] = 0.0, 1.0
    else:
        x[rows] = 0.0
    return x


def text_only(feats: FeatureFile) -> FeatureFile:
    """``feats`` with every utterance's audio and visual marked missing (what a dialogue without recordings gives)."""
    every = torch.ones(len(feats.labels), dtype=torch.bool)
    features = {m: x if m == "text" else mark_missing(x, every, feats.sources.get(m) in FLAGGED_SOURCES)
                for m, x in feats.features.items()}
    return feats.but(features=features)
