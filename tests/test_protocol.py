"""The paper's protocol: the authors' logs read per run (known answers: a hand-written slice and their README's
aggregate), the "gain from nothing" resampling (enumerated answers, invariants) and the comparison figure."""
from __future__ import annotations

import re
import struct
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from erc.reporting.rows import ROWS
from erc.runtime.errors import InputError
from erc.reporting.protocol import (MODE_ROWS, PAPER_WF1, author_summary, gain_summary, gain_table, paper_gain,
                                    paper_gains, protocol_figure, read_author_runs)

ROOT = Path(__file__).resolve().parents[1]
LOGS = next((d for d in (ROOT.parent / "shared" / "data" / "authors_logs", ROOT / "data" / "authors_logs")
             if (d / "README.md").is_file()), None)
needs_logs = pytest.mark.skipif(LOGS is None, reason="the authors' logs (../shared/data/authors_logs) are absent")

HEADER = ("f1_w,acc_w,seed,timestamps," + ",".join(f"acc_{i}" for i in range(6)) + ","
          + ",".join(f"f1_{i}" for i in range(6)) + ",mode,path,epoch")


def log_line(f1, acc, seed, stamp, mode, epoch):
    """A row in the authors' IEMOCAP layout (per-class columns are filler)."""
    return f"{f1},{acc},{seed},{stamp}," + ",".join(["0.5"] * 12) + f",{mode},/x/model_{epoch}.pth,{epoch}"


# three runs, rows interleaved as in their files; ORIGINAL seed 7 has a row where only accuracy improved (0.58 < 0.60)
SLICE = [(0.50, 0.52, 7, 202505081624, "ORIGINAL", 0), (0.40, 0.45, 7, 202505081624, "MKD", 0),
         (0.60, 0.61, 7, 202505081624, "ORIGINAL", 1), (0.55, 0.56, 9, 202505081700, "ORIGINAL", 0),
         (0.58, 0.63, 7, 202505081624, "ORIGINAL", 3), (0.62, 0.60, 7, 202505081624, "MKD", 4),
         (0.65, 0.64, 7, 202505081624, "ORIGINAL", 6), (0.70, 0.69, 9, 202505081700, "ORIGINAL", 2)]


