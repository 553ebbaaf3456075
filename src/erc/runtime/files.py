"""Atomic writers (an output is either whole or absent), and readers that never run
what a file holds (``load_torch``, ``load_pickle``: docs/security.md)."""
from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import torch
from erc.runtime.errors import InputError, first_line


# What a pickle may name besides the containers pickle builds itself (list, dict, tuple, str, numbers): the public
# feature pickles' and the metadata pickles' numpy arrays and scalars, as numpy 1 and 2 and Python 2 write them
PICKLE_GLOBALS = {
    "builtins": {"set", "frozenset", "bytearray"},
    "_codecs": {"encode"},  # the bytes of a protocol-2 pickle written by Python 3 (an array's raw data)
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
}



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
    except OSError as err:  # a write's error names no file (ENOSPC), the temporary's means nothing to a user
        if err.filename in (None, tmp):
            raise OSError(err.errno, err.strerror or first_line(err), str(path)) from err
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_torch(obj, path: str | Path) -> None:
    """Atomic and byte-reproducible: saved through a file object, the archive inside carries torch's fixed name
    instead of the random temporary file's, so the same object gives the same bytes (and the same DVC hash)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def torch_types() -> list:
    """What our .pt files hold besides tensors and builtins (PyTorch's ``weights_only`` allow-list): the graphs'
    PyG ``Data`` (which PyG allows itself) and its storage classes; checkpoints, features, teachers, references and
    records are tensors in dicts, lists and tuples of plain values."""
    from torch_geometric.data import Data
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage
    return [Data, DataEdgeAttr, DataTensorAttr, GlobalStorage]


def load_torch(path: str | Path, what: str = "file", keys: tuple = ()):
    """A torch-saved object, loaded with ``weights_only``: a file naming any other function or class is refused
    unread; ``keys``: the entries a dict of this kind must hold (a file of another kind is refused)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    if not zipfile.is_zipfile(path):  # what torch.save writes; a cut file has lost its directory at the end
        raise InputError(f"{path}: {what} is unreadable (not a torch archive: truncated, or another kind of file)")
    allowed = torch_types()
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- a truncated or foreign file can fail in any unpickling step
        foreign = _foreign_globals(path, allowed) if isinstance(err, pickle.UnpicklingError) else []
        if foreign:
            raise InputError(f"{path}: {what} names {', '.join(foreign)}, which none of our files holds; refused "
                             "unread (loading it could run code): rebuild it with dvc repro") from None
        detail = next((line for line in str(err).splitlines() if line.startswith("WeightsUnpickler error:")),
                      first_line(err))
        raise InputError(f"{path}: {what} is unreadable ({detail})") from None
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise InputError(f"{path}: not a {what} (no {missing[0]!r} entry)")
    return obj


def _foreign_globals(path: Path, allowed: list) -> list[str]:
    """The functions and classes a torch file names beyond PyTorch's allow-list and ``allowed`` (read, never run)."""
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 -- not a zip archive: the caller reports the file as unreadable
        return []


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        module = {"__builtin__": "builtins"}.get(module, module)  # Python 2's pickles
        if name not in PICKLE_GLOBALS.get(module, ()):
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


class _Refused(pickle.UnpicklingError):
    """A pickle names a function or class outside ``PICKLE_GLOBALS``."""


def load_pickle(path: str | Path, what: str = "pickle", encoding: str = "ASCII"):
    """A pickle of containers, strings, numbers and numpy arrays; one naming any other function or class (which
    unpickling would call) is refused before it is called. ``encoding``: Python 2's str (latin1 for its arrays)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, encoding=encoding).load()
        except _Refused as err:
            raise InputError(f"{path}: {what} names {err}, which its layout never uses; refused unread (loading "
                             "it could run code)") from None
        except Exception as err:  # noqa: BLE001 -- a truncated or foreign pickle fails in many ways; all mean a bad file
            raise InputError(f"{path}: {what} is unreadable (truncated or not a readable pickle: "
                             f"{first_line(err)})") from None



def save_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
