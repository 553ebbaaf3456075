"""Table 1 of the paper from DVC experiments: test Acc / weighted F1 (mean ± std over seeds) per method,
the paper's numbers beside ours, and each row's paired cluster bootstrap difference against MGLRA."""
from __future__ import annotations

import functools
import io
import re
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from erc.config import params as erc_params
from erc.data.datasets import CLASSES
from erc.data.feature_file import utterance_dialogues
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch, save_text
from erc.reporting.pages import markdown_table
from erc.config.params import DATASETS, flatten


def datasets_of(params: dict) -> list[str]:
    """The datasets a run's params (a dict) train: the built-ins and registered corpora it lists."""
    return list(params.get("datasets") or DATASETS)


def n_classes_of(dataset: str, features: str) -> int:
    """A dataset's number of classes: a built-in's, or a corpus's label list in its feature file."""
    if dataset in CLASSES:
        return len(CLASSES[dataset])
    from erc.data.feature_file import load_features
    return len(load_features(features, hide_test_labels=True)["classes"])

ROWS = {  # (mrl.enabled, mrl.shared, mkd.enabled) -> row name, in the paper's order
    (False, False, False): "MGLRA", (True, False, False): "MRL", (True, True, False): "MRL-E",
    (False, False, True): "MKD", (True, False, True): "MRL + MKD", (True, True, True): "MRL-E + MKD",
}
PAPER = {  # Table 1 of Na, Lee, Shin (RoBERTa-large text, openSMILE audio): (Acc, w-F1)
    ("MGLRA", "iemocap"): (68.52, 68.26), ("MGLRA", "meld"): (66.86, 65.33),
    ("MRL-E + MKD", "iemocap"): (72.15, 71.60), ("MRL-E + MKD", "meld"): (67.70, 66.29),
}


# rows beyond the paper's six: another setting of the same pipeline, found like the six (params.yaml with these keys
# set) and compared with the same MGLRA row; its features differ, so only its code and params must match the run's
EXTRA_ROWS = {"MGLRA, frozen MiniLM": {"features.text": "minilm", "mrl.enabled": False, "mrl.shared": False,
                                       "mkd.enabled": False}}
REFERENCE_ROWS = {"bc-LSTM (same features)": "bc_lstm", "logistic regression (same features)": "logreg"}


def with_overrides(params: dict, overrides: dict) -> dict:
    """A deep copy of nested ``params`` with dotted ``overrides`` set."""
    out = json.loads(json.dumps(params))
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def row_name(params: dict) -> str:
    mrl, mkd = params.get("mrl", {}), params.get("mkd", {})
    enabled = bool(mrl.get("enabled"))
    return ROWS[(enabled, enabled and bool(mrl.get("shared")), bool(mkd.get("enabled")))]


SWITCHES = {"mrl.enabled", "mrl.shared", "mkd.enabled"}


def differences(params: dict, reference: dict, defaults: dict) -> dict:
    """{dotted key: (value, reference value)} outside the three switches; a key missing on one side takes
    its default (``defaults``: dotted key -> default), so experiments that predate a key still match."""
    a, b, d = flatten(params), flatten(reference), flatten(defaults)
    keys = sorted((set(a) | set(b)) - SWITCHES)
    return {k: (a.get(k, d.get(k)), b.get(k, d.get(k))) for k in keys if a.get(k, d.get(k)) != b.get(k, d.get(k))}


def same_setup(params: dict, reference: dict, defaults: dict | None = None) -> bool:
    """True when two params differ at most in the three switches that define Table 1's rows."""
    return not differences(params, reference, defaults or {})


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


# Each row of the last table built, with what the table read of it: its experiment's params, the train / evaluate
# stages of its dvc.lock, its metrics and its test predictions. DVC's experiments live in one repository copy's
# refs (a clone or a CI run has none); the records are committed, so that a clone rebuilds the same table and
# ``--run`` reruns only what the records do not hold for the current inputs.
RECORDS = Path("metrics/table1")


