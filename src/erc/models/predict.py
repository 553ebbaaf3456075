"""Eval-mode passes over a split: logits, class probabilities and the eval batch size. No labels are chosen
from here: callers score what they are allowed to read."""
from __future__ import annotations

import torch

from erc.data.batching import DialogueData


@torch.no_grad()
def predict(model, data: DialogueData, split: str, device, batch_size: int = 16) -> dict:
    """Eval-mode outputs for every utterance of ``split``, on ``device`` (callers move what they read on the host):
    logits per nesting size, student logits, labels, global utterance indices."""
    model.eval()
    logits, students, labels, utterances = [], {}, [], []
    for batch in data.batches(split, batch_size):
        batch = batch.to(device)
        out = model(batch)
        logits.append(out["logits"])  # (sizes, N_b, C)
        for m, z in out.get("student_logits", {}).items():
            students.setdefault(m, []).append(z)
        labels.append(batch.labels)
        utterances.append(batch.utterances)
    return {"logits": torch.cat(logits, 1), "student_logits": {m: torch.cat(z) for m, z in students.items()},
            "labels": torch.cat(labels), "utterances": torch.cat(utterances)}


@torch.no_grad()
def predict_all(model, data: DialogueData, device, batch_size: int = 16) -> torch.Tensor:
    """Eval-mode full-size logits of every utterance, in feature-file order, on the CPU: (N, C)."""
    logits = None
    for split in ("train", "valid", "test"):
        out = predict(model, data, split, device, batch_size)
        if logits is None:
            logits = torch.zeros(int(data.lengths.sum()), out["logits"].shape[-1])
        logits[out["utterances"].cpu()] = out["logits"][-1].cpu()
    return logits


@torch.no_grad()
def split_probabilities(model, data: DialogueData, split: str, device, batch_size: int = 16) -> tuple:
    """Eval-mode class probabilities of ``split``'s utterances from the full-size logits, as float16 on the host,
    and their global indices: ((N_split, C), (N_split,)). Reads no label; draws no random number that training
    sees (the generators' states are restored), so recording them changes nothing that is trained or chosen."""
    with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
        out = predict(model, data, split, device, batch_size)
    return torch.softmax(out["logits"][-1].float(), -1).to(torch.float16).cpu(), out["utterances"].cpu()


EVAL_BATCH = 64  # dialogues an eval pass in ``fit`` takes at once, where the answers do not depend on the batch


def eval_batch_size(model, batch_size: int) -> int:
    """Dialogues a per-epoch eval pass batches: many (fewer, larger products; the same answers up to float order)
    unless the model's eval output depends on which dialogues share a batch (``batch_dependent``: MGLRA's
    ``faithful`` cross-dialogue attention and eval-time mask), then the training batch size, as released."""
    return batch_size if getattr(model, "batch_dependent", False) else max(batch_size, EVAL_BATCH)
