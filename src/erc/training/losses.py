"""Task losses (METHOD_NOTES §2.5) and the modality-wise distillation term (§4.3). All take logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WeightedNLL(nn.Module):
    """Class-weighted NLL on log-softmax; weights 1/frequency of the training split (IEMOCAP)."""

    def __init__(self, class_weights: torch.Tensor):
        super().__init__()
        self.register_buffer("class_weights", class_weights.float())

    def forward(self, logits, target):
        return F.nll_loss(F.log_softmax(logits, -1), target, weight=self.class_weights)

    def per_size(self, logits, target):
        """(sizes, N, C) -> (sizes,): ``forward`` of each size at once."""
        weight = self.class_weights[target]
        return -(_target_log_probs(logits, target) * weight).sum(-1) / weight.sum()


class ReleasedFocal(nn.Module):
    """The released MGLRA "focal" loss for MELD: mean over (N, C) of Σ_{c≠y} −log p_c + (1 − log p_y)^γ · (−log p_y)."""

    def __init__(self, gamma: float = 2.5):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits, target):
        return self.per_size(logits.unsqueeze(0), target)[0]

    def per_size(self, logits, target):
        """(sizes, N, C) -> (sizes,): ``forward`` of each size at once."""
        neg_logp = -F.log_softmax(logits, -1)  # (sizes, N, C)
        is_target = F.one_hot(target, logits.shape[-1]).bool()
        factor = torch.where(is_target, (1 + neg_logp).pow(self.gamma), torch.ones_like(neg_logp))
        return (factor * neg_logp).mean((1, 2))


class CrossEntropy(nn.Module):
    def forward(self, logits, target):
        return F.cross_entropy(logits, target)

    def per_size(self, logits, target):
        """(sizes, N, C) -> (sizes,): ``forward`` of each size at once."""
        return -_target_log_probs(logits, target).mean(-1)


def _target_log_probs(logits, target):
    """(sizes, N, C) logits -> (sizes, N) log-probabilities of the targets."""
    index = target.expand(len(logits), -1).unsqueeze(-1)
    return F.log_softmax(logits, -1).gather(-1, index).squeeze(-1)


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """n / (K · count_c): scikit-learn's compute_class_weight("balanced"), kept here because that one computes in
    float64 numpy (other roundings, so other numbers than the committed runs') and refuses a class absent from the
    training labels, which gets weight 0 here."""
    counts = torch.bincount(labels, minlength=n_classes).float()
    return counts.sum() / counts.clamp(min=1) / n_classes * (counts > 0)


def task_loss(name: str, train_labels: torch.Tensor, n_classes: int, focal_gamma: float) -> nn.Module:
    if name == "weighted_nll":
        return WeightedNLL(class_weights(train_labels, n_classes))
    if name == "focal":
        return ReleasedFocal(focal_gamma)
    return CrossEntropy()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · mean_i H(softmax(t/T), softmax(s/T)): soft-label cross-entropy, teacher -> student."""
    teacher_probs = F.softmax(teacher_logits.detach() / temperature, -1)
    student_logp = F.log_softmax(student_logits / temperature, -1)
    return temperature ** 2 * -(teacher_probs * student_logp).sum(-1).mean()
