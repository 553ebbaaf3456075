"""``workers`` changes the wall time, never a number: seeds trained in worker processes give the same bits as one
after another in this process (each unit of work runs on one thread either way)."""
import math
import os

import pytest
import torch

from conftest import random_feats
from erc.runtime.live import staged_curves
from erc.config.params import validate_params
from erc.runtime.parallel import run_parallel
from erc.training.train import train_model
from erc.training.references import train_references


def toy_params(workers):
    return validate_params({"workers": workers, "mkd": {"enabled": False},
                            "model": {"hidden": {"iemocap": 16, "meld": 16}, "graph_hidden": 8, "graph_layers": 2},
                            "mrl": {"nesting": [4, 8]}, "references": {"logreg_C": [1.0]},
                            "train": {"epochs": {"iemocap": 3, "meld": 3}, "seeds": [0, 1, 2]}})


def test_seeds_in_two_workers_equal_seeds_in_this_process(toy, tmp_path, monkeypatch):
    feats, graphs = toy
    one = train_model("iemocap", feats, graphs, toy_params(1), progress=False)
    monkeypatch.chdir(tmp_path)
    with staged_curves("plots/train/iemocap") as live_factory:  # as the train stage runs it: curves by the workers
        two = train_model("iemocap", feats, graphs, toy_params(2), live_factory=live_factory, progress=False)
    assert sorted(two.runs) == [0, 1, 2]
    for seed in two.runs:  # each seed's curve, whole: a header and one row an epoch
        curve = tmp_path / "plots" / "train" / "iemocap" / f"seed{seed}" / "plots" / "metrics" / "train_loss.tsv"
        assert len(curve.read_text().splitlines()) == 1 + 3, seed
    for seed, run in one.runs.items():
        other = two.runs[seed]
        assert run["epoch"] == other["epoch"] and run["history"] == other["history"], seed
        assert all(torch.equal(run["state"][k], other["state"][k]) for k in run["state"]), seed
    # different seeds did train differently (the comparison above is not of identical runs)
    assert not torch.equal(one.runs[0]["state"][next(iter(one.runs[0]["state"]))],
                           one.runs[1]["state"][next(iter(one.runs[1]["state"]))])
    refs_one = train_references("iemocap", feats, graphs, toy_params(1), progress=False)["bc_lstm"]
    refs_two = train_references("iemocap", feats, graphs, toy_params(2), progress=False)["bc_lstm"]
    assert all(torch.equal(refs_one[s]["logits"], refs_two[s]["logits"]) for s in refs_one)


def test_a_failing_unit_raises_its_own_error_in_the_caller():
    # a function of the standard library: a spawned worker imports nothing of ours to run it
    with pytest.raises(ValueError, match="math domain error"):
        run_parallel(math.sqrt, {k: k - 2 for k in range(3)}, workers=2)  # units 0 and 1 take a negative root
    assert run_parallel(math.sqrt, {0: 4, 1: 9}, workers=2) == {0: 2.0, 1: 3.0}


def test_the_logistic_regression_reference_fits_on_one_thread_whatever_the_machine_has(monkeypatch):
    # unpinned, its logits on IEMOCAP moved in the fifth decimal between 1 and 2 BLAS threads (md5 78b641db... vs
    # 4cea5795...: the reference file's bytes depended on the machine); small random problems do not show it, so
    # this checks the thread count every fit and prediction sees
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info, threadpool_limits
    from erc.training.references import logistic_regression
    seen = []
    fit, decide = LogisticRegression.fit, LogisticRegression.decision_function

    def counting(method):
        def wrapped(self, *args, **kwargs):
            seen.append(max(pool["num_threads"] for pool in threadpool_info()))
            return method(self, *args, **kwargs)
        return wrapped
    monkeypatch.setattr(LogisticRegression, "fit", counting(fit))
    monkeypatch.setattr(LogisticRegression, "decision_function", counting(decide))
    feats = random_feats([5] * 10, ["train"] * 8 + ["valid"] * 2)
    with threadpool_limits(limits=2):
        logistic_regression(feats, [0.1, 1.0])
        assert max(pool["num_threads"] for pool in threadpool_info()) == min(2, os.cpu_count())  # restored after
    assert seen and set(seen) == {1}
