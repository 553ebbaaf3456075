"""Stage train's work: the multimodal MGLRA (+ MRL / MRL-E, + MKD as params.yaml says), one run per seed, each
kept at its best validation epoch.

Features are read with the test labels hidden; only ``erc.evaluation.evaluate`` sees them."""
from __future__ import annotations

from erc.data.batching import DialogueData
from erc.runtime.device import stage_device
from erc.models.mglra import MGLRA, text_only_head
from erc.runtime.parallel import run_parallel
from erc.config.params import Params
from erc.training.loop import build_objective, fit, live_for, model_config, seed_everything, seeds, train_settings


def train_model(dataset: str, feats: dict, graphs: dict, params: Params, teacher_logits=None, live_factory=None,
                progress=True) -> dict:
    """The config, the device, and the kept (CPU) state of each seed."""
    device, settings = stage_device(params), train_settings(params, dataset)
    settings["modality_dropout"] = params.train.modality_dropout  # the multimodal model's only
    settings["modality_dropout_unit"] = params.train.modality_dropout_unit
    config = model_config(feats, params, dataset)
    data = DialogueData(feats, graphs["multimodal"])
    jobs = {seed: (seed, dataset, feats, data, config, params, teacher_logits, device, settings, live_factory, progress)
            for seed in seeds(params)}
    runs = run_parallel(_train_seed, jobs, params.workers)
    return {"config": config, "runs": runs, "sources": feats["sources"], "device": device.type,
            "mrl": params.mrl.model_dump(),
            "mkd": params.mkd.model_dump(exclude={"text_only"})}  # not a training setting


def _train_seed(seed, dataset, feats, data, config, params, teacher_logits, device, settings, live_factory,
                progress) -> dict:
    """One seed of the multimodal model (a unit of ``erc.runtime.parallel``)."""
    seed_everything(seed)
    model = MGLRA(**config)
    objective = build_objective(params, dataset, feats, len(config["nesting"]), teacher_logits)
    live = live_for(f"plots/train/{dataset}/seed{seed}", live_factory)
    # a unimodal text student head (it can answer text-only dialogues: mkd.text_only) also keeps the state of its
    # own best validation epoch for that task, whatever mkd.text_only says (only evaluate and predict.py read it)
    student = "text" if text_only_head(config, "student") == "student" else None
    result = fit(model, data, objective, feats["classes"], seed=seed, device=device, live=live,
                 progress=progress, desc=f"{dataset} seed {seed}", student=student, record="test", **settings)
    if live is not None:
        live.end()
    run = {"state": result["state"], "epoch": result["epoch"], "history": result["history"]}
    if student is not None:
        run.update(text_only_state=result["student_state"], text_only_epoch=result["student_epoch"])
    run.update(recorded=result["recorded"], recorded_utterances=result["recorded_utterances"])  # erc.evaluation.records
    return run
