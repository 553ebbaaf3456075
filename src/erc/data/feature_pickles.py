"""Readers for the standard public ERC feature pickles (SOURCES.md, METHOD_NOTES §1).

Each file is a list or tuple of fields, most of them dicts keyed by dialogue id. ``read_feature_file``
returns, for one modality, the features ``{dialogue id (str): (n_utterances, dim), text (n_utterances,
layers, dim)}`` and the file's own labels ``{dialogue id: [int]}``, which the caller checks against the metadata.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import erc.runtime.files
from erc.runtime.errors import InputError, first_line


@dataclass(frozen=True)
class Layout:
    """Field positions of one public file; ``splits`` are the positions of its dialogue-id lists."""
    file: str
    dataset: str
    length: int
    speakers: int
    labels: int
    splits: tuple[int, ...]
    text: tuple[int, ...]
    audio: int | None = None
    visual: int | None = None


# Positions as the public loaders unpack them. Every label encoding there is ours (erc.data.datasets.CLASSES):
# IEMOCAP hap,sad,neu,ang,exc,fru = 0..5; MELD neutral,surprise,fear,sadness,joy,disgust,anger = 0..6.
LAYOUTS = {
    # declare-lab/conv-emotion DialogueGCN/dataloader.py: videoIDs, videoSpeakers, videoLabels, videoText,
    # videoAudio, videoVisual, videoSentence, trainVid, testVid (bc-LSTM's IEMOCAP_features_raw.pkl alike)
    "dialoguegcn_iemocap": Layout("IEMOCAP_features.pkl", "iemocap", 9, speakers=1, labels=2, splits=(7, 8),
                                  text=(3,), audio=4, visual=5),
    # conv-emotion bc-LSTM-pytorch/dataloader.py MELDDataset: videoIDs, videoSpeakers, emotion labels,
    # videoText, videoAudio, videoSentence, trainVid, testVid, sentiment labels; no visual
    "bclstm_meld": Layout("MELD_features_raw.pkl", "meld", 9, speakers=1, labels=2, splits=(6, 7),
                          text=(3,), audio=4),
    # hujingwen6666/MMGCN dataloader.py MELDDataset: DialogueGCN's nine fields plus one unused
    "mmgcn_meld": Layout("MELD_features_raw1.pkl", "meld", 10, speakers=1, labels=2, splits=(7, 8),
                         text=(3,), audio=4, visual=5),
    # conv-emotion COSMIC/feature-extraction/roberta_feature_extract_iemocap.py: speakers, labels,
    # roberta1..4 (last hidden layer first), sentences, train ids, test ids, valid ids
    "cosmic_iemocap": Layout("iemocap_features_roberta.pkl", "iemocap", 10, speakers=0, labels=1,
                             splits=(7, 8, 9), text=(2, 3, 4, 5)),
    # COSMIC/feature-extraction/roberta_feature_extract_meld.py: speakers, emotion labels, sentiment labels,
    # roberta1..4, sentences, train ids, test ids, valid ids
    "cosmic_meld": Layout("meld_features_roberta.pkl", "meld", 11, speakers=0, labels=1, splits=(8, 9, 10),
                          text=(3, 4, 5, 6)),
    # butterfliesss/SDT dataloader.py: videoIDs, videoSpeakers, videoLabels, videoText (roberta1), roberta2..4,
    # videoAudio, videoVisual, videoSentence, trainVid, testVid (+ one unused field for MELD)
    "sdt_iemocap": Layout("iemocap_multimodal_features.pkl", "iemocap", 12, speakers=1, labels=2,
                          splits=(10, 11), text=(3, 4, 5, 6), audio=7, visual=8),
    "sdt_meld": Layout("meld_multimodal_features.pkl", "meld", 13, speakers=1, labels=2, splits=(10, 11),
                       text=(3, 4, 5, 6), audio=7, visual=8),
}


def _is_one_hot(turn) -> bool:
    if isinstance(turn, (str, bytes)):
        return False
    try:
        v = np.asarray(turn, dtype=np.float64)
    except (ValueError, TypeError):
        return False
    return v.ndim == 1 and v.size > 1 and bool(np.isin(v, (0, 1)).all()) and v.sum() == 1


def _dataset_of_speakers(speakers: dict) -> str | None:
    """'iemocap' for string ids with 'M'/'F' turns, 'meld' for integer ids with one-hot turns, else None."""
    key = next((k for k, turns in speakers.items() if isinstance(turns, (list, tuple, np.ndarray)) and len(turns)),
               None)
    if key is None:
        return None
    turns = speakers[key]
    if isinstance(key, str) and all(isinstance(t, str) and t in ("M", "F") for t in turns):
        return "iemocap"
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and all(_is_one_hot(t) for t in turns):
        return "meld"
    return None


def _matches(obj, layout: Layout) -> bool:
    dict_fields = (layout.speakers, layout.labels, *layout.text, layout.audio, layout.visual)
    if any(i is not None and not isinstance(obj[i], dict) for i in dict_fields):
        return False
    if any(isinstance(obj[i], dict) for i in layout.splits):  # id lists, never dicts
        return False
    return _dataset_of_speakers(obj[layout.speakers]) == layout.dataset


def detect_layout(obj, path: Path) -> str:
    """The one layout whose field count and content fit ``obj``; the length alone is ambiguous (9 and 10)."""
    if not isinstance(obj, (tuple, list)):
        raise InputError(f"{path}: expected a list or tuple of fields, got {type(obj).__name__}")
    same_length = [name for name, layout in LAYOUTS.items() if layout.length == len(obj)]
    if not same_length:
        raise InputError(f"{path}: {len(obj)} fields match no known layout ({', '.join(LAYOUTS)})")
    fitting = [name for name in same_length if _matches(obj, LAYOUTS[name])]  # equal lengths differ in dataset
    if not fitting:
        raise InputError(f"{path}: {len(obj)} fields, but the content fits none of {', '.join(same_length)} "
                         "(IEMOCAP files have string ids and 'M'/'F' speakers, MELD files integer ids and "
                         "one-hot speakers)")
    return fitting[0]


def load_pickle(path: str | Path):
    """A public feature pickle, unpickled with ``erc.runtime.files.load_pickle``'s allow-list (containers, numpy arrays)."""
    return erc.runtime.files.load_pickle(path, "feature file", encoding="latin1")  # DialogueGCN's pickles were written by Python 2


