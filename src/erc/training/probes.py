"""Validation-only settings probes (``benchmarks/probe.py``, ``benchmarks/finetune_loso.py``): a held-out IEMOCAP
training session, and one run of any configuration the pipeline trains (plain MGLRA, MRL, MKD with teachers trained
inside the split, bc-LSTM).

Nothing here sees test labels: features come from ``load_features``, which hides them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from erc.data.batching import DialogueData
from erc.data.datasets import SPLITS, load_dialogues, session_of, without_test_labels
from erc.data.feature_file import FeatureFile, text_only, utterance_split
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch, save_torch
from erc.evaluation.metrics import classification_metrics
from erc.models.mglra import MGLRA
from erc.training.references import bclstm_model, bclstm_settings
from erc.training.teachers import train_teachers
from erc.training.loop import build_objective, fit, model_config, seed_everything, train_settings, validation_score


def heldout_split(feats: FeatureFile, session: str) -> FeatureFile:
    """Training dialogues of ``session`` are filed under test with their labels (the held-out set); the rest
    of train stays train; standard validation dialogues of other sessions stay validation, those of
    ``session`` join test with hidden labels, like the real test dialogues (``fit`` never reads test)."""
    in_session = [d.startswith(session) for d in feats.dialogue_ids]
    hide = torch.tensor([held and s == "valid" for held, s in zip(in_session, feats.splits)])
    splits = [("test" if held else "train") if s == "train" else ("test" if held or s == "test" else "valid")
              for held, s in zip(in_session, feats.splits)]
    labels = feats.labels.clone()
    labels[hide.repeat_interleave(feats.lengths)] = -1
    return feats.but(splits=splits, labels=labels)


def _teacher_key(dataset: str, feats: FeatureFile, params) -> str:
    """What a teacher depends on: the split's features and labels, and the params the teacher stage reads (not the
    seeds or the modality dropout, which only the multimodal model uses)."""
    digest = hashlib.sha256()
    for tensor in [feats.labels, feats.lengths, *feats.features.values()]:
        digest.update(tensor.contiguous().numpy().tobytes())
    digest.update(json.dumps([dataset, feats.splits, params.model.model_dump(), params.teachers.model_dump(),
                              params.train.model_dump(exclude={"seeds", "modality_dropout", "modality_dropout_unit"})],
                             sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def split_teacher_logits(dataset: str, feats: FeatureFile, graphs: dict, params, cache_dir=None) -> dict:
    """modality -> (N, C) logits of unimodal teachers trained on ``feats``' own training split and selected on
    its validation split (inside a held-out split, the held-out labels never reach them). ``cache_dir`` keeps
    them on disk, keyed by everything they depend on, so that probes of student settings share them."""
    path = Path(cache_dir) / f"{dataset}-{_teacher_key(dataset, feats, params)}.pt" if cache_dir else None
    if path is not None and path.is_file():
        return load_torch(path, "teacher cache")
    teachers = train_teachers(dataset, feats, graphs, params, progress=False)
    logits = {m: teacher["logits"] for m, teacher in teachers.items()}
    if path is not None:
        save_torch(logits, path)
    return logits


@dataclass
class Probe:
    """One probe run (``probe_run``; a unit of ``erc.runtime.parallel``): ``params``' model on ``feats`` / ``graphs``
    with ``seed`` on ``device``; ``bclstm``: the reference instead; ``heldout``: also score the labelled test-split
    utterances (the held-out session) after every epoch; ``teacher_logits``: MKD's, where params ask for MKD."""
    dataset: str
    feats: FeatureFile
    graphs: dict
    params: object
    seed: int
    device: object = "cpu"
    heldout: bool = False
    bclstm: bool = False
    teacher_logits: dict | None = None


def probe_run(probe: Probe) -> dict:
    """One training run as the pipeline does it (MRL / MKD as ``params`` say; ``bclstm``: the reference).
    Returns the best validation (or held-out) w-F1, the selected epoch, and with ``heldout`` the held-out
    w-F1 at that epoch ("selected", what test measures; also per class) and at its own best epoch ("peak")."""
    dataset, feats, graphs, params, device = probe.dataset, probe.feats, probe.graphs, probe.params, probe.device
    heldout, bclstm, teacher_logits = probe.heldout, probe.bclstm, probe.teacher_logits
    seed_everything(probe.seed)
    if bclstm:
        objective = build_objective(params, dataset, feats, 1, use_mkd=False)
        settings, model = bclstm_settings(params, dataset), bclstm_model(feats, params)
        data = DialogueData(feats, graphs["unimodal"])
    else:
        config = model_config(feats, params, dataset)
        if config.student_placement and teacher_logits is None:
            raise ValueError("MKD needs teacher logits")
        objective = build_objective(params, dataset, feats, len(config.nesting), teacher_logits)
        model = MGLRA(config)
        settings = train_settings(params, dataset).but(modality_dropout=params.train.modality_dropout,
                                                       modality_dropout_unit=params.train.modality_dropout_unit)
        data = DialogueData(feats, graphs["multimodal"])
    heldout_scores, heldout_per_class = [], []

    def score_heldout(model, epoch):
        scores, _ = validation_score(model, data, objective, device, feats.classes, settings.batch_size, "test")
        heldout_scores.append(scores["weighted_f1"])
        heldout_per_class.append(scores["per_class_f1"])

    start = time.perf_counter()
    result = fit(model, data, objective, settings.but(seed=probe.seed, progress=False), device,
                 on_epoch=score_heldout if heldout else None)
    scores = heldout_scores or [row["valid_weighted_f1"] for row in result["history"]]
    report = {"best": max(scores), "epoch": result["epoch"], "epochs": len(scores),
              "last10": sum(scores[-10:]) / len(scores[-10:]), "seconds": time.perf_counter() - start}
    if heldout:
        report.update(selected=scores[result["epoch"] - 1], peak_epoch=scores.index(max(scores)) + 1,
                      selected_per_class=heldout_per_class[result["epoch"] - 1])
    split = "test" if heldout else "valid"  # where the score above was measured
    if not bclstm and len(feats.features) > 1:  # the selected model with every utterance's audio marked missing
        text_data = DialogueData(text_only(feats), graphs["multimodal"])
        text_scores, _ = validation_score(model, text_data, objective, device, feats.classes,
                                          settings.batch_size, split)
        report["text_only"] = text_scores["weighted_f1"]
    if teacher_logits and "text" in teacher_logits:  # the frozen text teacher on the same utterances
        rows = (utterance_split(feats) == SPLITS.index(split)) & (feats.labels >= 0)
        report["text_teacher"] = classification_metrics(
            feats.labels[rows], teacher_logits["text"][rows].argmax(-1), feats.classes)["weighted_f1"]
    return report


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:20]


