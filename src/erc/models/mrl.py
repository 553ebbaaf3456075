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
        width = block_width * n_blocks
        columns = [prefix_columns(m, block_width, n_blocks) for m in self.sizes]
        # where each size's weights sit in ``stacked_weight``: MRL-E, a column mask a size over its one weight;
        # MRL, the flat position of every entry of every size's own weight
        if shared:
            self.head = nn.Linear(width, n_classes)
            mask = torch.zeros(len(self.sizes), 1, width)
            for k, c in enumerate(columns):
                mask[k, 0, c] = 1
            self.register_buffer("size_mask", mask, persistent=False)
        else:
            self.heads = nn.ModuleList(nn.Linear(m * n_blocks, n_classes) for m in sizes)
            index = [((k * n_classes + torch.arange(n_classes)).unsqueeze(1) * width + c.unsqueeze(0)).flatten()
                     for k, c in enumerate(columns)]
            self.register_buffer("scatter_index", torch.cat(index), persistent=False)

    def stacked_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every size's head as one (sizes·C, fused width) weight, zero outside that size's columns, and the bias:
        one product gives all sizes' logits (the zeros add exact zeros), instead of a gather and a product a size."""
        if self.shared:
            weight = (self.head.weight.unsqueeze(0) * self.size_mask).flatten(0, 1)
            return weight, self.head.bias.repeat(len(self.sizes))
        flat = torch.cat([head.weight.flatten() for head in self.heads])
        width = self.block_width * self.n_blocks
        weight = flat.new_zeros(len(self.sizes) * self.heads[0].out_features * width)
        weight = weight.index_put((self.scatter_index,), flat)
        return weight.view(-1, width), torch.cat([head.bias for head in self.heads])

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """fused (N, n_blocks * block_width) -> (sizes, N, n_classes) logits, smallest size first."""
        if not self.shared and len(self.sizes) == 1:  # plain MGLRA: the prefix is the whole vector
            return self.heads[0](fused).unsqueeze(0)
        weight, bias = self.stacked_weight()
        return torch.nn.functional.linear(fused, weight, bias).view(len(fused), len(self.sizes), -1).transpose(0, 1)


def matryoshka_loss(task_loss, logits, target: torch.Tensor, weights=None, reduction: str = "sum") -> torch.Tensor:
    """Σ_m c_m · task(logits_m, y) over sizes as in MRL (c_m = 1 by default); ``mean`` divides by Σ_m c_m, so the
    task term weighs as much as one classifier's and the MKD terms keep their weight with or without MRL.
    ``logits``: (sizes, N, C), or a list of (N, C); every size's loss at once where ``task_loss`` has ``per_size``."""
    weights = weights if weights is not None else [1.0] * len(logits)
    if hasattr(task_loss, "per_size"):
        stacked = logits if isinstance(logits, torch.Tensor) else torch.stack(list(logits))
        per_size = task_loss.per_size(stacked, target)
        total = (per_size * torch.tensor(weights, dtype=per_size.dtype, device=per_size.device)).sum()
    else:
        total = sum(c * task_loss(z, target) for c, z in zip(weights, logits))
    return total / sum(weights) if reduction == "mean" else total
