"""Stage train's work: the multimodal MGLRA (+ MRL / MRL-E, + MKD as params.yaml says), one run per seed, each
kept at its best validation epoch.

Features are read with the test labels hidden; only ``erc.evaluation.evaluate`` sees them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from erc.data.feature_file import FeatureFile
from erc.data.batching import DialogueData
from erc.runtime.device import stage_device
from erc.models.checkpoint import Checkpoint
from erc.models.mglra import MGLRA, MGLRAConfig, text_only_head
from erc.runtime.parallel import run_parallel
from erc.config.params import Params
from erc.training.loop import (Schedule, build_objective, fit, live_for, model_config, seed_everything, seeds,
                              train_settings)


@dataclass
class SeedJob:
    """One seed of the multimodal model (a unit of ``erc.runtime.parallel``)."""
    dataset: str
    feats: FeatureFile
    data: DialogueData
    config: MGLRAConfig
    params: Params
    teacher_logits: dict | None
    device: torch.device
    schedule: Schedule  # with the seed
    live_factory: Callable | None = None


def train_model(dataset: str, feats: FeatureFile, graphs: dict, params: Params, teacher_logits=None, live_factory=None,
                progress=True) -> Checkpoint:
    """The config, the device, and the kept (CPU) state of each seed."""
    device = stage_device(params)
    schedule = train_settings(params, dataset).but(  # modality dropout: the multimodal model's only
        modality_dropout=params.train.modality_dropout, modality_dropout_unit=params.train.modality_dropout_unit,
        progress=progress)
    config = model_config(feats, params, dataset)
    data = DialogueData(feats, graphs["multimodal"])
    jobs = {seed: SeedJob(dataset, feats, data, config, params, teacher_logits, device,
                          schedule.but(seed=seed, desc=f"{dataset} seed {seed}"), live_factory)
            for seed in seeds(params)}
    runs = run_parallel(_train_seed, jobs, params.workers)
    return Checkpoint(config, runs, feats.sources, device.type, params.mrl.model_dump(),
                      params.mkd.model_dump(exclude={"text_only"}))  # text_only: not a training setting


def _train_seed(job: SeedJob) -> dict:
    """One seed of the multimodal model (a unit of ``erc.runtime.parallel``)."""
    seed, config = job.schedule.seed, job.config
    seed_everything(seed)
    model = MGLRA(config)
    objective = build_objective(job.params, job.dataset, job.feats, len(config.nesting), job.teacher_logits)
    live = live_for(f"plots/train/{job.dataset}/seed{seed}", job.live_factory)
    # a unimodal text student head (it can answer text-only dialogues: mkd.text_only) also keeps the state of its
    # own best validation epoch for that task, whatever mkd.text_only says (only evaluate and predict.py read it)
    student = "text" if text_only_head(config, "student") == "student" else None
    result = fit(model, job.data, objective, job.schedule.but(student=student, record="test"), job.device, live)
    if live is not None:
        live.end()
    run = {"state": result["state"], "epoch": result["epoch"], "history": result["history"]}
    if student is not None:
        run.update(text_only_state=result["student_state"], text_only_epoch=result["student_epoch"])
    run.update(recorded=result["recorded"], recorded_utterances=result["recorded_utterances"])  # erc.evaluation.records
    return run
