"""Table 1 of the paper from DVC experiments: test Acc / weighted F1 (mean ± std over seeds) per method,
the paper's numbers beside ours, and each row's paired bootstrap difference against MGLRA over test utterances."""
from __future__ import annotations

import io
import json
import subprocess

import numpy as np
import pandas as pd

from erc.datasets import CLASSES

ROWS = {  # (mrl.enabled, mrl.shared, mkd.enabled) -> row name, in the paper's order
    (False, False, False): "MGLRA", (True, False, False): "MRL", (True, True, False): "MRL-E",
    (False, False, True): "MKD", (True, False, True): "MRL + MKD", (True, True, True): "MRL-E + MKD",
}
PAPER = {  # Table 1 of Na, Lee, Shin (RoBERTa-large text, openSMILE audio): (Acc, w-F1)
    ("MGLRA", "iemocap"): (68.52, 68.26), ("MGLRA", "meld"): (66.86, 65.33),
    ("MRL-E + MKD", "iemocap"): (72.15, 71.60), ("MRL-E + MKD", "meld"): (67.70, 66.29),
}
DATASETS = ("iemocap", "meld")


def row_name(params: dict) -> str:
    mrl, mkd = params.get("mrl", {}), params.get("mkd", {})
    enabled = bool(mrl.get("enabled"))
    return ROWS[(enabled, enabled and bool(mrl.get("shared")), bool(mkd.get("enabled")))]


SWITCHES = {"mrl.enabled", "mrl.shared", "mkd.enabled"}


def flatten(params: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def same_setup(params: dict, reference: dict) -> bool:
    """True when two params differ at most in the three switches that define Table 1's rows."""
    a, b = flatten(params), flatten(reference)
    return all(a.get(k) == b.get(k) for k in (set(a) | set(b)) - SWITCHES)


def experiments_from_dvc() -> list[dict]:
    """Commits and experiments with their params, from ``dvc exp show --json``."""
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True,
                                      text=True, check=True).stdout)
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
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def weighted_f1(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> float:
    confusion = np.bincount(labels * n_classes + predictions, minlength=n_classes ** 2).reshape(n_classes, n_classes)
    tp, support, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(n_classes), where=(support + predicted) > 0)
    return float((f1 * support).sum() / support.sum())


def seed_matrix(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, utterances) predictions and (utterances,) labels, utterances in a fixed order."""
    pivot = table.pivot(index="seed", columns="utterance", values="prediction").sort_index(axis=1)
    labels = table.drop_duplicates("utterance").set_index("utterance")["label"].sort_index()
    return pivot.to_numpy(), labels.to_numpy()


def scores(predictions: np.ndarray, labels: np.ndarray, index: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean over seeds of (Acc, w-F1) in percent on the utterances ``index``."""
    y = labels[index]
    return 100 * np.mean([[(p[index] == y).mean(), weighted_f1(y, p[index], n_classes)] for p in predictions], axis=0)


def paired_bootstrap(row: pd.DataFrame, base: pd.DataFrame, n_classes: int, n_boot: int = 1000, seed: int = 0):
    """Mean and 95 % interval of (row − base) in Acc and w-F1, resampling test utterances jointly."""
    row_pred, labels = seed_matrix(row)
    base_pred, base_labels = seed_matrix(base)
    if not np.array_equal(labels, base_labels):
        raise ValueError("the two experiments were tested on different utterances")
    rng = np.random.default_rng(seed)
    full = np.arange(len(labels))
    point = scores(row_pred, labels, full, n_classes) - scores(base_pred, labels, full, n_classes)
    draws = np.array([scores(row_pred, labels, idx, n_classes) - scores(base_pred, labels, idx, n_classes)
                      for idx in rng.integers(0, len(labels), size=(n_boot, len(labels)))])
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return point, low, high


def build_table(experiments: list[dict], reference_params: dict, n_boot: int = 1000) -> str:
    """Rows from the experiments whose params equal ``reference_params`` but for the three switches."""
    rows = {}  # (row name, dataset) -> what the experiment produced for that dataset
    for exp in experiments:  # the first entry found for a configuration is kept
        if not same_setup(exp["params"], reference_params):
            continue
        for d in DATASETS:
            metrics, preds = git_file(exp["rev"], f"metrics/{d}.json"), git_file(exp["rev"], f"plots/{d}/test_predictions.csv")
            if metrics and preds:
                metrics = json.loads(metrics)
                setup = metrics.get("setup", {})  # what actually ran (an experiment may rerun one dataset only)
                name = row_name({"mrl": {"enabled": setup.get("mrl"), "shared": setup.get("mrl_shared")},
                                 "mkd": {"enabled": setup.get("mkd")}})
                rows.setdefault((name, d), {"exp": exp, "metrics": metrics, "preds": pd.read_csv(io.StringIO(preds))})
    lines = ["# Table 1: test Acc / weighted F1 (%), mean ± std over seeds", "",
             "Paper numbers use RoBERTa-large text and openSMILE audio; ours use the pipeline's features "
             "(params.yaml `features`). Δ vs MGLRA: paired bootstrap over test utterances (1000 resamples), "
             "mean difference and 95 % interval.", ""]
    for d in DATASETS:
        n_classes = len(CLASSES[d])
        lines += [f"## {d.upper()}", "",
                  "| method | experiment | seeds | Acc | w-F1 | paper Acc / w-F1 | Δ Acc vs MGLRA | Δ w-F1 vs MGLRA |",
                  "|---|---|---|---|---|---|---|---|"]
        for name in ROWS.values():
            if (name, d) not in rows:
                paper = PAPER.get((name, d))
                lines.append(f"| {name} | not run | | | | {f'{paper[0]:.2f} / {paper[1]:.2f}' if paper else '—'} | | |")
                continue
            r = rows[(name, d)]
            test = r["metrics"]["test"]
            paper = PAPER.get((name, d))
            delta = ["", ""]
            if name != "MGLRA" and ("MGLRA", d) in rows:
                point, low, high = paired_bootstrap(r["preds"], rows[("MGLRA", d)]["preds"], n_classes, n_boot)
                delta = [f"{point[i]:+.2f} [{low[i]:+.2f}, {high[i]:+.2f}]" for i in range(2)]
            lines.append(f"| {name} | {r['exp']['name']} | {r['preds']['seed'].nunique()} | "
                         f"{test['acc']['mean']:.2f} ± {test['acc']['std']:.2f} | "
                         f"{test['weighted_f1']['mean']:.2f} ± {test['weighted_f1']['std']:.2f} | "
                         f"{f'{paper[0]:.2f} / {paper[1]:.2f}' if paper else '—'} | {delta[0]} | {delta[1]} |")
        lines.append("")
    return "\n".join(lines)
