"""Stage train_teachers' work: one unimodal MGLRA per modality (MKD's frozen teachers), selected on validation,
with its logits for every utterance kept for the student's distillation term.

Features are read with the test labels hidden; only ``erc.evaluation.evaluate`` sees them."""
from __future__ import annotations

from pathlib import Path

from erc.data.batching import DialogueData
from erc.runtime.device import stage_device
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch
from erc.models.mglra import MGLRA
from erc.runtime.parallel import run_parallel
from erc.config.params import Params
from erc.training.loop import build_objective, fit, live_for, model_config, seed_everything, train_settings
from erc.models.predict import predict_all


def train_teachers(dataset: str, feats: dict, graphs: dict, params: Params, live_factory=None, progress=True) -> dict:
    """modality -> its teacher: config, CPU state, selected epoch, curves, device, logits of every utterance."""
    device, settings = stage_device(params), train_settings(params, dataset)
    jobs = {modality: (modality, dataset, feats, graphs, params, device, settings, live_factory, progress)
            for modality in feats["features"]}
    return run_parallel(_teacher, jobs, params.workers)


def _teacher(modality, dataset, feats, graphs, params, device, settings, live_factory, progress) -> dict:
    """The unimodal teacher of one modality (a unit of ``erc.runtime.parallel``)."""
    seed = params.teachers.seed
    config = model_config(feats, params, dataset, modalities=[modality], use_mrl=False, use_mkd=False)
    data = DialogueData(feats, graphs["unimodal"], [modality])
    seed_everything(seed)
    model = MGLRA(**config)
    objective = build_objective(params, dataset, feats, 1, use_mkd=False)
    live = live_for(f"plots/teachers/{dataset}/{modality}", live_factory)
    result = fit(model, data, objective, feats["classes"], seed=seed, device=device, live=live,
                 progress=progress, desc=f"{dataset} {modality} teacher", record="test", **settings)
    if live is not None:
        live.end()
    return {"config": config, "state": result["state"], "epoch": result["epoch"], "device": device.type,
            "history": result["history"], "logits": predict_all(model, data, device),
            "recorded": result["recorded"], "recorded_utterances": result["recorded_utterances"]}  # erc.evaluation.records


def load_teacher_logits(path: str | Path, modalities: list[str], n_utterances: int) -> dict:
    """modality -> (N, C) logits of the teacher file at ``path``, checked against the features."""
    teachers = load_torch(path, "teacher file")
    logits = {}
    for m in modalities:
        if not isinstance(teachers, dict) or m not in teachers or "logits" not in teachers[m]:
            raise InputError(f"{path}: no teacher for modality {m}")
        if len(teachers[m]["logits"]) != n_utterances:
            raise InputError(f"{path}: {m} teacher has {len(teachers[m]['logits'])} logits, features hold {n_utterances}")
        logits[m] = teachers[m]["logits"]
    return logits
