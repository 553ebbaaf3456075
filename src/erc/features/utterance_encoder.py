"""Fine-tuned text encoders (``features.text: minilm-ft | mpnet-ft | ft``): the encoder a source starts from, the
model inputs (the utterance, then its context turns), the classifier the stage fine-tunes, and the (N, 4, width)
features every later stage reads: the mean of the utterance's tokens in each of the encoder's last four layers,
whatever its depth (COSMIC's choice for RoBERTa-large; 3-6 of MiniLM's 6, 9-12 of MPNet's 12, 21-24 of
RoBERTa-large's 24). Any encoder ``transformers.AutoModel`` loads whose tokenizer has a [CLS]-style first token
and a separator (BERT, RoBERTa, MPNet, DeBERTa, ...). ``erc.training.finetune`` trains them."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from erc.data.datasets import Dialogue, repair_cp1252
from erc.runtime.errors import InputError
from erc.features.text import N_LAYERS, encoder_for, layer_means, minilm_dir, mpnet_dir

# features.text -> the encoder it starts from (ft: finetune.encoder)
FINETUNED = {"minilm-ft": "minilm", "mpnet-ft": "mpnet", "ft": None}
PIECE_OVERHEAD = 64  # what one more encoder pass costs, in padded tokens (MiniLM, one CPU thread; fitted by
                     # benchmarks/finetune_speed.py; another value cuts other sub-batches: other dropout draws)


def base_encoder_dir(source: str, encoder: str | None = None) -> Path:
    """The pretrained encoder a fine-tuned source starts from (``encoder``: ``finetune.encoder``, read for ``ft``);
    one clear line when it is not available."""
    return resolve_encoder(FINETUNED[source] or encoder)


def resolve_encoder(name: str) -> Path:
    """The local folder of encoder ``name``: minilm / mpnet (the offline packages), a folder in the transformers
    layout, or a Hugging Face model id: from the local cache, else downloaded unless ``HF_HUB_OFFLINE`` is set."""
    if name == "minilm":
        return minilm_dir()
    if name == "mpnet":
        return mpnet_dir()
    if Path(name).is_dir():
        if not (Path(name) / "config.json").is_file():
            raise InputError(f"finetune.encoder {name!r}: the folder has no config.json (not a transformers model)")
        return Path(name)
    from huggingface_hub import snapshot_download
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001  (not in the cache: any of the hub client's errors)
        pass
    try:
        if offline:
            raise OSError("offline")
        return Path(snapshot_download(name))
    except Exception:  # noqa: BLE001  (unreachable, unknown or gated: one line, how to make it available)
        raise InputError(f"finetune.encoder {name!r}: not a local folder, not in the Hugging Face cache"
                         f"{'' if offline else ' and not downloadable from here'}; on a machine with the hub run "
                         f"`hf download {name} --local-dir DIR`, copy DIR here and set finetune.encoder: DIR") from None


def check_source(source: str) -> None:
    if source not in FINETUNED:
        raise InputError(f"params.yaml: 'features.text' {source!r} is not a fine-tuned source ({', '.join(FINETUNED)})")


def speaker_tag(dataset: str, speaker: int) -> str:
    return "MF"[speaker] if dataset == "iemocap" else f"P{speaker}"


def _find(ids: list[int], part: list[int], last: bool = False) -> int | None:
    at = [i for i in range(len(ids) - len(part) + 1) if ids[i:i + len(part)] == part]
    return (at[-1] if last else at[0]) if at else None


def special_layout(tokenizer) -> tuple[list[int], list[int], list[int], list[int]]:
    """The special tokens the tokenizer's own templates put around one text (``before``, ``after``) and around a
    pair (the same ``before``, then ``between`` and ``after_pair``), read off the installed tokenizer by encoding
    probe texts: BERT [CLS] a [SEP] b [SEP]; RoBERTa / MPNet <s> a </s></s> b </s>; DeBERTa (v1, transformers 5)
    [CLS] a [SEP][SEP] b [SEP]. Refused in one line: no single opening token, or no separator between the texts."""
    ids_a, ids_b = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("first", "second"))
    single, pair = tokenizer("first")["input_ids"], tokenizer("first", "second")["input_ids"]
    start, end, alone = _find(pair, ids_a), _find(pair, ids_b, last=True), _find(single, ids_a)
    if not ids_a or not ids_b or None in (start, end, alone) or start + len(ids_a) >= end \
            or start != 1 or single[:alone] != pair[:start]:
        raise InputError(f"finetune.encoder ({tokenizer.name_or_path}): its tokenizer's templates do not open with "
                         "one special token and separate a pair of texts ([CLS] a [SEP] b [SEP], <s> a </s></s> b "
                         "</s>, ...)")
    return pair[:start], single[alone + len(ids_a):], pair[start + len(ids_a):end], pair[end + len(ids_b):]


class Inputs:
    """Token ids of every utterance of ``dialogues`` (utterance, then its context), and the utterance's span. The
    utterance and its context are laid out as the tokenizer lays out a pair of texts itself (``special_layout``);
    ``token_type_ids`` are left at 0 (the encoder's default)."""

    def __init__(self, tokenizer, dialogues: list[Dialogue], dataset: str, context: int, max_length: int,
                 future: int = 0):
        self.ids, self.spans = [], []
        before, after, between, after_pair = special_layout(tokenizer)
        # room for the special tokens of the longer layout, at least the 4 every encoder kept before the layout was
        # read off the tokenizer (so that MiniLM's and MPNet's inputs stay what they were)
        room = max(4, len(before) + max(len(after), len(between) + len(after_pair)))
        sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else between[-1]  # before the future
        for d in dialogues:
            sentences = [repair_cp1252(s) for s in d.sentences]
            encoded = tokenizer(sentences, add_special_tokens=False)["input_ids"] if sentences else []
            tags = [tokenizer(f"{speaker_tag(dataset, s)}:", add_special_tokens=False)["input_ids"] for s in d.speakers]
            for i, utterance in enumerate(encoded):
                utterance = utterance[:max_length - room]
                previous = [tok for j in range(max(0, i - context), i) for tok in tags[j] + encoded[j]]
                budget = max_length - len(utterance) - room
                following = []
                if future:  # after the previous turns, behind a separator: at most half the room when both overflow
                    following = [sep] + [tok for j in range(i + 1, min(len(encoded), i + 1 + future))
                                         for tok in tags[j] + encoded[j]]
                    if len(previous) + len(following) > budget:
                        following = following[:max(budget - len(previous), budget // 2, 0)]  # its far end cut
                    following = following if len(following) > 1 else []
                budget -= len(following)
                previous = previous[len(previous) - budget:] if 0 < budget < len(previous) else \
                    (previous if budget > 0 else [])
                context_ids = previous + following
                self.ids.append(before + utterance + (between + context_ids + after_pair if context_ids else after))
                self.spans.append((len(before), len(before) + len(utterance)))
        self.pad = tokenizer.pad_token_id

    def batch(self, rows: list[int], device="cpu") -> dict:
        """Padded ``input_ids``, ``attention_mask`` and the utterance's token mask of ``rows``, on ``device``."""
        width = max(len(self.ids[r]) for r in rows)
        with torch.device("cpu"):  # filled row by row on the host, then moved in one copy each
            ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
            attention = torch.zeros(len(rows), width, dtype=torch.long)
            utterance = torch.zeros(len(rows), width)
            for k, r in enumerate(rows):
                ids[k, :len(self.ids[r])], attention[k, :len(self.ids[r])] = torch.tensor(self.ids[r]), 1
                utterance[k, self.spans[r][0]:self.spans[r][1]] = 1.0
        return {"input_ids": ids.to(device), "attention_mask": attention.to(device), "utterance": utterance.to(device)}


class UtteranceClassifier(nn.Module):
    """The encoder, the mean of the utterance's last-layer token states, a linear head."""

    def __init__(self, model_dir: Path, n_classes: int, freeze_layers: int = 0, checkpointing: bool = False):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel

        with torch.device("cpu"):  # weights load on the host; the caller moves the module to its device
            self.encoder = AutoModel.from_pretrained(model_dir)
            self.head = nn.Linear(self.encoder.config.hidden_size, n_classes)
        depth = getattr(self.encoder.config, "num_hidden_layers", None)
        if depth is not None and depth + 1 < N_LAYERS:  # hidden states: the embeddings' and each layer's
            raise InputError(f"{model_dir}: {depth} layers; the features read the last {N_LAYERS} hidden states "
                             f"(an encoder of {N_LAYERS - 1} layers at least)")
        if freeze_layers:  # the embeddings and the lowest layers keep their pretrained weights
            layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
            if layers is None or not hasattr(self.encoder, "embeddings"):
                raise InputError(f"params.yaml: 'finetune.freeze_layers' {freeze_layers}: {model_dir} has no "
                                 "encoder.layer list to freeze (use 0)")
            for module in [self.encoder.embeddings, *layers[:freeze_layers]]:
                module.requires_grad_(False)
        if checkpointing:  # recompute each layer's activations in the backward pass instead of keeping them
            try:
                self.encoder.activation_checkpointing_enable({"use_reentrant": False})
            except ValueError as err:  # transformers refuses families without it (MPNet): say which key to change
                raise InputError(f"finetune.checkpointing: {model_dir}: {err} (set it to false)") from None

    def states(self, batch: dict, layers: int = 1) -> torch.Tensor:
        """(B, layers, width): the utterance's mean token state in each of the last ``layers`` layers."""
        return layer_means(self.encoder, batch["input_ids"], batch["attention_mask"], batch["utterance"], layers)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.states(batch)[:, 0])

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def logits(self, inputs: Inputs, rows: list[int]) -> torch.Tensor:
        """(len(rows), classes): ``forward`` of one batch of ``rows``, the encoder run on ``length_pieces`` of it
        (less padding: ~2x faster a 32-utterance batch on one core, benchmarks/finetune_speed.py); the head and the
        loss see the whole batch, so its gradient is the batch's, up to floating-point order and the dropout
        masks' draws."""
        pieces = length_pieces([len(inputs.ids[r]) for r in rows])
        states = torch.cat([self.states(inputs.batch([rows[k] for k in piece], self.device))[:, 0] for piece in pieces])
        order = torch.argsort(torch.tensor([k for piece in pieces for k in piece], device=self.device))
        return self.head(states[order])


def length_pieces(lengths: list[int]) -> list[list[int]]:
    """Positions 0..n-1 sorted by length and cut into sub-batches minimising Σ (PIECE_OVERHEAD + rows × longest):
    the padded tokens an encoder pass computes, plus a fixed cost a pass (dynamic programming, O(n²))."""
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    sorted_lengths = [lengths[k] for k in order]
    best, cut = [0.0] + [float("inf")] * len(order), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):  # best[end]: the cheapest cut of the first `end` sorted rows
        for start in range(end):
            cost = best[start] + PIECE_OVERHEAD + (end - start) * sorted_lengths[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    pieces, end = [], len(order)
    while end > 0:
        pieces.insert(0, order[cut[end]:end])
        end = cut[end]
    return pieces


def _batches(rows: list[int], size: int, generator=None):
    if generator is not None:
        rows = [rows[i] for i in torch.randperm(len(rows), generator=generator, device="cpu")]
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


@torch.no_grad()
def in_length_order(model: UtteranceClassifier, inputs: Inputs, rows: list[int], read, batch_size: int = 64):
    """``read(batch)`` for ``rows`` in eval mode, batched by length (little padding), returned in ``rows``' order,
    on the model's device."""
    model.eval()
    order = sorted(range(len(rows)), key=lambda k: len(inputs.ids[rows[k]]))
    outputs, positions = [], []
    for chunk in _batches(order, batch_size):
        outputs.append(read(inputs.batch([rows[k] for k in chunk], model.device)))
        positions += chunk
    return torch.cat(outputs)[torch.argsort(torch.tensor(positions, device=model.device))]


def layer_features(model: UtteranceClassifier, inputs: Inputs, rows: list[int], batch_size: int = 64) -> np.ndarray:
    """(len(rows), 4, width) float32: the features every later stage reads."""
    if not rows:
        return np.zeros((0, N_LAYERS, model.encoder.config.hidden_size), dtype=np.float32)
    return in_length_order(model, inputs, rows, lambda b: model.states(b, N_LAYERS), batch_size).float().cpu().numpy()


def _rows_by_split(dialogues: list[Dialogue]) -> tuple[dict, list[str]]:
    rows, owner, n = {"train": [], "valid": [], "test": []}, [], 0
    for d in dialogues:
        rows[d.split] += list(range(n, n + len(d)))
        owner += [d.id] * len(d)
        n += len(d)
    return rows, owner


def finetune_summary(finetuned_dir: str | Path) -> dict:
    """The stage's ``finetune.json`` (recipe, folds, each encoder's selection, the device it ran on)."""
    summary_path = Path(finetuned_dir) / "finetune.json"
    if not summary_path.is_file():
        raise InputError(f"{finetuned_dir}: no fine-tuned encoder (run dvc repro, which runs finetune_text first)")
    return json.loads(summary_path.read_text())


def finetuned_features(dataset: str, dialogues: list[Dialogue], finetuned_dir: str | Path, eval_from: str = "full",
                       progress: bool = True, device="cpu") -> np.ndarray:
    """(N, 4, width) features from the stage's encoders, run on ``device``: training utterances from the encoder
    that did not see their fold (cross-fitting) or from "full"; validation and test from "full" or the mean over
    fold encoders."""
    from transformers import AutoTokenizer
    finetuned_dir = Path(finetuned_dir)
    summary, summary_path = finetune_summary(finetuned_dir), finetuned_dir / "finetune.json"
    tokenizer = AutoTokenizer.from_pretrained(finetuned_dir / "full")
    inputs = Inputs(tokenizer, dialogues, dataset, summary["context"], summary["max_length"],
                    summary.get("context_future", 0))
    rows, owner = _rows_by_split(dialogues)
    folds = summary["folds"]
    unknown = [d.id for d in dialogues if d.split == "train" and folds and d.id not in folds]
    if unknown:
        raise InputError(f"{summary_path}: training dialogue {unknown[0]} is in no fold (fine-tuned on other data)")
    names = ["full"] + sorted({f"fold{f}" for f in folds.values()})
    if eval_from != "folds":  # a fold encoder is read only for its own training dialogues (none in a new dialogue)
        names = ["full"] + [n for n in names[1:] if any(folds[owner[r]] == int(n[4:]) for r in rows["train"])]
    out = None
    for name in tqdm(names, desc=f"{dataset} fine-tuned features", disable=not progress, unit="encoder"):
        model = UtteranceClassifier(finetuned_dir / name, 1).to(device)
        if out is None:
            out = np.zeros((len(owner), N_LAYERS, model.encoder.config.hidden_size), dtype=np.float32)
        evaluation = rows["valid"] + rows["test"]
        if name == "full":
            train = rows["train"] if not folds else []
            if eval_from == "full" or not folds:
                train = train + evaluation
            if train:
                out[train] = layer_features(model, inputs, train)
        else:
            f = int(name[4:])
            own = [r for r in rows["train"] if folds[owner[r]] == f]
            out[own] = layer_features(model, inputs, own)
            if eval_from == "folds":
                out[evaluation] += layer_features(model, inputs, evaluation) / (len(names) - 1)
    return out


def text_features(source: str, dataset: str, dialogues: list[Dialogue], finetuned_dir: str | Path = "models/finetuned",
                  eval_from: str = "full", batch_size: int = 64, progress: bool = True, device="cpu") -> np.ndarray:
    """(N, layers, width) text features of ``dialogues`` from ``source``: the stage's fine-tuned encoders under
    ``finetuned_dir/<dataset>`` (``finetuned_features``) or a frozen encoder (``erc.features.text``). The one text
    path of extraction and of predict.py, which reads a new dialogue as a test dialogue."""
    if source in FINETUNED:
        return finetuned_features(dataset, dialogues, Path(finetuned_dir) / dataset, eval_from, progress, device)
    sentences = [repair_cp1252(s) for d in dialogues for s in d.sentences]
    return encoder_for(source, device).encode(sentences, batch_size, progress)
