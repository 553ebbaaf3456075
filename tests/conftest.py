"""Shared fixtures: a small random-feature dataset (inputs are noise, never derived from labels)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from erc.graphs import build_graphs

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"


def random_feats(lengths, splits, n_classes=3, n_speakers=2, text=(2, 12), audio=5, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    feats = {"text": torch.randn(n, *text, generator=g)}
    if audio:
        feats["audio"] = torch.randn(n, audio, generator=g)
    return {
        "dataset": "toy", "classes": [f"c{i}" for i in range(n_classes)], "n_speakers": n_speakers,
        "sources": {"text": "random", "audio": "random", "visual": "none"},
        "dialogue_ids": [str(i) for i in range(len(lengths))], "splits": list(splits),
        "lengths": torch.tensor(lengths), "speakers": torch.randint(0, n_speakers, (n,), generator=g),
        "labels": torch.randint(0, n_classes, (n,), generator=g), "sentences": [""] * n, "features": feats,
    }


@pytest.fixture
def toy():
    lengths = [5, 3, 7, 4, 6, 2, 5, 4, 3, 6]
    splits = ["train"] * 6 + ["valid"] * 2 + ["test"] * 2
    feats = random_feats(lengths, splits)
    graphs = build_graphs(lengths, len(feats["features"]))
    return feats, graphs


def small_model_kwargs(feats, **overrides):
    kwargs = dict(input_dims={m: tuple(t.shape[1:]) for m, t in feats["features"].items()},
                  n_speakers=feats["n_speakers"], n_classes=len(feats["classes"]), hidden=16, graph_hidden=8,
                  graph_layers=2, attention_heads=2, dropout=0.5, mask_ratio=0.5)
    kwargs.update(overrides)
    return kwargs