def record_of(name: str, found: dict) -> dict:
    """The record of row ``name`` from ``find_rows`` entries (dataset -> entry) of one experiment or several."""
    datasets = {}
    for d, entry in found.items():
        exp, preds = entry["exp"], entry["preds"].sort_values(["seed", "utterance"])
        stages = (yaml.safe_load(exp_file(exp, "dvc.lock") or "") or {}).get("stages") or {}
        first = preds[preds["seed"] == preds["seed"].iloc[0]]
        datasets[d] = {
            "experiment": exp["name"], "rev": exp["rev"], "params": exp["params"],
            "lock": {k: stages[k] for k in (f"{stage}@{d}" for stage in RUN_STAGES) if k in stages},
            "metrics": entry["metrics"],
            "test": {"utterance": first["utterance"].tolist(), "dialogue": first["dialogue"].astype(str).tolist(),
                     "label": first["label"].tolist(),
                     "prediction": {str(seed): group["prediction"].tolist() for seed, group in preds.groupby("seed")}}}
    return {"row": name, "datasets": datasets}


def save_records(rows: dict, features: str = "data/features/{dataset}.pt", folder: Path = RECORDS) -> None:
    """One JSON per row of ``rows`` (``find_rows``) under ``folder``; records of rows no longer found are removed."""
    by_row = {}
    for (name, d), entry in rows.items():
        preds = with_dialogues(entry["preds"], features.format(dataset=d), f"{entry['exp']['name']}'s predictions")
        by_row.setdefault(name, {})[d] = {**entry, "preds": preds}
    folder.mkdir(parents=True, exist_ok=True)
    keep = set()
    for name, found in by_row.items():
        path = folder / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".json")
        save_text(json.dumps(record_of(name, found), separators=(",", ":"), sort_keys=True) + "\n", path)  # stable bytes
        keep.add(path)
    for stale in set(folder.glob("*.json")) - keep:
        stale.unlink()


def load_records(folder: Path = RECORDS) -> list[dict]:
    """The committed records as experiments (one per row and dataset) whose files are the record's, not git's."""
    return [exp for path in sorted(folder.glob("*.json")) for exp in load_record(path)]


def load_record(path: Path) -> list[dict]:
    """One record file as experiments, one per dataset it holds (``load_records``)."""
    found = []
    try:
        record = json.loads(Path(path).read_text())
        for d, r in record["datasets"].items():
            test = r["test"]
            lines = ["seed,utterance,dialogue,label,prediction"] + [
                f"{seed},{u},{dialogue},{label},{p}" for seed, preds in test["prediction"].items()
                for u, dialogue, label, p in zip(test["utterance"], test["dialogue"], test["label"], preds)]
            files = {"dvc.lock": yaml.safe_dump({"stages": r["lock"]}),
                     f"metrics/details/{d}.json": json.dumps(r["metrics"]),
                     f"plots/{d}/test_predictions.csv": "\n".join(lines) + "\n"}
            found.append({"rev": r["rev"], "name": r["experiment"], "params": r["params"], "files": files})
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{path}: not a Table 1 record ({type(err).__name__}: {err})") from None
    return found


@functools.lru_cache(maxsize=None)
def feature_file_dialogues(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(dialogue id, label) of each utterance of a feature file, whose utterances are stored dialogue after dialogue."""
    feats = load_torch(path, "feature file")
    return utterance_dialogues(feats), feats["labels"].numpy()


def read_predictions(text: str, where: str, dataset: str) -> pd.DataFrame:
    """A run's ``plots/<dataset>/test_predictions.csv`` (its text), checked to hold one row per seed and utterance."""
    try:
        preds = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{where}: plots/{dataset}/test_predictions.csv is unreadable ({err})") from None
    if not {"seed", "utterance", "label", "prediction"} <= set(preds) or preds.duplicated(["seed", "utterance"]).any():
        raise InputError(f"{where}: plots/{dataset}/test_predictions.csv is not one row per seed and utterance")
    return preds


def with_dialogues(table: pd.DataFrame, features: str | Path, where: str) -> pd.DataFrame:
    """``table`` with its 'dialogue' column; CSVs written before the column existed get it from the feature file."""
    if "dialogue" in table:
        return table.assign(dialogue=table["dialogue"].astype(str))
    if not Path(features).is_file():
        raise InputError(f"{where} has no 'dialogue' column and {features} (to map utterances to dialogues) is not found")
    dialogue, label = feature_file_dialogues(str(features))
    utterance = table["utterance"].to_numpy()
    # the labels check that the feature file is the one the predictions were made on
    if utterance.max() >= len(dialogue) or not np.array_equal(label[utterance], table["label"].to_numpy()):
        raise InputError(f"{where} has no 'dialogue' column and its utterances do not match {features}")
    return table.assign(dialogue=dialogue[utterance].astype(str))


def acc_f1(confusion: np.ndarray, n_classes: int) -> np.ndarray:
    """(..., K*K) confusion counts (row-major label, prediction) -> (..., 2) Acc and weighted F1 in percent."""
    c = confusion.reshape(*confusion.shape[:-1], n_classes, n_classes)
    tp, support, predicted = np.diagonal(c, axis1=-2, axis2=-1), c.sum(-1), c.sum(-2)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(tp.shape), where=(support + predicted) > 0)
    total = support.sum(-1)
    return 100 * np.stack([tp.sum(-1) / total, (f1 * support).sum(-1) / total], axis=-1)


