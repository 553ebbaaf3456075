"""The multimodal dialogue graph of MGLRA (METHOD_NOTES §2.3), built once per dialogue as PyG data.

Nodes of a dialogue with n utterances and m modalities: node k*n + u is utterance u of modality k.
Intra-modal edges join every ordered pair of utterances of one modality (optionally within a past/future
window), cross-modal edges every ordered pair of one utterance's modality nodes; no self-loops.
``edge_weight`` holds the symmetric normalisation deg(src)^-1/2 deg(dst)^-1/2 (degree counted on sources).
"""
from __future__ import annotations

import torch
from torch_geometric.data import Data

from erc.runtime.errors import InputError

GRAPH_KEYS = ("multimodal", "unimodal")  # what data/graphs/<ds>.pt holds


def intra_modal_pairs(n: int, window_past: int = -1, window_future: int = -1) -> torch.Tensor:
    """(2, E) edges j -> i between utterances of one modality, i != j, j within the window of i."""
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    offset = src - dst  # > 0: the source is in the future of the target
    keep = offset != 0
    if window_past >= 0:
        keep &= offset >= -window_past
    if window_future >= 0:
        keep &= offset <= window_future
    return torch.stack([src[keep], dst[keep]])


def dialogue_graph(n: int, n_modalities: int, window_past: int = -1, window_future: int = -1) -> Data:
    if n <= 0:
        raise InputError(f"cannot build a graph for an empty dialogue (n={n})")
    intra = intra_modal_pairs(n, window_past, window_future)
    edges = [intra + k * n for k in range(n_modalities)]
    for a in range(n_modalities):
        for b in range(n_modalities):
            if a != b:
                utt = torch.arange(n)
                edges.append(torch.stack([a * n + utt, b * n + utt]))
    edge_index = torch.cat(edges, dim=1)
    num_nodes = n * n_modalities
    degree = torch.bincount(edge_index[0], minlength=num_nodes).float()
    inv_sqrt = degree.clamp(min=1).pow(-0.5) * (degree > 0)
    edge_weight = inv_sqrt[edge_index[0]] * inv_sqrt[edge_index[1]]
    return Data(edge_index=edge_index, edge_weight=edge_weight, num_nodes=num_nodes)


def build_graphs(lengths, n_modalities: int, window_past: int = -1, window_future: int = -1) -> dict:
    """Graphs of every dialogue: ``multimodal`` (all modalities) and ``unimodal`` (for the teachers)."""
    lengths = [int(n) for n in lengths]
    return {
        "n_modalities": n_modalities,
        "window": (window_past, window_future),
        "lengths": lengths,
        "multimodal": [dialogue_graph(n, n_modalities, window_past, window_future) for n in lengths],
        "unimodal": [dialogue_graph(n, 1, window_past, window_future) for n in lengths],
    }
