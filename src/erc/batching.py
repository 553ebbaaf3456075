"""Mini-batches of whole dialogues: flat utterance tensors, the batched PyG graph and the index maps."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch_geometric.data import Batch as GraphBatch

from erc.datasets import SPLITS
from erc.features import FLAGGED_SOURCES, mark_missing


@dataclass
class Batch:
    features: dict          # modality -> (N_b, ...) flat utterance features
    speakers: torch.Tensor  # (N_b,)
    labels: torch.Tensor    # (N_b,), -1 where hidden
    lengths: torch.Tensor   # (B,)
    utterances: torch.Tensor  # (N_b,) global utterance index (for cached teacher logits)
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    node_index: torch.Tensor  # (n_modalities, N_b): graph node of each utterance's modality node

    def to(self, device):
        """Every tensor on ``device`` but ``lengths``, which packing reads on the host (a no-op for what is there)."""
        move = lambda t: t.to(device)  # noqa: E731
        return Batch({m: move(x) for m, x in self.features.items()}, move(self.speakers), move(self.labels),
                     self.lengths, move(self.utterances), move(self.edge_index), move(self.edge_weight),
                     move(self.node_index))


def to_padded(flat: torch.Tensor, lengths: torch.Tensor):
    """(N, D) dialogue-major rows -> (B, L, D) zero-padded and the (B, L) mask of real utterances. Hand-written, not
    PyG's ``to_dense_batch``: that one wants a batch vector and its size on the host, which the (B,) lengths give
    directly here; the result is the same."""
    batch, longest = len(lengths), int(lengths.max())  # lengths stay on the host: packing reads them there
    mask = torch.arange(longest, device=flat.device) < lengths.to(flat.device).unsqueeze(1)  # (B, L), built in place
    padded = flat.new_zeros(batch * longest, *flat.shape[1:])
    padded[mask.flatten()] = flat
    return padded.view(batch, longest, *flat.shape[1:]), mask


def graph_node_index(lengths: torch.Tensor, n_modalities: int) -> torch.Tensor:
    """(n_modalities, N) node of (modality k, utterance) in a batch of dialogue graphs laid out k*n + u."""
    starts = torch.cumsum(lengths, 0) - lengths  # first utterance of each dialogue
    dialogue = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    position = torch.arange(int(lengths.sum())) - starts[dialogue]
    base = n_modalities * starts[dialogue] + position
    return torch.stack([base + k * lengths[dialogue] for k in range(n_modalities)])


class DialogueData:
    """Features and prebuilt graphs of one dataset; ``batches`` yields ``Batch`` objects of whole dialogues."""

    def __init__(self, feats: dict, graphs: list, modalities: list[str] | None = None):
        self.feats = feats
        self.device = feats["labels"].device
        self.modalities = modalities or list(feats["features"])
        self.graphs = graphs
        self.lengths = feats["lengths"]
        self.starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.split_of = [SPLITS.index(s) for s in feats["splits"]]
        sources = feats.get("sources", {})
        self.flagged = {m: sources.get(m) in FLAGGED_SOURCES for m in self.modalities}

    def to(self, device) -> "DialogueData":
        """The same data with the per-utterance tensors (features, speakers, labels) on ``device``, moved once, so
        that each batch is gathered there; graphs are collated per batch on the host and moved with it."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = {**self.feats, "features": {m: x.to(device) for m, x in self.feats["features"].items()},
                 "speakers": self.feats["speakers"].to(device), "labels": self.feats["labels"].to(device)}
        return DialogueData(moved, self.graphs, self.modalities)

    def dialogues(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split_of) if s == SPLITS.index(split)]

    def make_batch(self, dialogue_positions: list[int]) -> Batch:
        utterances = torch.cat([torch.arange(int(self.starts[i]), int(self.starts[i] + self.lengths[i]), device=self.device)
                                for i in dialogue_positions])
        lengths = self.lengths[dialogue_positions]
        with torch.device("cpu"):  # graphs are collated on the host (PyG's collation), then moved with the batch
            graph = GraphBatch.from_data_list([self.graphs[i] for i in dialogue_positions])
            node_index = graph_node_index(lengths, len(self.modalities))
        return Batch(
            features={m: self.feats["features"][m][utterances] for m in self.modalities},
            speakers=self.feats["speakers"][utterances],
            labels=self.feats["labels"][utterances],
            lengths=lengths,
            utterances=utterances,
            edge_index=graph.edge_index,
            edge_weight=graph.edge_weight,
            node_index=node_index,
        )

    def batches(self, split: str, batch_size: int, shuffle: bool = False, generator=None):
        positions = self.dialogues(split)
        if shuffle:
            positions = [positions[i] for i in torch.randperm(len(positions), generator=generator, device="cpu")]
        for start in range(0, len(positions), batch_size):
            yield self.make_batch(positions[start:start + batch_size])


def drop_modalities(batch: Batch, rate: float, generator: torch.Generator, flagged: dict,
                    unit: str = "utterance") -> Batch:
    """Modality dropout: each utterance's (``unit="dialogue"``: each dialogue's, all its utterances at once) audio
    and visual, independently, marked missing with chance ``rate`` (text is kept: it is what every dialogue has)."""
    features = dict(batch.features)
    for m, x in batch.features.items():
        if m != "text":
            if unit == "dialogue":
                rows = (torch.rand(len(batch.lengths), generator=generator, device="cpu") < rate
                        ).repeat_interleave(batch.lengths)
            else:  # drawn on the host, from the host generator: the same draws on every device
                rows = torch.rand(len(x), generator=generator, device="cpu") < rate
            features[m] = mark_missing(x, rows.to(x.device), flagged[m])
    return replace(batch, features=features)
