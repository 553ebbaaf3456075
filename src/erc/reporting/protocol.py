"""The paper's protocol measured: the authors' public logs read per run, and the "gain from nothing" that comparing one
method's best of k test-picked runs with another's median produces between two sets of runs of the *same* method.

The authors' logs (``IEMOCAP.csv``, ``MELD.csv``; their README describes the layout) hold one row each time a run's
test weighted F1 (or accuracy) improved; a run is one (``mode``, ``seed``, ``timestamps``) group, rows of several runs
interleave, and a run's test-picked score is its maximum ``f1_w``. Scores here are in % (the logs hold fractions)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from erc.evaluation.evaluate import plt, write_png  # pyplot with the Agg backend set there
from erc.reporting.rows import PAPER, ROWS
from erc.runtime.errors import InputError

RUN_KEYS = ("mode", "seed", "timestamps")
COLUMNS = ("f1_w", "acc_w", "seed", "timestamps", "mode", "epoch")  # the columns read; others are ignored
MODES = ("ORIGINAL", "ORIGINAL_AV_LSTM", "MKD", "MKD_AV_LSTM", "MRL", "MRL_efficient")  # the logs' order
MODE_ROWS = {"ORIGINAL": "MGLRA", "MKD": "MKD", "MRL": "MRL", "MRL_efficient": "MRL-E"}  # _AV_LSTM: no Table 1 row
KS = (1, 5, 10, 20, 50)
_PAPER_WF1_REST = {  # Table 1 w-F1 of the rows erc.reporting.rows.PAPER does not hold (it has MGLRA, MRL-E + MKD)
    ("MRL", "iemocap"): 70.19, ("MRL", "meld"): 66.25, ("MRL-E", "iemocap"): 69.92, ("MRL-E", "meld"): 66.21,
    ("MKD", "iemocap"): 70.77, ("MKD", "meld"): 66.07, ("MRL + MKD", "iemocap"): 71.31, ("MRL + MKD", "meld"): 66.24,
}
_PAPER_WF1_ALL = {key: wf1 for key, (_, wf1) in PAPER.items()} | _PAPER_WF1_REST
PAPER_WF1 = {(row, ds): _PAPER_WF1_ALL[(row, ds)] for row in ROWS.values() for ds in ("iemocap", "meld")}
"""(Table 1 row, dataset) -> the paper's test w-F1 (%), rows in the paper's order."""
GROUPS = (  # protocol_figure's point groups: key in a row's dict, legend label, colour, marker
    ("authors_test", "authors, test-picked", "#7f7f7f", "o"),
    ("ours_test", "ours, test-picked", "#d62728", "D"),
    ("ours_valid", "ours, validation-picked", "#1f77b4", "s"),
)


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """``frame[column]`` as floats; the first cell that is not a number is one InputError naming file, line, column."""
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    bad = values.isna() | ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: line {i + 2}: {column} is not a number ({frame[column].iloc[i]!r})")
    return values


def read_author_runs(path: str | Path) -> pd.DataFrame:
    """One row per run of an authors' log: dataset (the file's stem, lower case), mode, seed, timestamp, f1_w and
    acc_w (%, at the run's best-f1_w row, the first such row on ties), epoch of that row, rows (the run's row count)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: authors' log not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV ({str(err).splitlines()[0] if str(err) else err!r})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r} (an authors' log has {', '.join(COLUMNS)})")
    if frame.empty:
        raise InputError(f"{path}: no rows")
    runs = pd.DataFrame({c: _numbers(frame, c, path) for c in ("f1_w", "acc_w", "seed", "timestamps", "epoch")})
    for column in ("f1_w", "acc_w"):
        outside = ~runs[column].between(0.0, 1.0)
        if outside.any():
            i = int(np.flatnonzero(outside.to_numpy())[0])
            raise InputError(f"{path}: line {i + 2}: {column} = {runs[column].iloc[i]} is not a fraction in [0, 1]")
    runs["mode"] = frame["mode"].str.strip()
    if (runs["mode"] == "").any():
        raise InputError(f"{path}: line {int(np.flatnonzero(runs['mode'] == '')[0]) + 2}: mode is empty")
    grouped = runs.groupby(list(RUN_KEYS), sort=False)
    best = runs.loc[grouped["f1_w"].idxmax()].reset_index(drop=True)
    out = pd.DataFrame({
        "dataset": path.stem.lower(), "mode": best["mode"], "seed": best["seed"].astype(int),
        "timestamp": best["timestamps"].astype(int), "f1_w": best["f1_w"] * 100, "acc_w": best["acc_w"] * 100,
        "epoch": best["epoch"].astype(int), "rows": grouped.size().to_numpy(),
    })
    return out


