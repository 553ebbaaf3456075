"""Errors with one clear line, and atomic writers: an output is either whole or absent."""
from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch


GRAPH_KEYS = ("multimodal", "unimodal")                     # data/graphs/<ds>.pt
CHECKPOINT_KEYS = ("config", "runs", "sources", "mrl", "mkd")  # models/<ds>.pt


class InputError(ValueError):
    """Bad input (file, layout, dimension, value or parameter); the message names the culprit."""


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_torch(obj, path: str | Path) -> None:
    """Atomic and byte-reproducible: saved through a file object, the archive inside carries torch's fixed name
    instead of the random temporary file's, so the same object gives the same bytes (and the same DVC hash)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def load_torch(path: str | Path, what: str = "file", keys: tuple = ()):
    """A torch-saved object; ``keys``: the entries a dict of this kind must hold (a file of another kind is refused)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 -- a truncated or foreign file can fail in any unpickling step
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: {what} is unreadable ({detail})") from None
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise InputError(f"{path}: not a {what} (no {missing[0]!r} entry)")
    return obj


def run_stage(main, datasets: str = "one") -> None:
    """``python src/<stage>.py <dataset>``: runs ``main(dataset)``; bad input is one ``error:`` line, exit 1.
    ``datasets="any"``: ``python src/<stage>.py [<dataset> ...]`` runs ``main(*datasets)``.
    Torch runs on one thread: a thread count changes floating-point sums (feature extraction on 2 threads differs
    from 1 by ~1e-6, enough to move the epoch that validation picks), so outputs would depend on the machine's
    cores; parallelism comes from ``workers`` processes instead (``erc.parallel``)."""
    torch.set_num_threads(1)
    try:
        if datasets == "any":
            main(*sys.argv[1:])
            return
        if len(sys.argv) != 2:
            raise InputError(f"usage: python {sys.argv[0]} <dataset>")
        main(sys.argv[1])
    except InputError as err:
        sys.exit(f"error: {err}")


def save_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
