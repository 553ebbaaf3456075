"""Stage train_teachers' work: one unimodal MGLRA per modality (MKD's frozen teachers), selected on validation,
with its logits for every utterance kept for the student's distillation term.

Features are read with the test labels hidden; only ``erc.evaluation.evaluate`` sees them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from erc.data.feature_file import FeatureFile
from erc.data.batching import DialogueData
from erc.runtime.device import stage_device
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch
from erc.models.mglra import MGLRA
from erc.runtime.parallel import run_parallel
from erc.config.params import Params
from erc.training.loop import Schedule, build_objective, fit, live_for, model_config, seed_everything, train_settings
from erc.models.predict import predict_all


@dataclass
class TeacherJob:
    """The unimodal teacher of one modality (a unit of ``erc.runtime.parallel``)."""
    modality: str
    dataset: str
    feats: FeatureFile
    graphs: dict
    params: Params
    device: torch.device
    schedule: Schedule
    live_factory: Callable | None = None


def train_teachers(dataset: str, feats: FeatureFile, graphs: dict, params: Params, live_factory=None, progress=True) -> dict:
    """modality -> its teacher: config, CPU state, selected epoch, curves, device, logits of every utterance."""
    device = stage_device(params)
    schedule = train_settings(params, dataset).but(seed=params.teachers.seed, progress=progress, record="test")
    jobs = {modality: TeacherJob(modality, dataset, feats, graphs, params, device,
                                 schedule.but(desc=f"{dataset} {modality} teacher"), live_factory)
            for modality in feats.features}
    return run_parallel(_teacher, jobs, params.workers)


def _teacher(job: TeacherJob) -> dict:
    """The unimodal teacher of one modality (a unit of ``erc.runtime.parallel``)."""
    config = model_config(job.feats, job.params, job.dataset, modalities=[job.modality], use_mrl=False, use_mkd=False)
    data = DialogueData(job.feats, job.graphs["unimodal"], [job.modality])
    seed_everything(job.schedule.seed)
    model = MGLRA(config)
    objective = build_objective(job.params, job.dataset, job.feats, 1, use_mkd=False)
    live = live_for(f"plots/teachers/{job.dataset}/{job.modality}", job.live_factory)
    result = fit(model, data, objective, job.schedule, job.device, live)
    if live is not None:
        live.end()
    return {"config": config.as_dict(), "state": result["state"], "epoch": result["epoch"], "device": job.device.type,
            "history": result["history"], "logits": predict_all(model, data, job.device),
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
