"""The seed study's report (``python src/seed_study.py report``): scores the seed records of ``runs/seed_study``
against the test labels into ``metrics/seed_study/<dataset>.json`` (committed), then writes from those files alone
``docs/seed_study.md`` and ``plots/protocol/<dataset>.png``. A report: it reads test labels and chooses nothing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from erc.reporting.rows import ROWS, row_slug
from erc.data.feature_file import load_features
from erc.runtime.errors import InputError
from erc.runtime.files import atomic_path, load_torch, save_text
from erc.reporting.pages import markdown_table
from erc.config.params import DATASETS
from erc.reporting.protocol import (KS, MODE_ROWS, PAPER_WF1, gain_summary, gain_table, paper_gain, paper_gains,
                                    protocol_figure, read_author_runs)
from erc.evaluation.records import run_protocols

RUNS, METRICS, PAGE = Path("runs/seed_study"), Path("metrics/seed_study"), Path("docs/seed_study.md")
AUTHOR_RUNS = METRICS / "authors_runs.csv"  # one line a logged run (its best f1_w): the page without the raw logs
AUTHORS = Path(__file__).resolve().parents[3] / "shared" / "data" / "authors_logs"  # beside the repository
OUR_KS = (1, 5, 10)


def score_seed(path: Path, labels, classes) -> dict:
    """One seed record scored (``run_protocols``) with its validation w-F1 at the epoch it kept."""
    record = load_torch(path, "seed record", ("epoch", "history", "utterances", "recorded"))
    ours = record["epoch"]
    scored = run_protocols(record["recorded"], labels[record["utterances"]], classes, ours)
    return {"valid_picked_epoch": ours, "valid_weighted_f1": record["history"][ours - 1]["valid_weighted_f1"],
            **scored}


def score_records(dataset: str) -> dict:
    """``metrics/seed_study/<dataset>.json`` updated with every seed record on disk (seeds without a record here
    keep their committed entry, so a clone rebuilds the page from the JSON alone)."""
    path = METRICS / f"{dataset}.json"
    study = json.loads(path.read_text()) if path.is_file() else {"rows": {}}
    records = {row: sorted((RUNS / dataset / row_slug(row)).glob("seed*.pt")) for row in ROWS.values()}
    if any(records.values()):
        feats = load_features(f"data/features/{dataset}.pt", hide_test_labels=False)
        for row, files in records.items():
            seeds = study["rows"].setdefault(row, {})
            for file in files:
                seeds[file.stem.removeprefix("seed")] = score_seed(file, feats.labels, feats.classes)
            study["rows"][row] = dict(sorted(seeds.items(), key=lambda kv: int(kv[0])))
        study["rows"] = {r: study["rows"][r] for r in ROWS.values() if study["rows"].get(r)}
        save_text(json.dumps(study, indent=1) + "\n", path)
    return study


def scores_of(seeds: dict, key: str) -> np.ndarray:
    return np.array([run[key]["weighted_f1"] for run in seeds.values()])


def _cell(values: np.ndarray) -> str:
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}" if len(values) > 1 else f"{values.mean():.2f}"


def committed_run(dataset: str) -> dict:
    """The committed ``dvc repro`` run's seeds (the default row, MRL + MKD) in the study's layout, from its metrics."""
    path = Path(f"metrics/details/{dataset}.json")
    protocols = json.loads(path.read_text()).get("protocols") if path.is_file() else None
    return {str(run["run"]): run for run in protocols["per_run"]} if protocols else {}


def paper_style_delta(row: np.ndarray, base: np.ndarray, k: int = 5, draws: int = 10000, seed: int = 0) -> dict:
    """The paper's comparison on our runs: the best of k of ``row``'s test-picked scores (drawn without replacement)
    minus the median of all of ``base``'s; its mean and 95 % range over draws."""
    rng = np.random.default_rng(seed)
    best = np.array([rng.choice(row, k, replace=False).max() for _ in range(draws)])
    return gain_summary(best - np.median(base))


def row_table(study: dict, dataset: str) -> str:
    header = ["row", "seeds", "validation-picked test w-F1", "test-picked test w-F1", "gap", "median / best (test-picked)",
              "paper", "Δ vs MGLRA: ours (means, validation-picked)", "Δ the paper's way (best of 5 vs median, test-picked)"]
    cells, base = [], study["rows"].get("MGLRA")
    for row, seeds in study["rows"].items():
        ours, paper = scores_of(seeds, "test_at_valid_picked"), scores_of(seeds, "test_at_test_picked")
        deltas = ["", ""]
        if base and row != "MGLRA":
            deltas[0] = f"{ours.mean() - scores_of(base, 'test_at_valid_picked').mean():+.2f}"
            if len(paper) >= 5:
                deltas[1] = _gain_cell(paper_style_delta(paper, scores_of(base, "test_at_test_picked")))
        cells.append([row, len(seeds), _cell(ours), _cell(paper), f"{paper.mean() - ours.mean():+.2f}",
                      f"{np.median(paper):.2f} / {paper.max():.2f}", f"{PAPER_WF1[(row, dataset)]:.2f}", *deltas])
    return markdown_table(header, cells)


def _gain_cell(summary: dict) -> str:
    return f"{summary['mean']:+.2f} [{summary['lo']:+.2f}, {summary['hi']:+.2f}] ({100 * summary['share_positive']:.0f} %)"


