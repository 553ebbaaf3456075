"""The runs a table reads: commits and DVC experiments (``dvc exp show --json``), a file of one at its revision, and
what made its outputs (the ``train`` / ``evaluate`` deps and params its ``dvc.lock`` records)."""
from __future__ import annotations

import io
import json
import subprocess

import pandas as pd
import yaml

from erc.config.params import DATASETS, flatten
from erc.reporting.rows import SWITCHES
from erc.runtime.errors import InputError


def experiments_from_dvc() -> list[dict]:
    """Commits and experiments with their params, from ``dvc exp show --json --all-commits`` (``dvc.api.exp_show``
    has no all-commits option and flattens the params into columns; this keeps them nested)."""
    try:
        result = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True)
    except FileNotFoundError:
        raise InputError("dvc exp show: dvc is not installed") from None
    lines = (result.stderr or result.stdout).strip().splitlines()
    if result.returncode != 0:
        raise InputError(f"dvc exp show failed: {lines[-1] if lines else f'exit status {result.returncode}'}")
    try:
        shown = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise InputError("dvc exp show --json did not print JSON") from None
    found = []


    def visit(entry):
        data = entry.get("data") or {}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
        if entry.get("rev") != "workspace" and params and data.get("rev"):
            found.append({"rev": data["rev"], "name": entry.get("name") or data["rev"][:7], "params": params})
        for group in entry.get("experiments") or []:
            for rev in group.get("revs") or []:
                visit(rev)


    for entry in shown:
        visit(entry)
    return found


def git_file(rev: str, path: str) -> str | None:
    """A git-tracked file at ``rev`` (an experiment's ref included); ``dvc.api.read`` gives the same for git-tracked
    files but opens a whole DVC repository each call (seconds, against milliseconds, times rows x files)."""
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def exp_file(exp: dict, path: str) -> str | None:
    """A file of an experiment: from git at its revision, or from its record (``load_records``) when it is one."""
    files = exp.get("files")
    return files.get(path) if files is not None else git_file(exp["rev"], path)


def read_predictions(text: str, where: str, dataset: str) -> pd.DataFrame:
    """A run's ``plots/<dataset>/test_predictions.csv`` (its text), checked to hold one row per seed and utterance."""
    try:
        preds = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{where}: plots/{dataset}/test_predictions.csv is unreadable ({err})") from None
    if not {"seed", "utterance", "label", "prediction"} <= set(preds) or preds.duplicated(["seed", "utterance"]).any():
        raise InputError(f"{where}: plots/{dataset}/test_predictions.csv is not one row per seed and utterance")
    return preds


RUN_STAGES = ("train", "evaluate")  # the dvc.lock stages (per dataset) whose outputs a Table 1 row reads


def run_inputs(lock_text: str | None, dataset: str, where: str = "dvc.lock") -> dict | None:
    """What made a row's outputs for ``dataset``, by a ``dvc.lock``: the deps of ``train@<dataset>`` and
    ``evaluate@<dataset>`` (path -> content hash; dvc.yaml says which files) but those ``train`` writes, and their
    params but the three switches. None when the lock lacks a stage or a dep's hash; InputError (naming ``where``)
    when it is not YAML."""
    if not lock_text:
        return None
    try:
        stages = (yaml.safe_load(lock_text) or {}).get("stages") or {}
    except (yaml.YAMLError, AttributeError):
        raise InputError(f"{where}: not a readable dvc.lock") from None
    train, evaluate = (stages.get(f"{stage}@{dataset}") for stage in RUN_STAGES)
    if not train or not evaluate:
        return None
    made = {out["path"] for out in train.get("outs") or []}
    deps = {dep["path"]: dep.get(dep.get("hash") or "md5") for stage in (train, evaluate)
            for dep in stage.get("deps") or [] if dep["path"] not in made}
    if None in deps.values():
        return None
    params = {key: value for stage in (train, evaluate)
              for key, value in flatten((stage.get("params") or {}).get("params.yaml") or {}).items()
              if key not in SWITCHES}
    return {"deps": deps, "params": params}


def code_of(inputs: dict | None) -> dict | None:
    """``run_inputs`` less the data files: the code and the params only (rows on other features: ``EXTRA_ROWS``)."""
    if inputs is None:
        return None
    return {"deps": {k: v for k, v in inputs["deps"].items() if k.startswith("src/")}, "params": inputs["params"]}


def same_inputs(exp: dict, inputs: dict | None, code_only: bool = False, datasets=DATASETS) -> dict:
    """dataset -> whether ``exp`` made its outputs from ``inputs[dataset]`` (``run_inputs`` of the reference run;
    a dataset whose reference is None always counts); an experiment with an unreadable lock counts for none.
    ``code_only``: the same code and params are enough (an ``EXTRA_ROWS`` row reads other features)."""
    if inputs is None:
        return {d: True for d in datasets}
    lock = exp_file(exp, "dvc.lock")
    view = code_of if code_only else (lambda x: x)
    try:
        return {d: inputs.get(d) is None or view(run_inputs(lock, d)) == view(inputs[d]) for d in datasets}
    except InputError:
        return {d: inputs.get(d) is None for d in datasets}


def run_device(metrics: dict) -> str:
    """The device a run's stages computed on, from its metrics' ``setup.device`` (stage -> cpu | cuda): ``cpu``,
    ``cuda``, or ``cpu+cuda`` for a mix; runs from before the record ran on the CPU."""
    return "+".join(sorted(set(((metrics.get("setup") or {}).get("device") or {"train": "cpu"}).values())))