def confusions(predictions: np.ndarray, labels: np.ndarray, dialogue: np.ndarray, n_dialogues: int,
               n_classes: int) -> np.ndarray:
    """(seeds, dialogues, K*K) confusion counts of each seed on each test dialogue (``dialogue``: 0..D-1 per utterance)."""
    n_cells = n_classes ** 2
    key = (np.arange(len(predictions))[:, None] * n_dialogues + dialogue) * n_cells + labels * n_classes + predictions
    return np.bincount(key.ravel(), minlength=len(predictions) * n_dialogues * n_cells).reshape(
        len(predictions), n_dialogues, n_cells).astype(float)


def seed_matrix(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seeds, utterances) predictions, (utterances,) labels and dialogues, utterances in a fixed order."""
    pivot = table.pivot(index="seed", columns="utterance", values="prediction").sort_index(axis=1)
    if pivot.isna().any().any():
        raise InputError("test_predictions.csv: the seeds were tested on different utterances")
    per_utterance = table.drop_duplicates("utterance").set_index("utterance").sort_index()
    return pivot.to_numpy().astype(int), per_utterance["label"].to_numpy(), per_utterance["dialogue"].to_numpy()


def paired_bootstrap(row: pd.DataFrame, base: pd.DataFrame, n_classes: int, n_boot: int = 1000, seed: int = 0):
    """Mean and 95 % interval of (row − base) in Acc and w-F1: test dialogues resampled jointly (cluster
    bootstrap), each side's seeds resampled independently (seed k of two configurations are different models)."""
    row_pred, labels, dialogues = seed_matrix(row)
    base_pred, base_labels, base_dialogues = seed_matrix(base)
    if not (np.array_equal(labels, base_labels) and np.array_equal(dialogues, base_dialogues)):
        raise InputError("the two experiments were tested on different utterances")
    ids, dialogue = np.unique(dialogues, return_inverse=True)
    n = len(ids)
    counts = [confusions(p, labels, dialogue, n, n_classes) for p in (row_pred, base_pred)]
    point = acc_f1(counts[0].sum(1), n_classes).mean(0) - acc_f1(counts[1].sum(1), n_classes).mean(0)
    rng = np.random.default_rng(seed)
    # how often each dialogue is drawn: summing its confusion counts that often is exactly the resampled test set
    drawn = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    weights = np.bincount(drawn.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)

    def resampled(c):  # (n_boot, 2): the metric averaged over seeds drawn with replacement
        per_seed = acc_f1(np.matmul(weights, c), n_classes)  # (seeds, n_boot, 2)
        seeds = rng.integers(0, len(c), size=(len(c), n_boot))
        return np.take_along_axis(per_seed, seeds[:, :, None], axis=0).mean(0)

    draws = resampled(counts[0]) - resampled(counts[1])
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return point, low, high


