"""Readers for the standard public ERC feature pickles (SOURCES.md, METHOD_NOTES §1).

Each layout is a tuple of dicts keyed by dialogue id; ``read_feature_file`` returns, for one modality,
``{dialogue id (str): array (n_utterances, dim) or (n_utterances, layers, dim) for text}``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from erc.io import InputError

# field positions per layout; text may be several layers (RoBERTa 1-4)
LAYOUTS = {
    "dialoguegcn_iemocap": {"length": 9, "text": (3,), "audio": 4, "visual": 5},        # IEMOCAP_features.pkl
    "mmgcn_meld": {"length": 10, "text": (3,), "audio": 4, "visual": 5},                # MELD_features_raw1.pkl
    "cosmic_iemocap": {"length": 11, "text": (2, 3, 4, 5)},                             # iemocap_features_roberta.pkl
    "cosmic_meld": {"length": 12, "text": (3, 4, 5, 6)},                                # meld_features_roberta.pkl
    "m3net_iemocap": {"length": 12, "text": (3, 4, 5, 6), "audio": 7, "visual": 8},     # iemocap_multimodal_features.pkl
    "m3net_meld": {"length": 13, "text": (3, 4, 5, 6), "audio": 7, "visual": 8},        # meld_multimodal_features.pkl
}


def detect_layout(obj, path: Path) -> str:
    if not isinstance(obj, (tuple, list)):
        raise InputError(f"{path}: expected a tuple of fields, got {type(obj).__name__}")
    n = len(obj)
    if n == 12:  # COSMIC MELD and M3Net IEMOCAP both have 12 fields: field 9 is test ids (list) or sentences (dict)
        return "m3net_iemocap" if isinstance(obj[9], dict) else "cosmic_meld"
    for name, layout in LAYOUTS.items():
        if layout["length"] == n:
            return name
    raise InputError(f"{path}: {n} fields match no known layout ({', '.join(LAYOUTS)})")


def load_pickle(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: feature file not found")
    with open(path, "rb") as f:
        try:
            return pickle.load(f, encoding="latin1")  # DialogueGCN's pickles were written by Python 2
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not a readable pickle ({err})") from err


def read_feature_file(path: str | Path, modality: str) -> dict[str, np.ndarray]:
    path = Path(path)
    obj = load_pickle(path)
    layout_name = detect_layout(obj, path)
    layout = LAYOUTS[layout_name]
    if modality not in layout:
        raise InputError(f"{path}: layout {layout_name} has no {modality} features")
    fields = layout[modality] if modality == "text" else (layout[modality],)
    for f in fields:
        if not isinstance(obj[f], dict):
            raise InputError(f"{path}: field {f} of layout {layout_name} should be a dict keyed by dialogue id")
    out = {}
    for key in obj[fields[0]]:
        try:
            layers = [np.asarray(obj[f][key], dtype=np.float32) for f in fields]
        except KeyError as err:
            raise InputError(f"{path}: dialogue {key} is missing from field {fields}") from err
        array = np.stack(layers, axis=1) if modality == "text" else layers[0]  # text: (n, layers, dim)
        if array.ndim != (3 if modality == "text" else 2):
            raise InputError(f"{path}: dialogue {key} {modality} features have shape {array.shape}")
        out[str(key)] = array
    return out
