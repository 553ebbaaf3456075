"""The model checkpoint, ``models/<dataset>.pt``: a typed view of what ``train`` writes and ``evaluate`` /
``predict.py`` read. On disk it stays a plain dict of tensors, numbers and strings (``load_torch`` reads it with
``weights_only``): the config as ``MGLRAConfig.as_dict()``, one entry a seed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from erc.models.mglra import MGLRAConfig
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch, save_torch

KEYS = ("config", "runs", "sources")  # what serving needs; evaluate reads mrl / mkd too


@dataclass
class Checkpoint:
    config: MGLRAConfig
    runs: dict  # seed -> {"state", "epoch", "history"[, "text_only_state", "text_only_epoch"]}; CPU tensors
    sources: dict  # modality -> the feature source the model was trained on
    device: str  # where training computed
    mrl: dict  # params.yaml's mrl section as trained
    mkd: dict  # params.yaml's mkd section as trained (less text_only, a serving choice)

    def as_dict(self) -> dict:
        return {"config": self.config.as_dict(), "runs": self.runs, "sources": self.sources, "device": self.device,
                "mrl": self.mrl, "mkd": self.mkd}

    def save(self, path: str | Path) -> None:
        save_torch(self.as_dict(), path)

    @classmethod
    def from_dict(cls, stored: dict, where) -> "Checkpoint":
        if not isinstance(stored.get("runs"), dict) or not stored["runs"]:
            raise InputError(f"{where}: the model checkpoint holds no run")
        return cls(MGLRAConfig.from_dict(stored["config"], where), stored["runs"], stored["sources"],
                   stored.get("device", "cpu"), stored.get("mrl", {}), stored.get("mkd", {}))

    @classmethod
    def load(cls, path: str | Path, what: str = "model checkpoint") -> "Checkpoint":
        return cls.from_dict(load_torch(path, what, KEYS), path)