def no_rows_reason(experiments: list[dict], reference_params: dict, defaults: dict, inputs: dict | None = None) -> str:
    """One line on why no experiment gave a row: none found, none with the current params, none on the current
    inputs, or no outputs."""
    if not experiments:
        return "no experiment matches the current params.yaml (0 experiments found; run the rows first, README \"Table 1\")"
    diffs = [(differences(e["params"], reference_params, defaults), e["name"]) for e in experiments]
    nearest, name = min(diffs, key=lambda d: len(d[0]))
    checked = [d for d in (inputs or {}) if inputs.get(d) is not None]
    candidates = [e for e in experiments if same_setup(e["params"], reference_params, defaults)]
    if not nearest and checked and not any(any(same_inputs(e, inputs)[d] for d in checked) for e in candidates):
        return (f"no experiment matching the current params.yaml ran on the current inputs (the deps and params "
                f"that dvc.lock records for train and evaluate; {len(experiments)} experiments found; run the rows "
                f"again: python src/table.py --run)")
    if not nearest:
        return (f"no experiment matching the current params.yaml has metrics/<dataset>.json and "
                f"plots/<dataset>/test_predictions.csv ({len(experiments)} experiments found)")
    shown = ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in list(nearest.items())[:3])
    more = f" and {len(nearest) - 3} more" if len(nearest) > 3 else ""
    return (f"no experiment matches the current params.yaml ({len(experiments)} experiments found; the nearest, "
            f"{name}, differs in {shown}{more})")


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


def find_rows(experiments: list[dict], reference_params: dict, defaults: dict | None = None,
              inputs: dict | None = None, devices: dict | None = None) -> dict:
    """(row name, dataset) -> the first experiment with ``reference_params`` but for the three switches whose
    metrics and test predictions exist (and whose predictions hold the seeds its params name). With ``inputs``
    (dataset -> ``run_inputs`` of the reference run), only experiments whose training and evaluation read the same
    files and params count: equal params.yaml on other features or code (a re-fine-tuned encoder) is another run.
    With ``devices`` (dataset -> ``run_device`` of the reference run), only runs on the same device count: CUDA's
    kernels give other numbers than the CPU's for the same params (``device: auto`` reads the same on both)."""
    defaults = erc_params.flat_defaults() if defaults is None else defaults
    rows = {}  # (row name, dataset) -> what the experiment produced for that dataset
    variants = {name: with_overrides(reference_params, o) for name, o in EXTRA_ROWS.items()}
    for exp in experiments:  # the first entry found for a configuration is kept
        extra = next((name for name, variant in variants.items() if same_setup(exp["params"], variant, defaults)
                      and all(flatten(exp["params"]).get(k, defaults.get(k)) == v
                              for k, v in EXTRA_ROWS[name].items() if k in SWITCHES)), None)
        if extra is None and not same_setup(exp["params"], reference_params, defaults):
            continue
        matching = same_inputs(exp, inputs, code_only=extra is not None, datasets=datasets_of(reference_params))
        for d in datasets_of(reference_params):
            if not matching[d]:
                continue
            # the detail file since the headline split; before it, metrics/<d>.json held everything
            metrics = exp_file(exp, f"metrics/details/{d}.json") or exp_file(exp, f"metrics/{d}.json")
            preds = exp_file(exp, f"plots/{d}/test_predictions.csv")
            if metrics and preds:
                where = f"{exp['name']} ({exp['rev'][:7]})"
                try:
                    metrics = json.loads(metrics)
                except json.JSONDecodeError as err:
                    raise InputError(f"{where}: metrics/{d}.json is unreadable ({err})") from None
                preds = read_predictions(preds, where, d)
                seeds = flatten(exp["params"]).get("train.seeds", defaults.get("train.seeds"))
                if seeds is not None and sorted(preds["seed"].unique().tolist()) != sorted(seeds):
                    continue  # a commit whose params changed without a rerun: its outputs are another run's
                if devices and devices.get(d) and run_device(metrics) != devices[d]:
                    continue  # the same params run on another device: another run
                setup = metrics.get("setup", {})  # what actually ran (an experiment may rerun one dataset only)
                name = extra or row_name({"mrl": {"enabled": setup.get("mrl"), "shared": setup.get("mrl_shared")},
                                          "mkd": {"enabled": setup.get("mkd")}})
                rows.setdefault((name, d), {"exp": exp, "metrics": metrics, "preds": preds})
    return rows


def missing_rows(rows: dict, datasets=DATASETS) -> list[str]:
    """Table 1's rows (and ``EXTRA_ROWS``) without results for every dataset, in the paper's order."""
    return [name for name in [*ROWS.values(), *EXTRA_ROWS] if any((name, d) not in rows for d in datasets)]