def write_log(tmp_path, lines, name="IEMOCAP.csv", header=HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_slice_known_answer(tmp_path):
    runs = read_author_runs(write_log(tmp_path, [log_line(*row) for row in SLICE]))
    assert len(runs) == 3 and set(runs["dataset"]) == {"iemocap"}
    best = {(r.mode, r.seed): (round(r.f1_w, 6), round(r.acc_w, 6), r.epoch, r.rows) for r in runs.itertuples()}
    assert best == {("ORIGINAL", 7): (65.0, 64.0, 6, 4), ("MKD", 7): (62.0, 60.0, 4, 2),
                    ("ORIGINAL", 9): (70.0, 69.0, 2, 2)}
    table = author_summary(runs).set_index("mode")
    assert list(table.index) == ["ORIGINAL", "MKD"]  # the logs' order of modes
    assert table.loc["ORIGINAL", "n"] == 2 and table.loc["ORIGINAL", "median"] == pytest.approx(67.5)
    assert table.loc["ORIGINAL", "max"] == pytest.approx(70.0) and table.loc["ORIGINAL", "row"] == "MGLRA"
    assert table.loc["MKD", "n"] == 1 and table.loc["MKD", "median"] == pytest.approx(62.0)


def test_another_timestamp_is_another_run(tmp_path):
    lines = [log_line(0.5, 0.5, 1, 100, "MRL", 0), log_line(0.6, 0.6, 1, 101, "MRL", 0)]
    assert sorted(read_author_runs(write_log(tmp_path, lines))["f1_w"].round(6)) == [50.0, 60.0]


def readme_aggregate():
    """{(dataset, mode): (runs, median, max)} as printed in the authors' logs README."""
    out = {}
    for m in re.finditer(r"^\| (\w+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$",
                         (LOGS / "README.md").read_text(), re.M):
        out[("iemocap", m[1])] = (int(m[2]), float(m[3]), float(m[4]))
        out[("meld", m[1])] = (int(m[5]), float(m[6]), float(m[7]))
    return out


@needs_logs
def test_authors_logs_match_their_readme():
    expected = readme_aggregate()
    assert len(expected) == 12  # six modes, two datasets
    got = {}
    for name in ("IEMOCAP", "MELD"):
        for r in author_summary(read_author_runs(LOGS / f"{name}.csv")).itertuples():
            got[(r.dataset, r.mode)] = (r.n, round(r.median, 2), round(r.max, 2))
    assert got == expected


@needs_logs
def test_paper_numbers_match_the_readme():
    text = " ".join((LOGS / "README.md").read_text().split())
    sentence = text[text.index("The paper's Table 1 (w-F1)"):]
    printed = {m[1]: (float(m[2]), float(m[3]))
               for m in re.finditer(r"(MRL-E \+ MKD|MRL \+ MKD|MGLRA|MRL-E|MRL|MKD) ([\d.]+) / ([\d.]+)", sentence)}
    assert len(printed) == 6
    assert {(row, ds): printed[row][i] for row in printed for i, ds in enumerate(("iemocap", "meld"))} == PAPER_WF1
    assert paper_gains("IEMOCAP")["MRL-E + MKD"] == pytest.approx(71.60 - 68.26)
    assert paper_gains("meld")["MKD"] == pytest.approx(66.07 - 65.33)


def test_mode_mapping_names_table_rows():
    assert set(MODE_ROWS.values()) <= set(ROWS.values())
    assert not any(mode.endswith("_AV_LSTM") for mode in MODE_ROWS)


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"), ("empty", "not a readable CSV"), ("no_f1", "no column 'f1_w'"),
    ("text_f1", "line 3: f1_w is not a number ('abc')"), ("percent", "line 2: f1_w = 65.0 is not a fraction"),
    ("no_rows", "no rows"), ("no_mode", "line 2: mode is empty"),
])
def test_bad_logs_are_one_line_errors(tmp_path, case, message):
    good = log_line(0.5, 0.5, 1, 100, "MRL", 0)
    make = {  # each case writes its own file
        "missing": lambda: tmp_path / "IEMOCAP.csv",
        "empty": lambda: write_log(tmp_path, [], header=""),
        "no_f1": lambda: write_log(tmp_path, [good], header=HEADER.replace("f1_w", "f1w")),
        "text_f1": lambda: write_log(tmp_path, [good, good.replace("0.5,0.5", "abc,0.5", 1)]),
        "percent": lambda: write_log(tmp_path, [log_line(65.0, 0.5, 1, 100, "MRL", 0)]),
        "no_rows": lambda: write_log(tmp_path, []),
        "no_mode": lambda: write_log(tmp_path, [log_line(0.5, 0.5, 1, 100, "", 0)]),
    }
    path = make[case]()
    with pytest.raises(InputError) as err:
        read_author_runs(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value) and "\n" not in str(err.value)


def enumerated(scores, k):
    """Every split of ``scores`` into k and N - k, equally likely: {gain: probability}."""
    splits = list(combinations(range(len(scores)), k))
    out: dict[float, float] = {}
    for a in splits:
        b = [scores[i] for i in range(len(scores)) if i not in a]
        gain = max(scores[i] for i in a) - float(np.median(b))
        out[gain] = out.get(gain, 0) + 1 / len(splits)
    return out


@pytest.mark.parametrize("scores, k, by_hand", [
    ([1.0, 2.0, 4.0], 1, {-2.0: 1 / 3, -0.5: 1 / 3, 2.5: 1 / 3}),  # 1 - 3, 2 - 2.5, 4 - 1.5
    ([1.0, 2.0, 4.0], 2, {-2.0: 1 / 3, 2.0: 1 / 3, 3.0: 1 / 3}),  # 2 - 4, 4 - 2, 4 - 1
    ([1.0, 2.0, 3.0, 10.0], 1, {-2.0: 1 / 4, -1.0: 1 / 4, 1.0: 1 / 4, 8.0: 1 / 4}),  # a median, not a mean, of B
])
def test_gain_known_answer_on_small_samples(scores, k, by_hand):
    assert enumerated(scores, k) == pytest.approx(by_hand)
    gains = paper_gain(scores, k, draws=30000, seed=3)
    values, counts = np.unique(gains, return_counts=True)
    assert values.tolist() == sorted(by_hand)
    assert counts / len(gains) == pytest.approx([1 / len(by_hand)] * len(by_hand), abs=0.015)
    assert gains.mean() == pytest.approx(sum(g * p for g, p in by_hand.items()), abs=0.1)


