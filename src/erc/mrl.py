"""Matryoshka heads over a fused vector made of equal-width modality blocks (METHOD_NOTES §3).

The size-m representation is the first m dimensions of every block, concatenated. ``shared=False`` (MRL)
gives each size its own Linear; ``shared=True`` (MRL-E) keeps one Linear whose matching columns serve
every size, with the one bias shared.
"""
from __future__ import annotations

import torch
from torch import nn


def nesting_sizes(requested, block_width: int) -> list[int]:
    """Sorted unique sizes no wider than a block, the full block width always last."""
    sizes = sorted({int(m) for m in requested or [] if 0 < int(m) < block_width})
    return sizes + [block_width]


def prefix_columns(size: int, block_width: int, n_blocks: int) -> torch.Tensor:
    """Column indices of the size-m representation inside the fused vector."""
    return torch.cat([torch.arange(size) + b * block_width for b in range(n_blocks)])


class NestedClassifier(nn.Module):
    def __init__(self, block_width: int, n_blocks: int, sizes: list[int], n_classes: int, shared: bool):
        super().__init__()
        self.block_width, self.n_blocks, self.sizes, self.shared = block_width, n_blocks, list(sizes), shared
        for m in sizes:
            self.register_buffer(f"columns_{m}", prefix_columns(m, block_width, n_blocks), persistent=False)
        if shared:
            self.head = nn.Linear(block_width * n_blocks, n_classes)
        else:
            self.heads = nn.ModuleList(nn.Linear(m * n_blocks, n_classes) for m in sizes)

    def columns(self, size: int) -> torch.Tensor:
        return getattr(self, f"columns_{size}")

    def forward(self, fused: torch.Tensor) -> list[torch.Tensor]:
        """fused (N, n_blocks * block_width) -> one (N, n_classes) logit tensor per size, smallest first."""
        if self.shared:
            return [fused[:, self.columns(m)] @ self.head.weight[:, self.columns(m)].T + self.head.bias
                    for m in self.sizes]
        if len(self.sizes) == 1:  # plain MGLRA: the prefix is the whole vector
            return [self.heads[0](fused)]
        return [head(fused[:, self.columns(m)]) for m, head in zip(self.sizes, self.heads)]


def matryoshka_loss(task_loss, logits: list[torch.Tensor], target: torch.Tensor, weights=None,
                    reduction: str = "sum") -> torch.Tensor:
    """Σ_m c_m · task(logits_m, y) over sizes as in MRL (c_m = 1 by default); ``mean`` divides by Σ_m c_m, so the
    task term weighs as much as one classifier's and the MKD terms keep their weight with or without MRL."""
    weights = weights if weights is not None else [1.0] * len(logits)
    total = sum(c * task_loss(z, target) for c, z in zip(weights, logits))
    return total / sum(weights) if reduction == "mean" else total
