"""MGLRA (Meng et al., TASLP 2024) as released (METHOD_NOTES §2.2-2.4), with its bugs fixed by default,
plus the Matryoshka classifier (MRL / MRL-E) and the per-modality student heads of MKD.

A teacher is the same model over one modality: no cross-modal attention, the unimodal graph.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter

from erc.data.batching import Padding
from erc.models.mrl import NestedClassifier
from erc.models.layers import Dropout, bidirectional_lstm
from erc.runtime.errors import InputError


@dataclass
class MGLRAConfig:
    """Everything that builds an MGLRA (``erc.training.loop.model_config`` fills it from params.yaml and the feature
    file); a checkpoint stores it as a plain dict (``as_dict``, in this field order) and reads it back with
    ``from_dict``."""
    input_dims: dict  # modality -> feature shape per utterance: text (layers, dim), the others (dim,)
    n_speakers: int
    n_classes: int
    hidden: int = 512
    graph_hidden: int = 512
    input_dropout: float = 0.0
    graph_layers: int = 4
    attention_heads: int = 2
    dropout: float = 0.5
    mask_ratio: float = 0.5
    av_lstm: bool = False
    speaker: str = "text"
    speaker_init_std: float = 1.0
    block_order: str = "graph_first"
    faithful: bool = False
    nesting: list[int] | None = None  # the MRL sizes; None: the full block only
    shared_head: bool = False
    student_placement: str | None = None  # MKD's student heads: unimodal | encoder | graph, or None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: dict, where) -> "MGLRAConfig":
        """A stored config; an entry this code does not know (another version's checkpoint) is an InputError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known) if isinstance(config, dict) else ["(not a dict)"]
        if unknown:
            raise InputError(f"{where}: model config has unknown entries {unknown}")
        try:
            return cls(**config)
        except TypeError as err:
            raise InputError(f"{where}: model config incomplete ({err})") from None


class BiLSTM(nn.Module):
    """2-layer bidirectional LSTM over each dialogue; padding never reaches a real utterance (erc.recurrent)."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(width, width // 2, num_layers=2, bidirectional=True, batch_first=True, dropout=dropout)

    def forward(self, flat: torch.Tensor, padding: Padding) -> torch.Tensor:
        return padding.unpad(bidirectional_lstm(self.lstm, padding.pad(flat), padding))  # (N, width)


class CrossModalAttention(nn.Module):
    """Queries from one modality, keys and values from text, over the utterances of the same dialogue.

    ``faithful=True`` reproduces the released bug: attention across the dialogues of a batch at the same
    utterance position, padding unmasked.
    """

    def __init__(self, width: int, heads: int, faithful: bool):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.faithful = faithful

    def forward(self, query_flat, text_flat, padding: Padding):
        query, text = padding.pad(query_flat), padding.pad(text_flat)
        if self.faithful:
            out, _ = self.attention(query.transpose(0, 1), text.transpose(0, 1), text.transpose(0, 1), need_weights=False)
            out = out.transpose(0, 1)
        else:
            out, _ = self.attention(query, text, text, key_padding_mask=~padding.mask, need_weights=False)
        return query_flat + padding.unpad(out)


class MaskedGatedConv(nn.Module):
    """out_i = Σ_j A_ij · tanh(w·[h̃_i ‖ h̃_j] + b) · h̃_j, h̃ the randomly masked input and A the normalised adjacency
    (METHOD_NOTES §2.4), over a batch of dialogues at once: h is (B, nodes, channels) and A (B, nodes, nodes), dense
    within each dialogue (``erc.data.batching.dense_adjacency``). The gate splits into per-node scalars a·h̃_i + c·h̃_j, so
    a layer is one (B, nodes, nodes) gate matrix and one batched matrix product: no (edges × channels) tensor, no
    sparse bookkeeping."""

    def __init__(self, channels: int, mask_ratio: float, faithful: bool):
        super().__init__()
        self.gate = nn.Linear(2 * channels, 1)
        self.channels, self.mask_ratio, self.faithful = channels, mask_ratio, faithful

    def mask(self, h):
        # torch.rand is several times faster than the bernoulli_ behind F.dropout on CPU
        if self.faithful:  # released: a fresh keep-mask in train and eval alike, no rescaling
            return h * (torch.rand_like(h) >= self.mask_ratio)
        if not self.training or self.mask_ratio == 0:
            return h
        return h * (torch.rand_like(h) >= self.mask_ratio) / (1 - self.mask_ratio)

    def gate_parts(self, h):
        """(a·h, c·h): the gate's target and source halves, one scalar a node (one product for both)."""
        parts = h @ self.gate.weight.view(2, self.channels).T  # (..., 2)
        return parts[..., 0], parts[..., 1]

    def forward(self, h, adjacency):
        h = self.mask(h)
        target, source = self.gate_parts(h)  # (B, nodes) each
        gates = torch.tanh((target + self.gate.bias).unsqueeze(2) + source.unsqueeze(1))  # [b, i, j]: edge j -> i
        return torch.bmm(adjacency * gates, h)

    def forward_per_edge(self, h, edge_index, edge_weight):
        """The released per-edge form over one graph, h (nodes, channels): (edges × channels) messages, then a
        scatter. Only to check the dense path."""
        target, source = self.gate_parts(h)
        values = edge_weight * torch.tanh(target[edge_index[1]] + source[edge_index[0]] + self.gate.bias)
        messages = values.unsqueeze(-1) * h[edge_index[0]]
        return scatter(messages, edge_index[1], dim=0, dim_size=h.shape[0], reduce="sum")


def restore(config: MGLRAConfig, state: dict, device="cpu") -> "MGLRA":
    """A trained MGLRA from a checkpoint's config and (CPU) state, on ``device``, in eval mode: built and loaded on
    the host, then moved."""
    with torch.device("cpu"):
        model = MGLRA(config)
    model.load_state_dict(state)
    return model.to(device).eval()


TEXT_ONLY_ANSWERS = ("fused", "student", "teacher", "student+teacher")


def text_only_head(config: MGLRAConfig, wanted: str) -> str:
    """What answers a dialogue without audio (``mkd.text_only``), as far as the checkpoint can give it:
    ``student`` (and ``student+teacher``, the mean of the student's and the frozen text teacher's probabilities)
    only where the checkpoint has a text student head that never sees audio (``unimodal`` placement);
    ``teacher`` wherever the model reads text (the pipeline trains a text teacher whenever it does). Anything
    else, or an answer the checkpoint cannot give, is ``fused``: the full output with the audio marked missing."""
    has_text = "text" in config.input_dims
    has_student = config.student_placement == "unimodal" and has_text
    if wanted in ("student", "student+teacher") and has_student or wanted == "teacher" and has_text:
        return wanted
    return "fused"


class MGLRA(nn.Module):
    def __init__(self, config: MGLRAConfig):
        super().__init__()
        c = self.config = config
        input_dims, hidden, graph_hidden, dropout = c.input_dims, c.hidden, c.graph_hidden, c.dropout
        self.modalities = [m for m in ("text", "audio", "visual") if m in input_dims]
        self.block_order = c.block_order
        self.batch_dependent = c.faithful  # eval answers depend on the batch's other dialogues (models.predict.eval_batch_size)
        self.input_dropout = Dropout(c.input_dropout)  # on each modality's (normalised) features; 0 = released
        self.encoders = nn.ModuleDict()
        self.lstms = nn.ModuleDict()
        for m in self.modalities:
            dim = input_dims[m][-1]
            self.encoders[m] = nn.Linear(dim, hidden)
            if m == "text" or c.av_lstm:
                self.lstms[m] = BiLSTM(hidden, dropout)
        # Where the speaker embedding is added: "text", the text nodes (released); "all", every modality's nodes
        # (the paper's figure); "encoder", every modality's encoding before its BiLSTM, so the sequence models
        # see who speaks (as the bc-LSTM's speaker one-hot does).
        self.speaker = speaker = c.speaker
        self.speaker_nodes = {"text": [m for m in self.modalities if m == "text"], "all": self.modalities,
                              "encoder": []}[speaker]
        if "text" in input_dims:
            layers, dim = input_dims["text"]  # one BatchNorm per (layer, dimension): each layer normalised apart
            self.text_norm = nn.BatchNorm1d(layers * dim)
        if self.speaker_nodes or speaker == "encoder":
            self.speaker_embedding = nn.Embedding(c.n_speakers, hidden)  # N(0, 1) rows, as released
            if c.speaker_init_std != 1.0:  # re-drawn only when asked, so the released init keeps its random stream
                nn.init.normal_(self.speaker_embedding.weight, std=c.speaker_init_std)
        self.cross_attention = (CrossModalAttention(hidden, c.attention_heads, c.faithful)
                                if "text" in input_dims and len(self.modalities) > 1 else None)
        self.projection = nn.Linear(hidden, graph_hidden)
        self.convs = nn.ModuleList(MaskedGatedConv(graph_hidden, c.mask_ratio, c.faithful)
                                   for _ in range(c.graph_layers))
        self.dropout = Dropout(dropout)
        block = 2 * graph_hidden
        self.classifier = NestedClassifier(block, len(self.modalities), c.nesting or [block], c.n_classes,
                                           c.shared_head)
        self.student_placement = c.student_placement
        if c.student_placement:
            width = block if c.student_placement == "graph" else hidden
            self.student_heads = nn.ModuleDict({m: nn.Linear(width, c.n_classes) for m in self.modalities})

    def encode(self, batch) -> tuple[dict, dict]:
        """Per-modality utterance encodings, modality -> (N, hidden): after cross-modal attention, and before it
        (E_k(x_k), what modality k alone gives: the unimodal student heads' input)."""
        encoded = {}
        for m in self.modalities:
            x = batch.features[m]
            if m == "text":  # BatchNorm per layer over real utterances only, then the mean of the layers
                x = self.text_norm(x.flatten(1)).view_as(x).mean(1)
            x = self.encoders[m](self.input_dropout(x))
            if self.speaker == "encoder":
                x = x + self.speaker_embedding(batch.speakers)
            encoded[m] = self.lstms[m](x, batch.padding) if m in self.lstms else x
        unimodal = dict(encoded)
        if self.cross_attention is not None:
            for m in self.modalities[1:]:  # the shared module, queries from audio / visual
                encoded[m] = self.cross_attention(encoded[m], encoded["text"], batch.padding)
        return encoded, unimodal

    def forward(self, batch) -> dict:
        encoded, unimodal = self.encode(batch)
        h0 = []  # each modality's nodes, projected, as (B, L, graph_hidden) zero-padded dialogues
        for m in self.modalities:
            x = encoded[m] + self.speaker_embedding(batch.speakers) if m in self.speaker_nodes else encoded[m]
            h0.append(batch.padding.pad(self.projection(x)))
        h0 = torch.cat(h0, dim=1)  # (B, M·L, graph_hidden): node k·L + u is utterance u of modality k
        h = h0
        for conv in self.convs:
            h = h + conv(h, batch.adjacency)
        out = torch.cat([h, h0] if self.block_order == "graph_first" else [h0, h], dim=2)  # (B, M·L, 2H)
        chunks = out.chunk(len(self.modalities), dim=1)
        blocks = {m: batch.padding.unpad(block) for m, block in zip(self.modalities, chunks)}
        fused = torch.cat([blocks[m] for m in self.modalities], dim=1)  # (N, n_modalities * 2H)
        result = {"logits": self.classifier(F.relu(self.dropout(fused)))}
        if self.student_placement:
            source = {"unimodal": unimodal, "encoder": encoded, "graph": blocks}[self.student_placement]
            result["student_logits"] = {m: self.student_heads[m](self.dropout(source[m])) for m in self.modalities}
        return result
