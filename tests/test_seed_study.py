"""The seed study (src/seed_study.py, erc.reporting.seed_report): rows and seeds parsed, records scored with known answers,
and the page rebuilt from the committed JSON alone."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT, random_feats

import seed_study
from erc.reporting import seed_report
from erc.data.feature_file import save_features, utterance_split
from erc.runtime.errors import InputError
from erc.runtime.files import save_torch


def test_seeds_and_rows():
    assert seed_study.parse_seeds("0-3") == [0, 1, 2, 3] and seed_study.parse_seeds("5,2") == [5, 2]
    with pytest.raises(InputError, match="--seeds x"):
        seed_study.parse_seeds("x")
    with pytest.raises(InputError, match=r"row 'MRL\+E': not one of"):
        seed_study.row_params("MRL+E", [0])


def test_row_params_set_the_switches_and_nothing_else(monkeypatch):
    monkeypatch.chdir(ROOT)
    params = seed_study.row_params("MRL-E + MKD", [3, 4])
    assert (params.mrl.enabled, params.mrl.shared, params.mkd.enabled) == (True, True, True)
    assert params.train.seeds == [3, 4] and params.workers == 1
    base = seed_study.row_params("MGLRA", [3, 4])
    assert (base.mrl.enabled, base.mkd.enabled) == (False, False)
    assert base.model == params.model and base.train == params.train  # same recipe but the switches


def _study(tmp_path, monkeypatch):
    """Two toy datasets' feature files and MGLRA seed records with planted per-epoch predictions."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(seed_report, "AUTHORS", tmp_path / "no_logs")
    lengths, splits = [4, 3, 5, 4], ["train", "valid", "test", "test"]
    for dataset in ("iemocap", "meld"):
        feats = random_feats(lengths, splits)
        save_features(feats, tmp_path / f"data/features/{dataset}.pt")
        test = torch.nonzero(utterance_split(feats) == 2).squeeze(1)
        right = torch.nn.functional.one_hot(feats.labels[test], 3).float()
        wrong = torch.roll(right, 1, dims=1)
        for seed, (epochs, kept) in enumerate([((wrong, right, wrong), 3), ((right, wrong, wrong), 2),
                                               ((wrong, wrong, right), 3)]):
            history = [{"epoch": e + 1, "valid_weighted_f1": 50.0 + e} for e in range(3)]
            save_torch({"epoch": kept, "history": history, "utterances": test, "recorded": torch.stack(epochs).half()},
                       tmp_path / f"runs/seed_study/{dataset}/table-mglra/seed{seed}.pt")


def test_report_scores_both_protocols_and_rebuilds_from_json(tmp_path, monkeypatch):
    _study(tmp_path, monkeypatch)
    seed_report.report()
    study = json.loads((tmp_path / "metrics/seed_study/iemocap.json").read_text())
    seeds = study["rows"]["MGLRA"]
    assert [s["test_picked_epoch"] for s in seeds.values()] == [2, 1, 3]
    assert [s["test_at_test_picked"]["acc"] for s in seeds.values()] == [100.0, 100.0, 100.0]
    assert [s["test_at_valid_picked"]["acc"] for s in seeds.values()] == [0.0, 0.0, 100.0]
    assert seeds["1"]["valid_weighted_f1"] == 51.0
    page = (tmp_path / "docs/seed_study.md").read_text()
    assert "| MGLRA | 3 " in page and "+66.67" in page  # the gap: 100 - 33.33 on average
    assert (tmp_path / "plots/protocol/meld.png").read_bytes()[:4] == b"\x89PNG"
    for record in (tmp_path / "runs").rglob("*.pt"):  # a clone has the JSON, not the records
        record.unlink()
    seed_report.report()
    assert (tmp_path / "docs/seed_study.md").read_text() == page


def test_paper_style_delta_known_answers():
    base = [60.0, 61.0, 65.0]  # median 61
    assert seed_report.paper_style_delta([62.0, 63.0, 64.0], base, k=3)["mean"] == 3.0  # best of all three
    one = seed_report.paper_style_delta([62.0, 64.0], base, k=1, draws=4000)
    assert one["lo"] == 1.0 and one["hi"] == 3.0 and abs(one["mean"] - 2.0) < 0.1  # each run half of the time


def test_the_page_rebuilds_from_the_committed_author_runs(tmp_path, monkeypatch):
    logs = ROOT.parent / "shared" / "data" / "authors_logs"
    if not logs.is_dir():
        pytest.skip("the authors' logs are not beside this checkout")
    _study(tmp_path, monkeypatch)
    monkeypatch.setattr(seed_report, "AUTHORS", logs)
    seed_report.report()
    page = (tmp_path / "docs/seed_study.md").read_text()
    assert "MGLRA (authors' ORIGINAL, 65 runs, test-picked)" in page
    monkeypatch.setattr(seed_report, "AUTHORS", tmp_path / "no_logs")  # a clone without them: the committed CSV
    seed_report.report()
    assert (tmp_path / "docs/seed_study.md").read_text() == page
