"""Table 1's rows: the paper's six (named by the three switches), the extra and reference rows, the paper's numbers,
and how a row's params differ from the reference run's."""
from __future__ import annotations

import json
import re

from erc.config.params import DATASETS, flatten
from erc.data.datasets import CLASSES


def datasets_of(params: dict) -> list[str]:
    """The datasets a run's params (a dict) train: the built-ins and registered corpora it lists."""
    return list(params.get("datasets") or DATASETS)


def n_classes_of(dataset: str, features: str) -> int:
    """A dataset's number of classes: a built-in's, or a corpus's label list in its feature file."""
    if dataset in CLASSES:
        return len(CLASSES[dataset])
    from erc.data.feature_file import load_features
    return len(load_features(features, hide_test_labels=True)["classes"])


ROWS = {  # (mrl.enabled, mrl.shared, mkd.enabled) -> row name, in the paper's order
    (False, False, False): "MGLRA", (True, False, False): "MRL", (True, True, False): "MRL-E",
    (False, False, True): "MKD", (True, False, True): "MRL + MKD", (True, True, True): "MRL-E + MKD",
}


PAPER = {  # Table 1 of Na, Lee, Shin (RoBERTa-large text, openSMILE audio): (Acc, w-F1)
    ("MGLRA", "iemocap"): (68.52, 68.26), ("MGLRA", "meld"): (66.86, 65.33),
    ("MRL-E + MKD", "iemocap"): (72.15, 71.60), ("MRL-E + MKD", "meld"): (67.70, 66.29),
}


# rows beyond the paper's six: another setting of the same pipeline, found like the six (params.yaml with these keys
# set) and compared with the same MGLRA row; its features differ, so only its code and params must match the run's
EXTRA_ROWS = {"MGLRA, frozen MiniLM": {"features.text": "minilm", "mrl.enabled": False, "mrl.shared": False,
                                       "mkd.enabled": False}}


REFERENCE_ROWS = {"bc-LSTM (same features)": "bc_lstm", "logistic regression (same features)": "logreg"}


def with_overrides(params: dict, overrides: dict) -> dict:
    """A deep copy of nested ``params`` with dotted ``overrides`` set."""
    out = json.loads(json.dumps(params))
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def row_name(params: dict) -> str:
    mrl, mkd = params.get("mrl", {}), params.get("mkd", {})
    enabled = bool(mrl.get("enabled"))
    return ROWS[(enabled, enabled and bool(mrl.get("shared")), bool(mkd.get("enabled")))]


SWITCHES = {"mrl.enabled", "mrl.shared", "mkd.enabled"}


def differences(params: dict, reference: dict, defaults: dict) -> dict:
    """{dotted key: (value, reference value)} outside the three switches; a key missing on one side takes
    its default (``defaults``: dotted key -> default), so experiments that predate a key still match."""
    a, b, d = flatten(params), flatten(reference), flatten(defaults)
    keys = sorted((set(a) | set(b)) - SWITCHES)
    return {k: (a.get(k, d.get(k)), b.get(k, d.get(k))) for k in keys if a.get(k, d.get(k)) != b.get(k, d.get(k))}


def same_setup(params: dict, reference: dict, defaults: dict | None = None) -> bool:
    """True when two params differ at most in the three switches that define Table 1's rows."""
    return not differences(params, reference, defaults or {})


def missing_rows(rows: dict, datasets=DATASETS) -> list[str]:
    """Table 1's rows (and ``EXTRA_ROWS``) without results for every dataset, in the paper's order."""
    return [name for name in [*ROWS.values(), *EXTRA_ROWS] if any((name, d) not in rows for d in datasets)]


def row_overrides(name: str) -> list[str]:
    """``-S`` assignments of ``dvc exp run`` that make a row from the current params."""
    if name in EXTRA_ROWS:
        return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in EXTRA_ROWS[name].items()]
    (mrl, shared, mkd), = [k for k, v in ROWS.items() if v == name]
    return [f"mrl.enabled={str(mrl).lower()}", f"mrl.shared={str(shared).lower()}", f"mkd.enabled={str(mkd).lower()}"]


def row_slug(name: str, stamp: str = "") -> str:
    """The experiment name of a row's run: ``table-<row>-<stamp>``."""
    return "table-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + (f"-{stamp}" if stamp else "")
