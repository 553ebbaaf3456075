"""Fine-tuning text encoders (``features.text: minilm-ft | mpnet-ft | ft``, stage finetune_text): the encoder
fine-tuned on the training utterances for emotion classification; ``erc.features.utterance_encoder`` reads the features out.

* Input: the utterance, and with ``finetune.context`` k > 0 the k previous turns with speaker tags as a second
  segment, cut from its oldest side so that the utterance itself is never truncated; with
  ``finetune.context_future`` f > 0 the f following turns after them (EmoBERTa's past and future).
* Cost (a large encoder): ``accumulate`` runs a batch as micro-batches (the same gradient, less memory),
  ``checkpointing`` recomputes layer activations in the backward pass, ``precision`` bf16 / fp16 autocasts on
  CUDA, ``freeze_layers`` and ``max_length`` cut the work.
* Training labels fit, validation labels choose the epoch; test labels never reach this module (the stage
  hides them before calling it).
* Cross-fitting (``finetune.folds`` k ≥ 2): the training dialogues are split into k folds (by dialogue, or with
  ``finetune.fold_by: session`` by IEMOCAP session, i.e. by speaker pair), and the
  features of a training utterance come from an encoder fine-tuned without its fold, so that downstream models
  do not learn from features made by an encoder that saw their labels; validation and test features come from
  the encoder fine-tuned on every training dialogue (``eval_from: full``) or from the mean of the fold encoders'
  features (``eval_from: folds``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from erc.data.datasets import CLASSES, Dialogue, folds_of, without_test_labels
from erc.features.utterance_encoder import (FINETUNED, Inputs, UtteranceClassifier, _batches, _rows_by_split,
                                            base_encoder_dir, check_source, in_length_order, layer_features)
from erc.runtime.device import autocast, make_deterministic, stage_device, to_cpu
from erc.runtime.files import atomic_path
from erc.training.losses import task_loss
from erc.evaluation.metrics import classification_metrics
from erc.runtime.parallel import run_parallel
from erc.config.params import Params
from erc.training.selection import epoch_loop


def micro_batches(chunk: list[int], criterion: nn.Module, labels: torch.Tensor, parts: int):
    """(rows, share of the batch's loss) of ``parts`` consecutive slices of ``chunk``: the shares weigh each slice's
    mean loss so that their sum is the whole batch's (class-weighted NLL: by the slices' summed class weights)."""
    size = math.ceil(len(chunk) / parts)
    slices = [chunk[k:k + size] for k in range(0, len(chunk), size)]
    weights = getattr(criterion, "class_weights", None)
    mass = [float(weights[labels[s]].sum()) if weights is not None else float(len(s)) for s in slices]
    return [(s, m / sum(mass)) for s, m in zip(slices, mass)]


@dataclass
class FinetuneJob:
    """One encoder's fine-tuning (a unit of ``erc.runtime.parallel``): the encoder at ``model_dir`` trained on
    ``train_rows`` of ``inputs`` with ``settings`` (params.yaml's finetune section, ``settings_of``), its epoch chosen
    on ``valid_rows``; ``labels`` of other rows are never read. With ``live_factory``, curves go to ``live_dir``."""
    model_dir: Path
    inputs: Inputs
    labels: torch.Tensor
    train_rows: list[int]
    valid_rows: list[int]
    classes: list[str]
    settings: dict
    desc: str = "fine-tune"
    progress: bool = True
    device: str | torch.device = "cpu"
    live_factory: Callable | None = None
    live_dir: str | None = None

    def cost(self) -> int:
        """Tokens an epoch times epochs (``largest_first``)."""
        return sum(len(self.inputs.ids[r]) for r in self.train_rows) * self.settings["epochs"]


def finetune(job: FinetuneJob, live=None) -> dict:
    """AdamW with linear warm-up (``warmup`` of the steps) and linear decay, in ``erc.training.selection``'s epoch
    loop: the epoch with the best validation weighted F1 is kept. Runs on ``job.device``; the kept state comes back on
    the CPU."""
    settings, inputs, labels, train_rows = job.settings, job.inputs, job.labels, job.train_rows
    device = torch.device(job.device)
    make_deterministic(device)
    torch.manual_seed(settings["seed"])
    generator = torch.Generator().manual_seed(settings["seed"])  # the batch order: on the host, the same anywhere
    model = UtteranceClassifier(job.model_dir, len(job.classes), settings["freeze_layers"],
                                settings.get("checkpointing", False)).to(device)
    train_labels = labels[train_rows].to(device)
    criterion = task_loss(settings["loss"], labels[train_rows], len(job.classes), 0.0).to(device)
    precision, parts = settings.get("precision", "fp32"), settings.get("accumulate", 1)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None  # fp16 gradients underflow unscaled
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=settings["lr"], weight_decay=0.01)
    steps = settings["epochs"] * math.ceil(len(train_rows) / settings["batch_size"])
    warm = max(1, int(settings["warmup"] * steps))
    # transformers' get_linear_schedule_with_warmup starts the warm-up at 0 (s / warm): other learning rates, other
    # encoders than the committed ones; this one starts at 1 / warm
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    position = {r: k for k, r in enumerate(train_rows)}

    def one_epoch(epoch: int) -> tuple[dict, tuple]:
        model.train()
        total = 0.0
        chunks = list(_batches(train_rows, settings["batch_size"], generator))
        for chunk in tqdm(chunks, desc=f"{job.desc} epoch {epoch}", disable=not job.progress, unit="batch"):
            optimiser.zero_grad()
            loss = 0.0
            for rows, share in (micro_batches(chunk, criterion, labels, parts) if parts > 1 else [(chunk, 1.0)]):
                with autocast(device, precision):
                    logits = model.logits(inputs, rows)
                part = criterion(logits.float(), train_labels[[position[r] for r in rows]])
                part = part * share if parts > 1 else part
                (scaler.scale(part) if scaler else part).backward()
                loss = loss + part.detach()
            if scaler:
                scaler.step(optimiser)
                scaler.update()
            else:
                optimiser.step()
            schedule.step()
            total += float(loss) * len(chunk)
        with autocast(device, precision):
            valid_logits = in_length_order(model, inputs, job.valid_rows, model)
        scores = classification_metrics(labels[job.valid_rows], valid_logits.argmax(-1), job.classes)
        row = {"epoch": epoch, "train_loss": total / len(train_rows), "valid_weighted_f1": scores["weighted_f1"],
               "valid_acc": scores["acc"]}
        return row, (scores["weighted_f1"],)  # no loss tie-break: the first of equal epochs

    best, history = epoch_loop(model, range(1, settings["epochs"] + 1), one_epoch, live)
    return {"model": model, "epoch": best.epoch, "valid_weighted_f1": best.key[0], "history": history}


def _finetune_job(job: FinetuneJob) -> dict:
    """One encoder's fine-tuning (a unit of ``erc.runtime.parallel``); the kept weights come back as a CPU state dict."""
    live = job.live_factory(job.live_dir) if job.live_factory else None
    result = finetune(job, live)
    if live is not None:
        live.end()
    model = result.pop("model")  # only the weights cross back, not the module
    return {**result, "state": to_cpu(model.state_dict())}


def settings_of(params: Params, dataset: str) -> dict:
    return params.for_dataset(dataset).finetune.model_dump(
        include={"epochs", "lr", "batch_size", "seed", "freeze_layers", "warmup", "loss", "precision", "accumulate",
                 "checkpointing"})


def finetune_datasets(dialogues: dict[str, list[Dialogue]], params: Params, live_factory=None,
                      progress: bool = True, classes: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """The encoders of each dataset: "full" on every training dialogue and, with folds ≥ 2, one per fold without it
    (reading the labels of training and validation dialogues only; ``classes``: each dataset's label list, default
    the built-ins'); all datasets' encoders in one pool of ``workers`` processes (MELD's single
    encoder alone would leave a worker idle); the largest jobs start first. Each encoder is the same bits whatever
    the pool holds: a job runs alone on one thread."""
    jobs, prepared, device = {}, {}, stage_device(params)
    autocast(device, params.finetune.precision)  # bf16 on a CPU: refused before any work
    for dataset, its_dialogues in dialogues.items():
        its_classes = (classes or {}).get(dataset) or CLASSES[dataset]
        prepared[dataset], its_jobs = _prepare(dataset, its_dialogues, params, live_factory, progress, device,
                                               its_classes)
        jobs.update({(dataset, name): job for name, job in its_jobs.items()})
    done = run_parallel(_finetune_job, largest_first(jobs), params.workers)
    return {dataset: finetune_result({name: done[(d, name)] for d, name in jobs if d == dataset}, prepared[dataset])
            for dataset in dialogues}


def largest_first(jobs: dict) -> dict:
    """``_finetune_job`` jobs ordered by tokens an epoch times epochs, the largest first ("full" before its folds)."""
    return {key: jobs[key] for key in sorted(jobs, key=lambda key: -jobs[key].cost())}


@dataclass
class Prepared:
    """What ``finetune_result`` needs of a dataset besides its fine-tuned encoders."""
    model_dir: Path
    classes: list[str]
    tokenizer: object
    assignment: dict  # training dialogue -> fold
    inputs: Inputs
    rows: dict  # split -> utterance rows
    settings: dict
    source: str
    context: int
    max_length: int
    device: torch.device = torch.device("cpu")
    encoder: str | None = None
    future: int = 0


def _prepare(dataset: str, dialogues: list[Dialogue], params: Params, live_factory, progress,
             device=torch.device("cpu"), classes: list[str] | None = None) -> tuple[Prepared, dict]:
    """(what ``finetune_result`` needs besides the encoders, encoder name -> its ``FinetuneJob``).
    Unlabelled utterances (label -1) are inputs and context, never a training or selection row."""
    from transformers import AutoTokenizer
    p = params.for_dataset(dataset)
    source, classes = p.features.text, classes or CLASSES[dataset]
    check_source(source)
    model_dir = base_encoder_dir(source, p.finetune.encoder)
    # local_files_only given, not left to HF_HUB_OFFLINE: the saved tokenizer config records it
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    context, max_length, future = p.finetune.context, p.finetune.max_length, p.finetune.context_future
    inputs = Inputs(tokenizer, dialogues, dataset, context, max_length, future)
    labels = torch.tensor([y for d in without_test_labels(dialogues) for y in d.labels])
    rows, _ = _rows_by_split(dialogues)
    rows["valid"] = [r for r in rows["valid"] if labels[r] >= 0]
    settings = settings_of(params, dataset)
    assignment, plans = encoder_plans(dialogues, params, dataset)
    plans = {name: [r for r in train_rows if labels[r] >= 0] for name, train_rows in plans.items()}
    jobs = {name: FinetuneJob(model_dir, inputs, labels, train_rows, rows["valid"], classes, settings,
                              f"{dataset} {name}", progress, device, live_factory, f"plots/finetune/{dataset}/{name}")
            for name, train_rows in plans.items()}
    return Prepared(model_dir, classes, tokenizer, assignment, inputs, rows, settings, source, context, max_length,
                    device, FINETUNED[source] or p.finetune.encoder, future), jobs


def encoder_plans(dialogues: list[Dialogue], params: Params, dataset: str) -> tuple[dict, dict]:
    """(training dialogue -> fold, encoder name -> its training rows): "full" on every training dialogue and, with
    ``finetune.folds`` k ≥ 2, "fold<f>" on all but fold f."""
    rows, owner = _rows_by_split(dialogues)
    finetune = params.for_dataset(dataset).finetune
    k, by = finetune.folds, finetune.fold_by
    train_ids = [d.id for d in dialogues if d.split == "train"]
    assignment = folds_of(train_ids, k, finetune.seed, by) if k >= 2 else {}
    plans = {"full": rows["train"]}
    for f in range(k if k >= 2 else 0):
        plans[f"fold{f}"] = [r for r in rows["train"] if assignment[owner[r]] != f]
    return assignment, plans


def finetune_result(encoders: dict, prepared: Prepared) -> dict:
    """What ``save_finetuned`` writes, from the fine-tuning jobs' results (weights as CPU state dicts; the models
    stay on the CPU for saving, the drift is measured on the prepared device)."""
    p = prepared
    for e in encoders.values():
        e["model"] = UtteranceClassifier(p.model_dir, len(p.classes))  # for saving and reading: nothing frozen
        e["model"].load_state_dict(e.pop("state"))
        e["model"].eval()
    return {"encoders": encoders, "tokenizer": p.tokenizer, "folds": p.assignment, "inputs": p.inputs, "rows": p.rows,
            "settings": p.settings, "context": p.context, "max_length": p.max_length, "source": p.source,
            "encoder": p.encoder, "context_future": p.future,
            "device": torch.device(p.device).type,
            "drift": fold_drift(encoders, p.inputs, p.rows["valid"], p.device) if len(encoders) > 2 else None}


def fold_drift(encoders: dict, inputs: Inputs, rows: list[int], device="cpu") -> dict:
    """How far the fold encoders' feature spaces sit apart, on the validation utterances: mean cosine similarity
    of the same utterance's last-layer feature between two fold encoders, and between a fold encoder and full."""
    def last_layer(model):
        features = torch.from_numpy(layer_features(model.to(device), inputs, rows)[:, -1])
        model.to("cpu")
        return features
    last = {name: last_layer(e["model"]) for name, e in encoders.items()}
    folds = [n for n in last if n != "full"]
    cos = lambda a, b: float(nn.functional.cosine_similarity(last[a], last[b], dim=-1).mean())  # noqa: E731
    between = [cos(a, b) for i, a in enumerate(folds) for b in folds[i + 1:]]
    return {"fold_vs_fold": float(np.mean(between)), "fold_vs_full": float(np.mean([cos(f, "full") for f in folds]))}


def save_finetuned(result: dict, out_dir: Path) -> None:
    """Each encoder (transformers layout) and its tokenizer under ``out_dir/<name>``, and ``finetune.json``."""
    for name, e in result["encoders"].items():
        e["model"].encoder.save_pretrained(out_dir / name)
        result["tokenizer"].save_pretrained(out_dir / name)
    summary = {"source": result["source"], "encoder": result.get("encoder"), "device": result["device"],
               "context": result["context"], "context_future": result.get("context_future", 0),
               "max_length": result["max_length"],
               "settings": result["settings"], "folds": result["folds"], "drift": result["drift"],
               "encoders": {name: {"epoch": e["epoch"], "valid_weighted_f1": e["valid_weighted_f1"],
                                   "history": e["history"]} for name, e in result["encoders"].items()}}
    (out_dir / "finetune.json").write_text(json.dumps(summary, indent=2) + "\n")


def curves_png(encoders: dict, path, note: str | None = None) -> None:
    """Training loss and validation w-F1 by epoch of each fine-tuned encoder (a ``finetune_datasets`` result's "encoders"),
    the selected epoch marked; with ``note`` (nothing fine-tuned), a figure that says so. A PNG: visible offline."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, e in encoders.items():
        epochs = [h["epoch"] for h in e["history"]]
        line, = loss_ax.plot(epochs, [h["train_loss"] for h in e["history"]], marker="o", label=name)
        f1_ax.plot(epochs, [h["valid_weighted_f1"] for h in e["history"]], marker="o", color=line.get_color(), label=name)
        f1_ax.plot([e["epoch"]], [e["valid_weighted_f1"]], marker="*", markersize=14, color=line.get_color())
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="fine-tuning: training loss")
    f1_ax.set(xlabel="epoch", ylabel="validation weighted F1 (%)", title="validation w-F1 (star: kept epoch)")
    for ax in (loss_ax, f1_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if encoders:
            ax.legend(fontsize=8)
    if note:
        fig.text(0.5, 0.5, note.strip(), ha="center", va="center", fontsize=12)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
