"""Accuracy, weighted / macro / per-class F1 (scikit-learn) and mean ± std over seeds."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score


def host(values) -> np.ndarray:
    """A NumPy array of labels or predictions, from a tensor on any device."""
    return values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def classification_metrics(labels, predictions, classes: list[str]) -> dict:
    """Accuracy, weighted and macro F1, per-class F1 (%) of the labelled utterances (an unlabelled one, -1, is not
    scored: a corpus's turns without a label, test labels hidden from a training stage)."""
    labels, predictions = host(labels), host(predictions)
    labels, predictions = labels[labels >= 0], predictions[labels >= 0]
    per_class = f1_score(labels, predictions, labels=range(len(classes)), average=None, zero_division=0)
    return {
        "acc": 100 * accuracy_score(labels, predictions),
        "weighted_f1": 100 * f1_score(labels, predictions, average="weighted", zero_division=0),
        "macro_f1": 100 * f1_score(labels, predictions, labels=range(len(classes)), average="macro", zero_division=0),
        "per_class_f1": {c: 100 * float(f) for c, f in zip(classes, per_class)},
    }


def mean_std(values) -> dict:
    values = np.asarray(list(values), dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def summarise(per_seed: list[dict], keys=("acc", "weighted_f1", "macro_f1")) -> dict:
    return {k: mean_std(run[k] for run in per_seed) for k in keys}