def row_overrides(name: str) -> list[str]:
    """``-S`` assignments of ``dvc exp run`` that make a row from the current params."""
    if name in EXTRA_ROWS:
        return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in EXTRA_ROWS[name].items()]
    (mrl, shared, mkd), = [k for k, v in ROWS.items() if v == name]
    return [f"mrl.enabled={str(mrl).lower()}", f"mrl.shared={str(shared).lower()}", f"mkd.enabled={str(mkd).lower()}"]


def build_table(experiments: list[dict], reference_params: dict, n_boot: int = 1000, defaults: dict | None = None,
                features: str = "data/features/{dataset}.pt", inputs: dict | None = None,
                devices: dict | None = None) -> str:
    """Rows from the experiments whose params equal ``reference_params`` but for the three switches (and, with
    ``inputs``, that read the same files: ``find_rows``); InputError when there is none. ``defaults`` (dotted key
    -> default) default to the params schema's."""
    defaults = erc_params.flat_defaults() if defaults is None else defaults
    rows = find_rows(experiments, reference_params, defaults, inputs, devices)
    if not rows:
        raise InputError(no_rows_reason(experiments, reference_params, defaults, inputs))
    lines = ["# Table 1: test Acc / weighted F1 (%), mean ± std over seeds", "",
             "Paper numbers use RoBERTa-large text and openSMILE audio; ours use the pipeline's features "
             "(params.yaml `features`). Δ vs MGLRA: paired cluster bootstrap over test dialogues with the seeds "
             f"resampled too ({n_boot} resamples), mean difference and 95 % interval.", ""]
    lines[-2] += (" Ensemble: the mean of the seeds' probabilities, each at its validation-picked epoch (what "
                  "predict.py serves). Paper protocol: each seed's epoch picked on the test set (a measurement, "
                  "chosen by nothing), median / best of the seeds, and their Δ against MGLRA's median.")
    header = ["method", "experiment", "seeds", "Acc", "w-F1", "paper Acc / w-F1", "Δ Acc vs MGLRA", "Δ w-F1 vs MGLRA",
              "ensemble w-F1 (Δ)", "paper protocol w-F1: median / best", "Δ paper protocol: median / best"]

    def pm(score: dict) -> str:
        return f"{score['mean']:.2f} ± {score['std']:.2f}"

    for d in datasets_of(reference_params):
        n_classes, cells = None, []
        for name in [*ROWS.values(), *EXTRA_ROWS]:
            paper = PAPER.get((name, d))
            paper = f"{paper[0]:.2f} / {paper[1]:.2f}" if paper else "—"
            if (name, d) not in rows:
                cells.append([name, "not run", "", "", "", paper, "", "", "", "", ""])
                continue
            r = rows[(name, d)]
            delta = ["", ""]
            if name != "MGLRA" and ("MGLRA", d) in rows:
                row, base = (with_dialogues(x["preds"], features.format(dataset=d),
                                            f"{x['exp']['name']}'s plots/{d}/test_predictions.csv")
                             for x in (r, rows[("MGLRA", d)]))
                n_classes = n_classes or n_classes_of(d, features.format(dataset=d))
                point, low, high = paired_bootstrap(row, base, n_classes, n_boot)
                delta = [f"{point[i]:+.2f} [{low[i]:+.2f}, {high[i]:+.2f}]" for i in range(2)]
            test = r["metrics"]["test"]
            base = rows[("MGLRA", d)]["metrics"] if ("MGLRA", d) in rows else {}
            cells.append([name, r["exp"]["name"], r["preds"]["seed"].nunique(), pm(test["acc"]),
                          pm(test["weighted_f1"]), paper, *delta, *protocol_cells(r["metrics"], base)])
        reference = next((rows[(n, d)] for n in ["MRL + MKD", *ROWS.values()] if (n, d) in rows), None)
        for name, key in REFERENCE_ROWS.items():  # trained by train_references on the rows' own features
            ref = (reference["metrics"].get("references") or {}).get(key) if reference else None
            if ref:
                seeds = reference["preds"]["seed"].nunique() if key == "bc_lstm" else 1
                cells.append([name, reference["exp"]["name"], seeds, pm(ref["test"]["acc"]),
                              pm(ref["test"]["weighted_f1"]), "—", "", "",
                              *protocol_cells(ref, rows[("MGLRA", d)]["metrics"] if ("MGLRA", d) in rows else {})])
        lines += [f"## {d.upper()}", "", markdown_table(header, cells), ""]
    return "\n".join(lines)


