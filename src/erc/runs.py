"""What the training stages do, as functions of (dataset, params): teachers, the multimodal model, references.

Every function reads features with the test labels hidden; only ``erc.evaluation`` sees them.
"""
from __future__ import annotations

from pathlib import Path


from erc.batching import DialogueData
from erc.io import InputError, load_torch
from erc.model import MGLRA, text_only_head
from erc.parallel import run_parallel
from erc.params import get, per_dataset
from erc.references import BcLSTM, bclstm_input_dim, logistic_regression
from erc.training import build_objective, fit, model_config, pick_device, predict_all, seed_everything


def train_settings(params: dict, dataset: str) -> dict:
    return {"epochs": per_dataset(params, "train.epochs", dataset), "lr": get(params, "train.lr"),
            "weight_decay": get(params, "train.weight_decay"), "batch_size": get(params, "train.batch_size")}


def seeds(params: dict) -> list[int]:
    return get(params, "train.seeds")


def _live(directory, live_factory):
    return live_factory(directory) if live_factory else None


def train_teachers(dataset: str, feats: dict, graphs: dict, params: dict, live_factory=None, progress=True) -> dict:
    """One unimodal MGLRA per modality, selected on validation; keeps its logits for every utterance."""
    device, settings = pick_device(), train_settings(params, dataset)
    jobs = {modality: (modality, dataset, feats, graphs, params, device, settings, live_factory, progress)
            for modality in feats["features"]}
    return run_parallel(_teacher, jobs, get(params, "workers"))


def _teacher(modality, dataset, feats, graphs, params, device, settings, live_factory, progress) -> dict:
    """The unimodal teacher of one modality (a unit of ``erc.parallel``)."""
    seed = get(params, "teachers.seed")
    config = model_config(feats, params, dataset, modalities=[modality], use_mrl=False, use_mkd=False)
    data = DialogueData(feats, graphs["unimodal"], [modality])
    seed_everything(seed)
    model = MGLRA(**config)
    objective = build_objective(params, dataset, feats, 1, use_mkd=False)
    live = _live(f"plots/teachers/{dataset}/{modality}", live_factory)
    result = fit(model, data, objective, feats["classes"], seed=seed, device=device, live=live,
                 progress=progress, desc=f"{dataset} {modality} teacher", **settings)
    if live is not None:
        live.end()
    return {"config": config, "state": result["state"], "epoch": result["epoch"],
            "history": result["history"], "logits": predict_all(model, data, device).cpu()}


def load_teacher_logits(path: str | Path, modalities: list[str], n_utterances: int) -> dict:
    teachers = load_torch(path, "teacher file")
    logits = {}
    for m in modalities:
        if not isinstance(teachers, dict) or m not in teachers or "logits" not in teachers[m]:
            raise InputError(f"{path}: no teacher for modality {m}")
        if len(teachers[m]["logits"]) != n_utterances:
            raise InputError(f"{path}: {m} teacher has {len(teachers[m]['logits'])} logits, features hold {n_utterances}")
        logits[m] = teachers[m]["logits"]
    return logits


def train_model(dataset: str, feats: dict, graphs: dict, params: dict, teacher_logits=None, live_factory=None,
                progress=True) -> dict:
    """MGLRA (+ MRL, + MKD as params say), one run per seed; returns the config and the kept state of each seed."""
    device, settings = pick_device(), train_settings(params, dataset)
    settings["modality_dropout"] = get(params, "train.modality_dropout")  # the multimodal model's only
    settings["modality_dropout_unit"] = get(params, "train.modality_dropout_unit")
    config = model_config(feats, params, dataset)
    data = DialogueData(feats, graphs["multimodal"])
    jobs = {seed: (seed, dataset, feats, data, config, params, teacher_logits, device, settings, live_factory, progress)
            for seed in seeds(params)}
    runs = run_parallel(_train_seed, jobs, get(params, "workers"))
    return {"config": config, "runs": runs, "sources": feats["sources"],
            "mrl": dict(get(params, "mrl")),
            "mkd": {k: v for k, v in get(params, "mkd").items() if k != "text_only"}}  # not a training setting


def _train_seed(seed, dataset, feats, data, config, params, teacher_logits, device, settings, live_factory,
                progress) -> dict:
    """One seed of the multimodal model (a unit of ``erc.parallel``)."""
    seed_everything(seed)
    model = MGLRA(**config)
    objective = build_objective(params, dataset, feats, len(config["nesting"]), teacher_logits)
    live = _live(f"plots/train/{dataset}/seed{seed}", live_factory)
    # a unimodal text student head (it can answer text-only dialogues: mkd.text_only) also keeps the state of its
    # own best validation epoch for that task, whatever mkd.text_only says (only evaluate and predict.py read it)
    student = "text" if text_only_head(config, "student") == "student" else None
    result = fit(model, data, objective, feats["classes"], seed=seed, device=device, live=live,
                 progress=progress, desc=f"{dataset} seed {seed}", student=student, **settings)
    if live is not None:
        live.end()
    run = {"state": result["state"], "epoch": result["epoch"], "history": result["history"]}
    if student is not None:
        run.update(text_only_state=result["student_state"], text_only_epoch=result["student_epoch"])
    return run


def bclstm_settings(params: dict, dataset: str) -> dict:
    """``fit`` keywords for the bc-LSTM: the model's settings (same epochs, batches and selection rule, so the
    same budget of steps and validation checks) with the reference's own learning rate."""
    settings = train_settings(params, dataset)
    settings.update(lr=get(params, "references.bclstm_lr"))
    return settings


def bclstm_model(feats: dict, params: dict) -> BcLSTM:
    return BcLSTM(bclstm_input_dim(feats["features"]), feats["n_speakers"], len(feats["classes"]),
                  get(params, "references.bclstm_hidden"), get(params, "model.dropout"))


def _bclstm_seed(seed, dataset, feats, data, params, device, settings, progress) -> dict:
    """One seed of the bc-LSTM reference (a unit of ``erc.parallel``): its selected epoch and every utterance's logits."""
    seed_everything(seed)
    model = bclstm_model(feats, params)
    objective = build_objective(params, dataset, feats, 1, use_mkd=False)
    result = fit(model, data, objective, feats["classes"], seed=seed, device=device, progress=progress,
                 desc=f"{dataset} bc-LSTM seed {seed}", **settings)
    return {"epoch": result["epoch"], "logits": predict_all(model, data, device).cpu()}


def train_references(dataset: str, feats: dict, graphs: dict, params: dict, progress=True) -> dict:
    """Logits of every utterance from the logistic regression and from one bc-LSTM per seed."""
    device, settings = pick_device(), bclstm_settings(params, dataset)
    logreg = logistic_regression(feats, get(params, "references.logreg_C"))
    data = DialogueData(feats, graphs["unimodal"])
    jobs = {seed: (seed, dataset, feats, data, params, device, settings, progress) for seed in seeds(params)}
    bclstm = run_parallel(_bclstm_seed, jobs, get(params, "workers"))
    return {"logreg": logreg, "bc_lstm": bclstm}