def test_gain_of_identical_scores_is_zero():
    for k in (1, 3, 5):
        assert np.array_equal(paper_gain([67.0] * 6, k, draws=50), np.zeros(50))


def test_gain_grows_with_k_and_is_deterministic():
    sample = np.random.default_rng(11).normal(68, 1, 60)
    means = [paper_gain(sample, k, draws=4000, seed=1).mean() for k in (1, 5, 10, 20, 50)]
    assert all(a < b for a, b in zip(means, means[1:]))
    assert abs(means[0]) < 0.1  # k = 1: one random run against the median of the rest
    assert np.array_equal(paper_gain(sample, 5, draws=100, seed=2), paper_gain(sample, 5, draws=100, seed=2))
    assert not np.array_equal(paper_gain(sample, 5, draws=100, seed=2), paper_gain(sample, 5, draws=100, seed=3))


@pytest.mark.parametrize("scores, k", [([1, 2, 3], 0), ([1, 2, 3], 3), ([1, 2, 3], 1.5), ([5], 1),
                                       ([1, float("nan"), 3], 1), ([[1, 2], [3, 4]], 1)])
def test_gain_refuses_bad_input(scores, k):
    with pytest.raises(InputError):
        paper_gain(scores, k)


def test_gain_summary_known_answer():
    summary = gain_summary(np.arange(-10, 91, dtype=float))  # -10 .. 90: 101 values
    assert summary == pytest.approx({"draws": 101, "mean": 40.0, "median": 40.0, "lo": -7.5, "hi": 87.5,
                                     "share_positive": 90 / 101})
    with pytest.raises(InputError):
        gain_summary([])


def test_gain_table_rows_only_below_n(tmp_path):
    runs = read_author_runs(write_log(tmp_path, [log_line(*row) for row in SLICE]))
    table = gain_table(runs, ks=(1, 2, 5), draws=3000)
    assert list(zip(table["mode"], table["k"])) == [("ORIGINAL", 1)]  # MKD: one run, no split possible
    assert table.loc[0, "mean"] == pytest.approx(0.0, abs=0.4)  # 65 - 70 and 70 - 65, equally likely
    assert table.loc[0, "lo"] == pytest.approx(-5.0) and table.loc[0, "hi"] == pytest.approx(5.0)


def png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24]), len(data)


def test_figure_with_missing_groups(tmp_path):
    rng = np.random.default_rng(0)
    rows = {"MGLRA": {"authors_test": list(68 + rng.normal(0, 1, 40)) + [30.0], "ours_test": list(65 + rng.random(5)),
                      "ours_valid": list(64 + rng.random(5)), "paper": 68.26},
            "MRL + MKD": {"authors_test": None, "ours_test": [], "ours_valid": [66.0, 66.5], "paper": 71.31},
            "paper only": {"paper": 70.0},
            "bc-LSTM": {"ours_test": [60.0], "ours_valid": [59.0], "paper": None}}
    path = tmp_path / "plots" / "protocol.png"
    protocol_figure(rows, "IEMOCAP", path)
    (width, height), size = png_size(path)
    assert width > 500 and height > 300 and size > 15000
    assert [p.name for p in path.parent.iterdir()] == ["protocol.png"]  # no temporary file left


def test_figure_refuses_bad_rows(tmp_path):
    for rows in ({}, {"MGLRA": {"ours_test": [65.0, float("inf")]}}, {"MGLRA": {"ours_test": None}}):
        with pytest.raises(InputError):
            protocol_figure(rows, "MELD", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
