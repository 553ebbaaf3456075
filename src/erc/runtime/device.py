"""The one device every computing stage runs on (params.yaml ``device``), chosen once and recorded in outputs.

CPU runs are bit-for-bit repeatable (one thread a unit, ``erc.runtime.parallel``). On CUDA, PyTorch's deterministic
settings are switched on, but some kernels this model uses have no deterministic form (the LSTM's backward, sparse
products, ``index_add`` / scatter backward): CUDA runs agree with each other and with CPU to a tolerance, not bit
for bit. Outputs record the device so that runs made on different devices are never mixed (``src/table.py``)."""
from __future__ import annotations

import contextlib
import os

import torch

from erc.runtime.errors import InputError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(wanted: str) -> torch.device:
    """``auto``: CUDA where PyTorch sees a GPU, else CPU; ``cuda`` without one is one clear line."""
    if wanted not in DEVICES:
        raise InputError(f"params.yaml: 'device' should be one of {', '.join(DEVICES)}, got {wanted!r}")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise InputError("params.yaml: 'device' is cuda, but PyTorch sees no CUDA device here "
                         "(device: auto or cpu runs on the CPU)")
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(wanted)


def stage_device(params) -> torch.device:
    """The resolved ``device`` of a stage's params, with the deterministic settings applied for it."""
    device = resolve_device(params.device)  # params: erc.config.params.Params
    make_deterministic(device)
    return device


def make_deterministic(device: torch.device | str) -> None:
    """What PyTorch offers for repeatable CUDA runs (a no-op on CPU, which is deterministic on one thread).
    Called in every process that computes (workers are fresh interpreters): before CUDA's first use, so that
    cuBLAS reads its workspace setting."""
    if torch.device(device).type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)  # warn, not fail, where no deterministic kernel exists


def to_cpu(state: dict) -> dict:
    """A copy of a state dict on the CPU (a copy on CPU too: the model goes on training after it is taken), so a
    checkpoint loads with a plain ``torch.load`` on a machine without a GPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def autocast(device: torch.device, precision: str):
    """bf16 / fp16 autocast of the encoder's forward on CUDA (``finetune.precision``); fp32: a no-op context."""
    if precision != "fp32" and device.type != "cuda":
        raise InputError(f"params.yaml: 'finetune.precision' {precision} runs on CUDA only; the device here is "
                         f"{device.type} (use fp32)")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