def check_sessions(sessions: list[str], dialogues) -> None:
    """Each of ``sessions`` must be a training session of ``dialogues`` (IEMOCAP's ``Ses01`` .. ``Ses04``)."""
    known = {session_of(d.id) for d in dialogues if d.split == "train"}
    unknown = [s for s in sessions if s not in known]
    if unknown:
        raise InputError(f"--heldout {unknown[0]}: not a training session ({', '.join(sorted(known))})")


def heldout_finetuned(dataset: str, session: str, runs: list[dict], work_dir, progress: bool = True,
                      dialogues=None) -> list[tuple[FeatureFile, dict]]:
    """Leave-one-session-out for a fine-tuning recipe (``benchmarks/finetune_loso.py``): for each params of ``runs``,
    (the feature file of ``heldout_split(feats, session)``, each encoder's selected epoch and validation w-F1)
    where the text encoders were fine-tuned **without**
    ``session``: its training and validation dialogues are withheld from the fine-tuning (labels hidden, like
    test's), so its features come from the all-data encoder, as the unseen test speakers' do, while the other
    training sessions are cross-fitted as the recipe says. ``heldout_split`` over the pipeline's features cannot
    ask this: there the held-out session was fine-tuned on. Encoders are cached in ``work_dir/encoders`` by
    everything they depend on, so recipes that share one (e.g. "full") train it once; all missing encoders of
    ``runs`` train together, ``workers`` at a time. Test labels are hidden before anything runs. ``dialogues``:
    the dataset's (default: all of them, from ``data/raw``)."""
    from erc.features import utterance_encoder
    from erc.features.extract import extract
    from erc.runtime import device as device_module
    from erc.runtime.device import stage_device
    from erc.training import finetune as finetune_module, losses, selection
    from erc.training.finetune import _finetune_job, _prepare, finetune_result, largest_first, save_finetuned
    from erc.runtime.parallel import run_parallel

    work_dir = Path(work_dir)
    base = without_test_labels(dialogues if dialogues is not None else load_dialogues(dataset))
    check_sessions([session], base)
    withheld = [dataclasses.replace(d, split="test", labels=[-1] * len(d))
                if d.split != "test" and session_of(d.id) == session else d for d in base]
    # what every encoder depends on besides its recipe and rows: the dialogues, their labels, the code that trains it
    code = [Path(module.__file__).read_text() for module in (finetune_module, utterance_encoder, losses, selection,
                                                            device_module)]
    data = _digest([[d.id for d in withheld], [d.labels for d in withheld], [d.sentences for d in withheld], code])
    jobs, plans_of_runs = {}, []
    for params in runs:
        prepared, its_jobs = _prepare(dataset, withheld, params, None, progress, stage_device(params))
        keys = {name: _digest([data, dataset, prepared.source, prepared.context, prepared.max_length,
                               prepared.settings, prepared.device.type, job.train_rows, job.valid_rows])
                for name, job in its_jobs.items()}
        jobs.update({keys[name]: job for name, job in its_jobs.items()
                     if not (work_dir / "encoders" / f"{keys[name]}.pt").is_file()})
        plans_of_runs.append((params, prepared, keys))
    workers = runs[0].workers if runs else 1
    for key, result in run_parallel(_finetune_job, largest_first(jobs), workers).items():
        save_torch(result, work_dir / "encoders" / f"{key}.pt")
    out = []
    for params, prepared, keys in plans_of_runs:
        finetuned_dir = work_dir / "recipes" / f"{session}-{_digest(keys)}"
        if not (finetuned_dir / dataset / "finetune.json").is_file():
            encoders = {name: load_torch(work_dir / "encoders" / f"{key}.pt", "cached encoder")
                        for name, key in keys.items()}
            tmp = finetuned_dir / f".{dataset}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            save_finetuned(finetune_result(encoders, prepared), tmp)
            tmp.rename(finetuned_dir / dataset)
        feats = extract(dataset, params, dialogues=withheld, progress=False, finetuned_dir=finetuned_dir)
        feats = feats.but(splits=[d.split for d in base],  # the real splits back, test labels still hidden
                          labels=torch.tensor([y for d in base for y in d.labels]))
        summary = json.loads((finetuned_dir / dataset / "finetune.json").read_text())
        out.append((heldout_split(feats, session), {name: {"epoch": e["epoch"],
                                                           "valid_weighted_f1": e["valid_weighted_f1"]}
                                                    for name, e in summary["encoders"].items()}))
    return out