def _mode_order(modes: Iterable[str]) -> list[str]:
    """The logs' modes in ``MODES`` order, unknown ones after (sorted)."""
    modes = set(modes)
    return [m for m in MODES if m in modes] + sorted(modes - set(MODES))


def author_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, mode): its Table 1 row (missing for the _AV_LSTM variants), n runs, median and max of the runs'
    test-picked w-F1 (%)."""
    keys = ["dataset", "mode"] if "dataset" in runs.columns else ["mode"]
    table = (runs.groupby(keys, sort=False)["f1_w"].agg(n="size", median="median", max="max").reset_index())
    table.insert(len(keys), "row", [MODE_ROWS.get(mode) for mode in table["mode"]])
    table["_order"] = table["mode"].map({m: i for i, m in enumerate(_mode_order(table["mode"]))})
    table = table.sort_values([*keys[:-1], "_order"], kind="stable").drop(columns="_order")
    return table.reset_index(drop=True)


def paper_gain(scores: Sequence[float], k: int, draws: int = 10000, seed: int = 0) -> np.ndarray:
    """``draws`` "gains from nothing" of one method's N test-picked scores: each draw shuffles them (without
    replacement), A = the first k, B = the other N - k, gain = max(A) - median(B). The shuffles depend on
    (N, draws, seed) only, so gains for several k on one sample share them (common random numbers)."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise InputError("paper_gain: scores must be a flat list of finite numbers")
    n = len(x)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise InputError(f"paper_gain: k = {k!r} must be an integer with 1 <= k < N = {n}")
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise InputError(f"paper_gain: draws = {draws!r} must be a positive integer")
    order = np.argsort(np.random.default_rng(seed).random((draws, n)), axis=1)
    shuffled = x[order]
    return shuffled[:, :k].max(axis=1) - np.median(shuffled[:, k:], axis=1)


def gain_summary(gains: Sequence[float]) -> dict:
    """Mean, median, 2.5 / 97.5 percentiles (``lo``, ``hi``) of gains and the share of draws with gain > 0."""
    g = np.asarray(gains, dtype=float)
    if g.ndim != 1 or g.size == 0 or not np.isfinite(g).all():
        raise InputError("gain_summary: gains must be a non-empty flat list of finite numbers")
    lo, hi = np.percentile(g, [2.5, 97.5])
    return {"draws": int(g.size), "mean": float(g.mean()), "median": float(np.median(g)), "lo": float(lo),
            "hi": float(hi), "share_positive": float((g > 0).mean())}


def gain_table(runs: pd.DataFrame, ks: Sequence[int] = KS, draws: int = 10000, seed: int = 0) -> pd.DataFrame:
    """``gain_summary`` of ``paper_gain`` per (dataset, mode) of ``runs`` (``read_author_runs``' layout) and per k of
    ``ks`` below the mode's run count: columns dataset, mode, n, k and the summary's."""
    records = []
    for _, row in author_summary(runs).iterrows():
        mask = runs["mode"] == row["mode"]
        if "dataset" in runs.columns:
            mask &= runs["dataset"] == row["dataset"]
        scores = runs.loc[mask, "f1_w"].to_numpy()
        for k in (k for k in ks if k < len(scores)):
            records.append({"dataset": row.get("dataset"), "mode": row["mode"], "n": len(scores), "k": k,
                            **gain_summary(paper_gain(scores, k, draws=draws, seed=seed))})
    return pd.DataFrame(records)


def paper_gains(dataset: str) -> dict[str, float]:
    """The paper's reported w-F1 gain of each Table 1 row over MGLRA on ``dataset`` (percentage points)."""
    base = PAPER_WF1[("MGLRA", dataset.lower())]
    return {row: round(PAPER_WF1[(row, dataset.lower())] - base, 2) for row in ROWS.values() if row != "MGLRA"}


