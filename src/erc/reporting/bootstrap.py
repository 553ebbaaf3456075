"""Acc and weighted F1 from confusion counts, and the paired cluster bootstrap of a difference between two runs
(test dialogues resampled jointly, each side's seeds independently)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from erc.runtime.errors import InputError


def acc_f1(confusion: np.ndarray, n_classes: int) -> np.ndarray:
    """(..., K*K) confusion counts (row-major label, prediction) -> (..., 2) Acc and weighted F1 in percent."""
    c = confusion.reshape(*confusion.shape[:-1], n_classes, n_classes)
    tp, support, predicted = np.diagonal(c, axis1=-2, axis2=-1), c.sum(-1), c.sum(-2)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(tp.shape), where=(support + predicted) > 0)
    total = support.sum(-1)
    return 100 * np.stack([tp.sum(-1) / total, (f1 * support).sum(-1) / total], axis=-1)


def confusions(predictions: np.ndarray, labels: np.ndarray, dialogue: np.ndarray, n_dialogues: int,
               n_classes: int) -> np.ndarray:
    """(seeds, dialogues, K*K) confusion counts of each seed on each test dialogue (``dialogue``: 0..D-1 per utterance)."""
    n_cells = n_classes ** 2
    key = (np.arange(len(predictions))[:, None] * n_dialogues + dialogue) * n_cells + labels * n_classes + predictions
    return np.bincount(key.ravel(), minlength=len(predictions) * n_dialogues * n_cells).reshape(
        len(predictions), n_dialogues, n_cells).astype(float)


def seed_matrix(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seeds, utterances) predictions, (utterances,) labels and dialogues, utterances in a fixed order."""
    pivot = table.pivot(index="seed", columns="utterance", values="prediction").sort_index(axis=1)
    if pivot.isna().any().any():
        raise InputError("test_predictions.csv: the seeds were tested on different utterances")
    per_utterance = table.drop_duplicates("utterance").set_index("utterance").sort_index()
    return pivot.to_numpy().astype(int), per_utterance["label"].to_numpy(), per_utterance["dialogue"].to_numpy()


def paired_bootstrap(row: pd.DataFrame, base: pd.DataFrame, n_classes: int, n_boot: int = 1000, seed: int = 0):
    """Mean and 95 % interval of (row − base) in Acc and w-F1: test dialogues resampled jointly (cluster
    bootstrap), each side's seeds resampled independently (seed k of two configurations are different models)."""
    row_pred, labels, dialogues = seed_matrix(row)
    base_pred, base_labels, base_dialogues = seed_matrix(base)
    if not (np.array_equal(labels, base_labels) and np.array_equal(dialogues, base_dialogues)):
        raise InputError("the two experiments were tested on different utterances")
    ids, dialogue = np.unique(dialogues, return_inverse=True)
    n = len(ids)
    counts = [confusions(p, labels, dialogue, n, n_classes) for p in (row_pred, base_pred)]
    point = acc_f1(counts[0].sum(1), n_classes).mean(0) - acc_f1(counts[1].sum(1), n_classes).mean(0)
    rng = np.random.default_rng(seed)
    # how often each dialogue is drawn: summing its confusion counts that often is exactly the resampled test set
    drawn = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    weights = np.bincount(drawn.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


    def resampled(c):  # (n_boot, 2): the metric averaged over seeds drawn with replacement
        per_seed = acc_f1(np.matmul(weights, c), n_classes)  # (seeds, n_boot, 2)
        seeds = rng.integers(0, len(c), size=(len(c), n_boot))
        return np.take_along_axis(per_seed, seeds[:, :, None], axis=0).mean(0)


    draws = resampled(counts[0]) - resampled(counts[1])
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return point, low, high