def _features(value, path: Path, vid: str, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as err:  # ragged rows, strings, None
        raise InputError(f"{path}: dialogue {vid}: {what} is not a numeric (utterances, dim) array "
                         f"({first_line(err)})") from None
    if array.ndim != 2:
        raise InputError(f"{path}: dialogue {vid}: {what} has shape {array.shape}, expected (utterances, dim)")
    return array


def _labels(value, path: Path, vid: str) -> list[int]:
    try:
        array = np.asarray(value)
        ok = array.ndim == 1 and array.dtype.kind in "iuf" and bool((array == np.round(array)).all())
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise InputError(f"{path}: dialogue {vid}: labels are not a list of class ids")
    return array.astype(int).tolist()


def read_feature_file(path: str | Path, modality: str, dataset: str | None = None,
                      ids=None) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """One modality's features and the labels of the dialogues in ``ids`` (all if None) that the file holds."""
    path = Path(path)
    obj = load_pickle(path)
    name = detect_layout(obj, path)
    layout = LAYOUTS[name]
    if dataset is not None and layout.dataset != dataset:
        raise InputError(f"{path}: a {name} file ({layout.file}) holds {layout.dataset} dialogues, not {dataset}")
    if modality != "text" and getattr(layout, modality) is None:
        raise InputError(f"{path}: layout {name} ({layout.file}) has no {modality} features")
    fields = layout.text if modality == "text" else (getattr(layout, modality),)
    file_keys = {str(k): k for k in obj[layout.labels]}  # MELD ids are ints in the files, strings here
    wanted = file_keys if ids is None else [i for i in ids if i in file_keys]
    features, labels = {}, {}
    for vid in wanted:
        key = file_keys[vid]
        labels[vid] = _labels(obj[layout.labels][key], path, vid)
        layers = []
        for f in fields:
            if key not in obj[f]:
                raise InputError(f"{path}: dialogue {vid} has labels but no {modality} features in field {f}")
            layers.append(_features(obj[f][key], path, vid, f"{modality} field {f}"))
        if len({a.shape for a in layers}) > 1:
            raise InputError(f"{path}: dialogue {vid}: text layers have shapes {[a.shape for a in layers]}")
        features[vid] = np.stack(layers, axis=1) if modality == "text" else layers[0]  # text: (n, layers, dim)
    return features, labels
