"""Read ``params.yaml`` and check the keys a stage uses, naming any key that is wrong."""
from __future__ import annotations

from pathlib import Path

import yaml

from erc.io import InputError

DATASETS = ("iemocap", "meld")


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a mapping of sections")
    return params


def get(params: dict, dotted: str):
    """``get(p, "train.lr")``; a missing key raises an InputError naming it."""
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"params.yaml: missing key '{dotted}'")
        node = node[part]
    return node


def check(condition: bool, key: str, expected: str, value) -> None:
    if not condition:
        raise InputError(f"params.yaml: '{key}' must be {expected}, got {value!r}")


def choice(params: dict, dotted: str, options) -> str:
    value = get(params, dotted)
    check(value in options, dotted, f"one of {list(options)}", value)
    return value


def positive(params: dict, dotted: str, kind=float, allow_zero: bool = False):
    value = get(params, dotted)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    check(ok, dotted, "a non-negative number" if allow_zero else "a positive number", value)
    return kind(value)


def fraction(params: dict, dotted: str) -> float:
    """A probability-like value in [0, 1): dropout rates, mask ratios."""
    value = get(params, dotted)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
    check(ok, dotted, "in [0, 1)", value)
    return float(value)


def per_dataset(params: dict, dotted: str, dataset: str):
    """A value that may be given once or per dataset (``{iemocap: 512, meld: 1024}``)."""
    value = get(params, dotted)
    if isinstance(value, dict):
        if dataset not in value:
            raise InputError(f"params.yaml: missing key '{dotted}.{dataset}'")
        return value[dataset]
    return value


def check_dataset(name: str) -> str:
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {list(DATASETS)}")
    return name
