"""Layers that do what PyTorch's do, faster on the small tensors of this model.

``bidirectional_lstm``: a bidirectional ``nn.LSTM`` over zero-padded dialogues without packing: the same
recurrences as a packed run (no padding ever reaches a real utterance), several times faster.

A packed sequence sends PyTorch's CPU LSTM down its per-time-step path (a dozen autograd ops a step, both ways);
an unpacked batch takes the fused oneDNN kernel on CPU and cuDNN's on CUDA. Unpacked, the forward direction is
already exact (padding only follows a dialogue's utterances), and the backward direction runs forward over each
dialogue reversed within its own length (``erc.data.batching.Padding.reverse``), so it too starts at the
dialogue's last real utterance. The module's own parameters are used (``weight_ih_l{k}``, ``..._reverse``), so its
state dict and initialisation are ``nn.LSTM``'s; only the dropout between layers draws its random numbers over the
padded shape.

``dropout`` / ``Dropout``: inverted dropout as ``F.dropout`` / ``nn.Dropout`` (keep with chance 1 - p, scale by
1 / (1 - p)), its mask drawn with ``torch.rand``: on CPU the ``bernoulli_`` behind ``F.dropout`` costs several
times as much, a large share of a step at these sizes.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from erc.data.batching import Padding


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0:
        return x
    if p == 1:
        return torch.zeros_like(x)
    return x * (torch.rand_like(x) >= p) / (1 - p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same state, same repr) drawing its mask with ``torch.rand`` (``dropout``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def _direction(lstm: nn.LSTM, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
    weights = [getattr(lstm, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
    with warnings.catch_warnings():  # cuDNN wants one weight buffer for all of a module's LSTMs; a direction's own
        warnings.filterwarnings("ignore", "RNN module weights are not part")  # few tensors are copied, a no-op cost
        out, _, _ = torch.lstm(x, (zeros, zeros), weights, True, 1, 0.0, lstm.training, False, True)
    return out


def bidirectional_lstm(lstm: nn.LSTM, padded: torch.Tensor, padding: Padding) -> torch.Tensor:
    """(B, L, D) zero-padded dialogues (laid out as ``padding`` says) through ``lstm`` (bidirectional, batch_first,
    biases) -> (B, L, 2·hidden); rows past a dialogue's length are not meaningful."""
    if not (lstm.bidirectional and lstm.batch_first and lstm.bias and lstm.proj_size == 0):
        raise ValueError("bidirectional_lstm wants a bidirectional, batch_first LSTM with biases and no projection")
    x = padded
    for layer in range(lstm.num_layers):
        if layer:
            x = dropout(x, lstm.dropout, lstm.training)
        forward = _direction(lstm, x, layer, "")
        backward = padding.reverse(_direction(lstm, padding.reverse(x), layer, "_reverse"))
        x = torch.cat([forward, backward], dim=-1)
    return x
