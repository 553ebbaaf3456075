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
    dialogues: list           # positions of the batch's dialogues in the feature file

    def to(self, device):
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return Batch({m: move(x) for m, x in self.features.items()}, move(self.speakers), move(self.labels),
                     self.lengths, move(self.utterances), move(self.edge_index), move(self.edge_weight),
                     move(self.node_index), self.dialogues)


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
        self.modalities = modalities or list(feats["features"])
        self.graphs = graphs
        self.lengths = feats["lengths"]
        self.starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.split_of = [SPLITS.index(s) for s in feats["splits"]]
        sources = feats.get("sources", {})
        self.flagged = {m: sources.get(m) in FLAGGED_SOURCES for m in self.modalities}

    def dialogues(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split_of) if s == SPLITS.index(split)]

    def make_batch(self, dialogue_positions: list[int]) -> Batch:
        utterances = torch.cat([torch.arange(self.starts[i], self.starts[i] + self.lengths[i])
                                for i in dialogue_positions])
        lengths = self.lengths[dialogue_positions]
        graph = GraphBatch.from_data_list([self.graphs[i] for i in dialogue_positions])
        return Batch(
            features={m: self.feats["features"][m][utterances] for m in self.modalities},
            speakers=self.feats["speakers"][utterances],
            labels=self.feats["labels"][utterances],
            lengths=lengths,
            utterances=utterances,
            edge_index=graph.edge_index,
            edge_weight=graph.edge_weight,
            node_index=graph_node_index(lengths, len(self.modalities)),
            dialogues=list(dialogue_positions),
        )

    def batches(self, split: str, batch_size: int, shuffle: bool = False, generator=None):
        positions = self.dialogues(split)
        if shuffle:
            positions = [positions[i] for i in torch.randperm(len(positions), generator=generator)]
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
                rows = (torch.rand(len(batch.lengths), generator=generator) < rate).repeat_interleave(batch.lengths)
            else:
                rows = torch.rand(len(x), generator=generator) < rate
            features[m] = mark_missing(x, rows.to(x.device), flagged[m])
    return replace(batch, features=features)
