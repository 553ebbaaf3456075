"""Mini-batches of whole dialogues: flat utterance tensors and the batch's dialogue graphs as one dense, zero-padded
adjacency (``dense_adjacency``)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from erc.data.datasets import SPLITS
from erc.data.feature_file import FLAGGED_SOURCES, FeatureFile, mark_missing


@dataclass
class Batch:
    features: dict          # modality -> (N_b, ...) flat utterance features
    speakers: torch.Tensor  # (N_b,)
    labels: torch.Tensor    # (N_b,), -1 where hidden
    lengths: torch.Tensor   # (B,)
    utterances: torch.Tensor  # (N_b,) global utterance index (for cached teacher logits)
    adjacency: torch.Tensor   # (B, M·L, M·L) edge weights, [b, target, source]; node k·L + u is utterance u of
                              # modality k of dialogue b, L the batch's longest dialogue (padding: no edges)

    def to(self, device):
        """Every tensor on ``device`` but ``lengths``, which packing reads on the host (a no-op for what is there)."""
        move = lambda t: t.to(device)  # noqa: E731
        return Batch({m: move(x) for m, x in self.features.items()}, move(self.speakers), move(self.labels),
                     self.lengths, move(self.utterances), move(self.adjacency))


def to_padded(flat: torch.Tensor, lengths: torch.Tensor):
    """(N, D) dialogue-major rows -> (B, L, D) zero-padded and the (B, L) mask of real utterances. Hand-written, not
    PyG's ``to_dense_batch``: that one wants a batch vector and its size on the host, which the (B,) lengths give
    directly here; the result is the same."""
    batch, longest = len(lengths), int(lengths.max())  # lengths stay on the host: packing reads them there
    mask = torch.arange(longest, device=flat.device) < lengths.to(flat.device).unsqueeze(1)  # (B, L), built in place
    padded = flat.new_zeros(batch * longest, *flat.shape[1:])
    padded[mask.flatten()] = flat
    return padded.view(batch, longest, *flat.shape[1:]), mask


def dense_adjacency(graphs: list, lengths: torch.Tensor, n_modalities: int) -> torch.Tensor:
    """(B, M·L, M·L) edge weights of dialogue graphs (erc.data.graphs: node k·n + u is utterance u of modality k of a
    dialogue of n utterances), entry [b, k·L + i, k'·L + j] the weight of the edge from (k', j) to (k, i), L the
    longest dialogue. Duplicate edges add up, as they do in message passing. Message passing over whole
    dialogues is then one batched matrix product: every graph here is dense within its dialogue (complete, or a
    window of it), and dense blocks cost less than the sparse machinery on both CPU and GPU."""
    longest, size = int(lengths.max()), n_modalities * int(lengths.max())
    dialogue = torch.repeat_interleave(torch.arange(len(graphs)), torch.tensor([g.num_edges for g in graphs]))
    source, target = torch.cat([g.edge_index for g in graphs], dim=1)
    n = lengths[dialogue]
    if ((source >= n_modalities * n) | (target >= n_modalities * n)).any():
        raise ValueError("a dialogue graph has a node beyond its n_modalities x n utterances")
    slot = lambda node: node // n * longest + node % n  # noqa: E731
    adjacency = torch.zeros(len(graphs), size, size)
    adjacency.index_put_((dialogue, slot(target), slot(source)), torch.cat([g.edge_weight for g in graphs]),
                         accumulate=True)
    return adjacency


class DialogueData:
    """Features and prebuilt graphs of one dataset; ``batches`` yields ``Batch`` objects of whole dialogues."""

    def __init__(self, feats: FeatureFile, graphs: list, modalities: list[str] | None = None):
        self.feats = feats
        self.device = feats.labels.device
        self.modalities = modalities or list(feats.features)
        self.graphs = graphs
        self.lengths = feats.lengths
        self.starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.split_of = [SPLITS.index(s) for s in feats.splits]
        sources = feats.sources
        self.flagged = {m: sources.get(m) in FLAGGED_SOURCES for m in self.modalities}

    @property
    def classes(self) -> list[str]:
        return self.feats.classes

    def to(self, device) -> "DialogueData":
        """The same data with the per-utterance tensors (features, speakers, labels) on ``device``, moved once, so
        that each batch is gathered there; graphs are collated per batch on the host and moved with it."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = self.feats.but(features={m: x.to(device) for m, x in self.feats.features.items()},
                               speakers=self.feats.speakers.to(device), labels=self.feats.labels.to(device))
        return DialogueData(moved, self.graphs, self.modalities)

    def dialogues(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split_of) if s == SPLITS.index(split)]

    def make_batch(self, dialogue_positions: list[int]) -> Batch:
        utterances = torch.cat([torch.arange(int(self.starts[i]), int(self.starts[i] + self.lengths[i]), device=self.device)
                                for i in dialogue_positions])
        lengths = self.lengths[dialogue_positions]
        with torch.device("cpu"):  # built on the host, then moved with the batch
            adjacency = dense_adjacency([self.graphs[i] for i in dialogue_positions], lengths, len(self.modalities))
        return Batch(
            features={m: self.feats.features[m][utterances] for m in self.modalities},
            speakers=self.feats.speakers[utterances],
            labels=self.feats.labels[utterances],
            lengths=lengths,
            utterances=utterances,
            adjacency=adjacency,
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