def _finite(values: Sequence[float] | None, where: str) -> np.ndarray:
    x = np.asarray([] if values is None else values, dtype=float).ravel()
    if not np.isfinite(x).all():
        raise InputError(f"protocol_figure: {where} holds a value that is not a finite number")
    return x


def _lowest_kept(values: np.ndarray) -> float:
    """The lowest value above the far-outlier fence Q1 - 3 IQR (from 5 values; fewer keep all): crashed runs
    (the authors' logs hold a few near 30 %) would otherwise squash every distribution to a line."""
    if len(values) < 5:
        return float(values.min())
    q1, q3 = np.percentile(values, [25, 75])
    return float(values[values >= q1 - 3 * (q3 - q1)].min())


def protocol_figure(rows: Mapping[str, Mapping], dataset: str, path: str | Path) -> None:
    """A PNG (written atomically) of test weighted F1 per row (method): for each of ``GROUPS`` present in the row's
    dict (a list of % scores, or None), its runs as jittered points over a box (boxes from 5 runs), and the row's
    ``paper`` number (Table 1, or None) as a black tick across the row. Far outliers (below Q1 - 3 IQR of their
    group) are drawn as triangles on the bottom edge and counted in the group's n= label."""
    if not rows:
        raise InputError("protocol_figure: no rows to plot")
    data = [(name, {key: _finite(groups.get(key), f"{name!r} {key}") for key, *_ in GROUPS},
             None if groups.get("paper") is None else float(_finite([groups["paper"]], f"{name!r} paper")[0]))
            for name, groups in rows.items()]
    kept = [_lowest_kept(v) for _, groups, _ in data for v in groups.values() if len(v)]
    kept += [paper for *_, paper in data if paper is not None]
    tops = [v.max() for _, groups, _ in data for v in groups.values() if len(v)] + kept
    if not kept:
        raise InputError("protocol_figure: no scores and no paper number in any row")
    floor, top = min(kept), max(tops)
    span = max(top - floor, 1.0)
    bottom, clip = floor - 0.15 * span, floor - 0.04 * span  # n= labels below ``clip``, outliers drawn at it
    fig, ax = plt.subplots(figsize=(max(5.5, 1.7 * len(rows) + 1.5), 4.8))
    jitter, width, labelled = np.random.default_rng(0), 0.26, set()
    for i, (name, groups, paper) in enumerate(data):
        present = [g for g in GROUPS if len(groups[g[0]])]
        for j, (key, label, colour, marker) in enumerate(present):
            x, values = i + (j - (len(present) - 1) / 2) * width, groups[key]
            inside, below = values[values >= clip], values[values < clip]
            if len(values) >= 5:
                ax.boxplot(inside, positions=[x], widths=width * 0.8, showfliers=False, patch_artist=True,
                           boxprops={"facecolor": colour, "alpha": 0.18, "edgecolor": colour},
                           medianprops={"color": colour, "linewidth": 1.8}, whiskerprops={"color": colour},
                           capprops={"color": colour})
            ax.scatter(x + jitter.uniform(-0.07, 0.07, len(inside)), inside, s=14, color=colour, marker=marker,
                       alpha=0.7, linewidths=0, zorder=3, label=None if key in labelled else label)
            ax.scatter(np.full(len(below), x), np.full(len(below), clip), s=22, color=colour, marker="v", zorder=3)
            labelled.add(key)
            note = f"n={len(values)}" + (f"\n{len(below)}▼" if len(below) else "")
            ax.annotate(note, (x, bottom), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7, color=colour)
        if paper is not None:
            ax.hlines(paper, i - 0.45, i + 0.45, colors="black", linewidth=2.2, zorder=4,
                      label=None if "paper" in labelled else "paper, Table 1")
            labelled.add("paper")
    ax.set_xticks(range(len(rows)), list(rows))
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(bottom, top + 0.04 * span)
    ax.set_ylabel("test weighted F1 (%)")
    ax.set_title(f"{dataset}: test weighted F1 of each run, by epoch-selection protocol (▼: runs below the axis)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    write_png(fig, path)