def protocol_cells(metrics: dict, base: dict) -> list[str]:
    """Ensemble w-F1 (Δ), the paper protocol's median / best w-F1, and its Δ against ``base``'s (MGLRA's) median;
    "—" for a run made before the per-epoch records existed."""
    ensemble = (metrics.get("ensemble") or {}).get("test", {}).get("weighted_f1")
    base_ensemble = (base.get("ensemble") or {}).get("test", {}).get("weighted_f1")
    cells = ["—" if ensemble is None else f"{ensemble:.2f}" + (
        f" ({ensemble - base_ensemble:+.2f})" if base_ensemble is not None and base is not metrics else "")]
    picked = ((metrics.get("protocols") or {}).get("test_picked") or {}).get("weighted_f1")
    base_picked = ((base.get("protocols") or {}).get("test_picked") or {}).get("weighted_f1")
    cells.append("—" if picked is None else f"{picked['median']:.2f} / {picked['best']:.2f}")
    cells.append("" if picked is None or base_picked is None or base is metrics else
                 f"{picked['median'] - base_picked['median']:+.2f} / {picked['best'] - base_picked['median']:+.2f}")
    return cells


def _dvc(args: list[str], run=subprocess.run) -> str:
    result = run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise InputError(f"dvc {' '.join(args[:3])} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result.stdout


def queue_state(status: str, names: set[str]) -> tuple[dict, int | None]:  # dvc queue status has no --json
    """(task name -> state) of ``names`` in ``dvc queue status`` output, and the number of workers, active or idle
    (None when the output does not say). Tasks of other, earlier runs (a stale Failed row, say) are ignored."""
    states, workers = {}, None
    for line in status.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] in names:
            states[words[1]] = words[-1]
        if line.startswith("Worker status:"):  # "Worker status: 1 active, 0 idle"
            counts = [int(w) for w in words[2:] if w.isdigit()]
            workers = sum(counts) if counts else None
    return states, workers


def start_queue(jobs: int, run=subprocess.run) -> None:
    """``dvc queue start -j N``. Its workers outlive the command and inherit its stdout and stderr: they go to a
    file, not a pipe, or reading them would wait for the last worker to exit."""
    with tempfile.TemporaryFile(mode="w+") as log:
        result = run(["dvc", "queue", "start", "-j", str(jobs)], stdout=log, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            log.seek(0)
            lines = log.read().strip().splitlines()
            raise InputError(f"dvc queue start failed: {lines[-1] if lines else f'exit {result.returncode}'}")


def row_slug(name: str, stamp: str = "") -> str:
    """The experiment name of a row's run: ``table-<row>-<stamp>``."""
    return "table-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + (f"-{stamp}" if stamp else "")


def run_missing_rows(names: list[str], jobs: int, run=subprocess.run, sleep=None, stamp: str = "") -> None:
    """Queue one DVC experiment per missing row (the current params with the row's switches), start DVC's queue
    with ``jobs`` workers and wait until this run's tasks are done; one of them failing is one InputError line
    naming it. Workers that stop while this run's tasks still wait are started again."""
    import time
    sleep = sleep or time.sleep
    slugs = set()
    for name in names:
        slug = row_slug(name, stamp)
        _dvc(["exp", "run", "--queue", "-n", slug, *[a for o in row_overrides(name) for a in ("-S", o)]], run)
        slugs.add(slug)
    if not names:
        return
    start_queue(jobs, run)
    while True:
        states, workers = queue_state(_dvc(["queue", "status"], run), slugs)
        failed = sorted(name for name, state in states.items() if state == "Failed")
        if failed:
            raise InputError(f"dvc queue: experiment {failed[0]} failed (dvc queue logs {failed[0]})")
        queued, running = (list(states.values()).count(state) for state in ("Queued", "Running"))
        if not queued and not running:
            return
        if queued and workers is not None and workers < min(jobs, queued + running):
            start_queue(jobs, run)  # a worker stopped with tasks still queued
        sleep(30)