def gain_rows(study: dict) -> list[list]:
    """Gain from nothing on our runs: per row, k = 1, 5, 10 (where k < seeds), both protocols."""
    cells = []
    for row, seeds in study["rows"].items():
        for label, key in (("test-picked", "test_at_test_picked"), ("validation-picked", "test_at_valid_picked")):
            values = scores_of(seeds, key)
            cells.append([f"{row} (ours, {len(values)} seeds, {label})",
                          *[_gain_cell(gain_summary(paper_gain(values, k))) if k < len(values) else "—" for k in OUR_KS]])
    return cells


def figure(study: dict, authors, dataset: str, path: Path) -> None:
    rows = {}
    for row in ROWS.values():
        seeds = study["rows"].get(row, {})
        mode = next((m for m, r in MODE_ROWS.items() if r == row), None)
        author = None if authors is None or mode is None else \
            authors[(authors["dataset"] == dataset) & (authors["mode"] == mode)]["f1_w"].tolist()
        if not seeds and not author:
            continue
        rows[row] = {"authors_test": author or None, "paper": PAPER_WF1[(row, dataset)],
                     "ours_test": list(scores_of(seeds, "test_at_test_picked")) if seeds else [],
                     "ours_valid": list(scores_of(seeds, "test_at_valid_picked")) if seeds else []}
    protocol_figure(rows, dataset, path)


def page(studies: dict, authors) -> str:
    lines = ["# The paper's protocol, measured: the seed study", "",
             "Generated by `python src/seed_study.py report` from `metrics/seed_study/<dataset>.json` (seeds trained "
             "by `python src/seed_study.py run <dataset> <row>` at the committed params, features from the "
             "committed `dvc repro`) and the authors' public logs (`../shared/data/authors_logs`). Validation-picked: "
             "each seed's epoch chosen on validation (ours). Test-picked: each seed's epoch chosen on the test set "
             "(the paper's; measured here, never used). Gain from nothing: draw k runs of *one* method without "
             "replacement, take their best and subtract the median of the other runs of the same method; mean, 95 % "
             "range and share of draws above 0 over 10,000 draws. A paper's gain inside that range is what a best-of-k "
             "comparison gives with no difference at all. MRL + MKD (the default) is the committed `dvc repro`'s 5 seeds "
             "where the study has not run it. The paper's way of comparing: the best of 5 test-picked seeds of a row "
             "against the median of MGLRA's (mean, 95 % range and share above 0 over draws of the 5).", ""]
    for dataset, study in studies.items():
        lines += [f"## {dataset.upper()}", "", f"![both protocols](../plots/protocol/{dataset}.png)", ""]
        if study.get("trained_at"):  # the code the study's seeds ran on, where it is not today's
            lines += [f"The study's seeds: {study['trained_at']}.", ""]
        if study["rows"]:
            lines += [row_table(study, dataset), ""]
        gains = gain_rows(study)
        if authors is not None:
            table = gain_table(authors[authors["dataset"] == dataset], ks=KS)
            for mode, group in table.groupby("mode", sort=False):
                n = int(group["n"].iloc[0]) if "n" in group else ""
                by_k = {int(r["k"]): r for _, r in group.iterrows()}
                gains.append([f"{MODE_ROWS.get(mode, mode)} (authors' {mode}, {n} runs, test-picked)",
                              *[_gain_cell(by_k[k]) if k in by_k else "—" for k in OUR_KS], *[
                                  _gain_cell(by_k[k]) if k in by_k else "—" for k in KS if k not in OUR_KS]])
        header = ["runs", *[f"k = {k}" for k in OUR_KS], *[f"k = {k}" for k in KS if k not in OUR_KS]]
        gains = [g + [""] * (len(header) - len(g)) for g in gains]
        lines += ["Gain from nothing (best of k minus the median of the rest, same method):", "",
                  markdown_table(header, gains), ""]
        reported = ", ".join(f"{row} {gain:+.2f}" for row, gain in paper_gains(dataset).items())
        lines += [f"The paper's reported gains over MGLRA: {reported}.", ""]
    return "\n".join(lines)


def report() -> None:
    """Score new records, then write the JSON, the page and the figures."""
    import pandas as pd
    authors = None
    if AUTHORS.is_dir():
        authors = pd.concat([read_author_runs(AUTHORS / f"{d.upper()}.csv") for d in DATASETS], ignore_index=True)
        with atomic_path(AUTHOR_RUNS) as tmp:
            authors.to_csv(tmp, index=False)
    elif AUTHOR_RUNS.is_file():
        authors = pd.read_csv(AUTHOR_RUNS, dtype={"mode": str, "dataset": str})
    studies = {d: score_records(d) for d in DATASETS}
    for dataset, study in studies.items():  # the default row from the committed run, unless the study ran it
        if "MRL + MKD" not in study["rows"] and committed_run(dataset):
            rows = dict(study["rows"], **{"MRL + MKD": committed_run(dataset)})
            study["rows"] = {r: rows[r] for r in ROWS.values() if r in rows}
    if not any(s["rows"] for s in studies.values()) and authors is None:
        raise InputError(f"{RUNS}: no seed records, {METRICS}: no scores, and no authors' logs at {AUTHORS}")
    for dataset, study in studies.items():
        figure(study, authors, dataset, Path(f"plots/protocol/{dataset}.png"))
    save_text(page(studies, authors), PAGE)
    print(f"wrote {PAGE}, plots/protocol/*.png")
