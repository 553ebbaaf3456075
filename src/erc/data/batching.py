"""Mini-batches of whole dialogues: flat utterance tensors and the batch's dialogue graphs as one dense, zero-padded
adjacency (``dense_adjacency``)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

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

    @cached_property
    def padding(self) -> "Padding":
        """The batch's flat <-> padded layout (``Padding``), built once, where the utterances' tensors are."""
        return Padding(self.lengths, self.labels.device)


class Padding:
    """Where a batch's flat (N, ...) utterance rows sit in its (B, L, ...) zero-padded dialogues (L the longest),
    worked out once a batch (``Batch.padding``). ``pad`` / ``unpad`` move rows between the two layouts and
    ``reverse`` turns each dialogue around within its own length (padding stays put: the backward direction of
    ``erc.models.layers.bidirectional_lstm``); each is one copy of whole rows by a precomputed index, several times
    cheaper on CPU than a boolean mask (a ``nonzero`` each time) or a ``gather`` along time. Moving values changes
    none, so the numbers are the masks' exactly. Worked out on the host from ``lengths``; the indices live on
    ``device``."""

    def __init__(self, lengths: torch.Tensor, device=None):
        self.batch, self.longest = len(lengths), int(lengths.max())
        steps = torch.arange(self.longest, device="cpu")  # worked out on the host, then moved: no device sync
        n = lengths.cpu().unsqueeze(1)
        mask = steps < n  # (B, L): real utterances
        rows = mask.flatten().nonzero().squeeze(1)  # (N,): their places in the flattened (B·L) layout
        within = torch.where(mask, n - 1 - steps, steps)  # (B, L): the step each place reads, reversed
        reversal = (within + torch.arange(self.batch, device="cpu").unsqueeze(1) * self.longest).flatten()
        self.mask, self.rows, self.reversal = (t.to(device) for t in (mask, rows, reversal))

    def pad(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, ...) dialogue-major rows -> (B, L, ...), zeros past each dialogue's length."""
        padded = flat.new_zeros(self.batch * self.longest, *flat.shape[1:]).index_copy(0, self.rows, flat)
        return padded.view(self.batch, self.longest, *flat.shape[1:])

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """(B, L, ...) -> the (N, ...) rows of real utterances, dialogue-major."""
        return padded.flatten(0, 1).index_select(0, self.rows)

    def reverse(self, padded: torch.Tensor) -> torch.Tensor:
        """(B, L, ...) with each dialogue's real steps in reverse order, padding where it was; its own inverse, and
        so is its gradient (no scatter-add: deterministic on CUDA)."""
        return _Permute.apply(padded, self.reversal)


class _Permute(torch.autograd.Function):
    """Rows of the flattened (B·L) layout read through an involution: the gradient is the same permutation."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.save_for_backward(index)
        return x.flatten(0, 1).index_select(0, index).view_as(x)

    @staticmethod
    def backward(ctx, grad):
        index, = ctx.saved_tensors
        return grad.flatten(0, 1).index_select(0, index).view_as(grad), None


def dialogue_block(graph, n: int, n_modalities: int) -> torch.Tensor:
    """(M·n, M·n) edge weights of one dialogue graph (erc.data.graphs: node k·n + u is utterance u of modality k),
    entry [target, source]. Duplicate edges add up, as they do in message passing."""
    size = n_modalities * n
    source, target = graph.edge_index
    if graph.num_edges and int(torch.maximum(source, target).max()) >= size:
        raise ValueError("a dialogue graph has a node beyond its n_modalities x n utterances")
    block = torch.zeros(size, size, device="cpu")
    return block.index_put_((target, source), graph.edge_weight, accumulate=True)


def dense_adjacency(graphs: list, lengths: torch.Tensor, n_modalities: int) -> torch.Tensor:
    """(B, M·L, M·L) edge weights of dialogue graphs: each one's ``dialogue_block`` placed by ``place_blocks``."""
    return place_blocks([dialogue_block(g, n, n_modalities) for g, n in zip(graphs, lengths.tolist())], lengths,
                        n_modalities)


def place_blocks(blocks: list, lengths: torch.Tensor, n_modalities: int) -> torch.Tensor:
    """Dialogues' (M·n, M·n) blocks -> (B, M·L, M·L), entry [b, k·L + i, k'·L + j] the weight of the edge from
    (k', j) to (k, i), L the longest dialogue, no edges at padding. Message passing over whole dialogues is then one
    batched matrix product: every graph here is dense within its dialogue (complete, or a window of it), and dense
    blocks cost less than the sparse machinery on both CPU and GPU."""
    longest, m = int(lengths.max()), n_modalities
    adjacency = torch.zeros(len(blocks), m, longest, m, longest, device="cpu")
    for b, (block, n) in enumerate(zip(blocks, lengths.tolist())):
        adjacency[b, :, :n, :, :n] = block.view(m, n, m, n)
    return adjacency.view(len(blocks), m * longest, m * longest)


class DialogueData:
    """Features and prebuilt graphs of one dataset; ``batches`` yields ``Batch`` objects of whole dialogues."""

    def __init__(self, feats: FeatureFile, graphs: list, modalities: list[str] | None = None):
        self.feats = feats
        self.device = feats.labels.device
        self.modalities = modalities or list(feats.features)
        self.graphs = graphs
        self.lengths = feats.lengths
        starts = (torch.cumsum(self.lengths, 0) - self.lengths).tolist()
        # built once, gathered per batch: each dialogue's utterance indices and its graph as a dense block
        self.rows_of = [torch.arange(s, s + n, device=self.device) for s, n in zip(starts, self.lengths.tolist())]
        self.blocks = {}
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

    def block(self, i: int) -> torch.Tensor:
        """Dialogue ``i``'s graph as a dense (M·n, M·n) block (``dialogue_block``), built on first use."""
        if i not in self.blocks:
            self.blocks[i] = dialogue_block(self.graphs[i], int(self.lengths[i]), len(self.modalities))
        return self.blocks[i]

    def dialogues(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split_of) if s == SPLITS.index(split)]

    def make_batch(self, dialogue_positions: list[int]) -> Batch:
        utterances = torch.cat([self.rows_of[i] for i in dialogue_positions])
        lengths = self.lengths[dialogue_positions]  # the adjacency is built on the host, then moved with the batch
        adjacency = place_blocks([self.block(i) for i in dialogue_positions], lengths, len(self.modalities))
        rows = lambda x: x.index_select(0, utterances)  # noqa: E731  (several times faster than x[utterances] on CPU)
        return Batch(
            features={m: rows(self.feats.features[m]) for m in self.modalities},
            speakers=rows(self.feats.speakers),
            labels=rows(self.feats.labels),
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
