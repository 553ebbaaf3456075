"""Per-epoch test records: every training run's test-split class probabilities after each epoch, kept beside the
run's outputs (``models/<dataset>.epochs.pt``, ``models/teachers/...``, ``models/references/...``) so that the
paper's protocol (the epoch picked on the test set, a search over seeds) can be *measured*, never used.

A record file holds ``{"split": "test", "utterances": (N,) global indices, "runs": {run: (epochs, N, C) float16}}``.
Training writes them with the test labels hidden; only ``evaluate`` and reports that choose nothing score them."""
from __future__ import annotations

import numpy as np
import torch

from erc.runtime.errors import InputError
from erc.runtime.files import load_torch
from erc.evaluation.metrics import classification_metrics, host, mean_std

RECORD_KEYS = ("split", "utterances", "runs")


def epochs_path(output: str) -> str:
    """The record file kept beside a stage's output: ``models/iemocap.pt`` -> ``models/iemocap.epochs.pt``."""
    if not output.endswith(".pt"):
        raise ValueError(f"{output}: not a .pt output")
    return output[:-3] + ".epochs.pt"


def collect_records(results: dict, split: str = "test") -> dict:
    """Take each run's ``recorded`` / ``recorded_utterances`` (what ``fit(record=split)`` returns) out of
    ``results`` (run -> dict, changed in place, so the stage's own output is the one it wrote before records
    existed) into one record file's content."""
    runs, utterances = {}, None
    for name, result in results.items():
        probs, order = result.pop("recorded"), result.pop("recorded_utterances")
        if utterances is not None and not torch.equal(order, utterances):
            raise ValueError(f"run {name}: its {split} utterances come in another order")
        runs[name], utterances = probs, order
    return {"split": split, "utterances": utterances, "runs": runs}


def load_records(path: str, n_classes: int) -> dict:
    """A record file, checked: each run an (epochs, N, n_classes) tensor over the same N utterances."""
    record = load_torch(path, "per-epoch record file", RECORD_KEYS)
    n = len(record["utterances"])
    for name, probs in record["runs"].items():
        if not isinstance(probs, torch.Tensor) or probs.ndim != 3 or tuple(probs.shape[1:]) != (n, n_classes):
            raise InputError(f"{path}: run {name} is not an (epochs, {n}, {n_classes}) tensor")
    return record


def epoch_scores(probs: torch.Tensor, labels, classes: list[str]) -> list[dict]:
    """Metrics of each epoch's predictions ``probs`` (epochs, N, C) against ``labels`` (N,); unlabelled (-1) skipped."""
    labels = host(labels)
    predictions = host(probs.float().argmax(-1))
    return [classification_metrics(labels, predictions[e], classes) for e in range(len(predictions))]


def paper_epoch(scores: list[dict], key: str = "weighted_f1") -> int:
    """The paper's choice: the 1-based epoch of the best test score (first of equals, as their logs keep only
    strict improvements)."""
    values = np.array([s[key] for s in scores])
    return int(values.argmax()) + 1


def run_protocols(probs: torch.Tensor, labels, classes: list[str], valid_epoch: int) -> dict:
    """One run's record scored: its validation-picked (ours) and test-picked (the paper's) epochs and test scores,
    and the test w-F1 of every epoch. ``labels``: the record's utterances' labels. Chooses nothing."""
    scores = epoch_scores(probs, labels, classes)
    picked = paper_epoch(scores)
    return {"valid_picked_epoch": valid_epoch, "test_picked_epoch": picked,
            "test_at_valid_picked": {k: scores[valid_epoch - 1][k] for k in ("acc", "weighted_f1")},
            "test_at_test_picked": {k: scores[picked - 1][k] for k in ("acc", "weighted_f1")},
            "test_weighted_f1_by_epoch": [round(s["weighted_f1"], 4) for s in scores]}


def _spread(values) -> dict:
    values = np.asarray(list(values), dtype=float)
    return {**mean_std(values), "median": float(np.median(values)), "best": float(values.max())}


def both_protocols(record: dict, labels: torch.Tensor, classes: list[str], valid_epochs: dict) -> dict:
    """Each run's test score at its validation-picked epoch (``valid_epochs``: run -> epoch; ours) and at its
    test-picked epoch (the paper's), both from the record, with their spread over runs and the gap between them.
    ``labels``: every utterance's label (N_all,). A report: it returns figures and chooses nothing."""
    order = record["utterances"]
    per_run = [{"run": run, **run_protocols(probs, labels[order], classes, valid_epochs[run])}
               for run, probs in record["runs"].items()]
    summary = {name: {k: _spread(r[key][k] for r in per_run) for k in ("acc", "weighted_f1")}
               for name, key in (("validation_picked", "test_at_valid_picked"), ("test_picked", "test_at_test_picked"))}
    gap = summary["test_picked"]["weighted_f1"]["mean"] - summary["validation_picked"]["weighted_f1"]["mean"]
    return {**summary, "gap_weighted_f1": gap, "per_run": per_run}
