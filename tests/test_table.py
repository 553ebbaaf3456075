import io
import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import accuracy_score, f1_score

from erc.reporting import records as erc_records
from erc.reporting import rows as erc_rows
from erc.reporting import runs as erc_runs
from erc.runtime.errors import InputError
from erc.config.params import validate_params
from erc.reporting.bootstrap import acc_f1, confusions, paired_bootstrap
from erc.reporting.experiment_table import build_table, protocol_cells, find_rows
from erc.reporting.records import with_dialogues
from erc.reporting.rows import row_name, same_setup
from erc.reporting.runs import run_inputs


def predictions(pred_by_seed, labels, dialogue=None):
    dialogue = np.arange(len(labels)) // 10 if dialogue is None else dialogue  # dialogues of 10 utterances
    return pd.concat([pd.DataFrame({"seed": s, "utterance": np.arange(len(labels)), "label": labels, "prediction": p,
                                    "dialogue": dialogue.astype(str)}) for s, p in enumerate(pred_by_seed)])


def noisy(rng, labels, accuracy, n_classes):
    """Predictions right with probability ``accuracy`` (per utterance, may be an array), else a wrong class."""
    wrong = (labels + rng.integers(1, n_classes, len(labels))) % n_classes
    return np.where(rng.random(len(labels)) < accuracy, labels, wrong)


def test_resampled_dialogue_confusions_give_sklearns_scores():
    rng = np.random.default_rng(3)
    labels, dialogue = rng.integers(0, 5, 400), np.sort(rng.integers(0, 20, 400))
    labels[dialogue < 5] = np.minimum(labels[dialogue < 5], 3)  # a class absent from some resamples
    preds = np.stack([rng.integers(0, 4, 400), noisy(rng, labels, 0.6, 5)])  # seed 0 never predicts class 4
    counts = confusions(preds, labels, dialogue, 20, 5)
    for _ in range(5):
        drawn = rng.integers(0, 20, 20)  # a dialogue drawn twice counts twice
        index = np.concatenate([np.flatnonzero(dialogue == d) for d in drawn])
        scores = acc_f1(np.bincount(drawn, minlength=20) @ counts, 5)
        for s, p in enumerate(preds):
            y, q = labels[index], p[index]
            assert np.allclose(scores[s], [100 * accuracy_score(y, q), 100 * f1_score(y, q, average="weighted")])


def test_row_names_follow_the_switches():
    assert row_name({"mrl": {"enabled": False, "shared": True}, "mkd": {"enabled": False}}) == "MGLRA"
    assert row_name({"mrl": {"enabled": True, "shared": True}, "mkd": {"enabled": True}}) == "MRL-E + MKD"
    assert row_name({"mrl": {"enabled": True, "shared": False}, "mkd": {"enabled": False}}) == "MRL"


def test_paired_bootstrap_known_answers():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    runs = [noisy(rng, labels, 0.5, 3) for _ in range(2)]
    one = predictions(runs[:1], labels)
    point, low, high = paired_bootstrap(one, one, 3, n_boot=50)
    assert np.array_equal(np.stack([point, low, high]), np.zeros((3, 2)))  # same model, same dialogues drawn
    base = predictions(runs, labels)
    point, low, high = paired_bootstrap(base, base, 3, n_boot=200)
    assert np.array_equal(point, [0, 0]) and (low < 0).all() and (high > 0).all()  # seeds drawn independently
    perfect = predictions([labels, labels], labels)
    point, low, high = paired_bootstrap(perfect, base, 3, n_boot=200)
    accuracy_gap = 100 - 100 * np.mean([(p == labels).mean() for p in runs])
    assert np.isclose(point[0], accuracy_gap) and low[0] < point[0] < high[0] and low[0] > 0


def clustered_seeds(seed, n_dialogues=30, n_classes=4):
    """Two seeds of one configuration: each run finds each dialogue easy or hard at random (accuracy 0.3-0.9)."""
    rng = np.random.default_rng(seed)
    dialogue = np.repeat(np.arange(n_dialogues), rng.integers(20, 41, n_dialogues))
    labels = rng.integers(0, n_classes, len(dialogue))
    return labels, dialogue, [noisy(rng, labels, rng.uniform(0.3, 0.9, n_dialogues)[dialogue], n_classes)
                              for _ in range(2)]


def test_two_seeds_of_one_configuration_do_not_differ():
    labels, dialogue, (a, b) = clustered_seeds(0)
    # the previous interval: utterances resampled independently, as if they were
    index = np.random.default_rng(0).integers(0, len(labels), (1000, len(labels)))
    old = np.percentile(100 * ((a[index] == labels[index]).mean(1) - (b[index] == labels[index]).mean(1)), [2.5, 97.5])
    assert old[0] > 0  # "significant"
    point, low, high = paired_bootstrap(predictions([a], labels, dialogue), predictions([b], labels, dialogue), 4)
    assert np.isclose(point[0], 100 * ((a == labels).mean() - (b == labels).mean()))
    assert (low < 0).all() and (high > 0).all()
    assert high[0] - low[0] > 1.5 * (old[1] - old[0])


def test_seed_disagreement_widens_the_interval():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 600)
    rank = rng.permutation(600) / 600  # which utterances a run gets right, spread evenly over dialogues
    right = [np.where(rank < accuracy, labels, (labels + 1) % 3) for accuracy in (0.5, 0.9, 0.7)]
    base = predictions([noisy(rng, labels, 0.6, 3)], labels)
    (p_far, low_far, high_far), (p_near, low_near, high_near) = (
        paired_bootstrap(predictions(seeds, labels), base, 3) for seeds in (right[:2], right[2:] * 2))
    assert np.isclose(p_far[0], p_near[0])  # same mean accuracy, 70 %
    assert (high_far - low_far > 2 * (high_near - low_near)).all()


def test_rows_differ_only_in_the_switches():
    base = {"mrl": {"enabled": True, "shared": False, "nesting": [8]}, "mkd": {"enabled": True, "lambda_kd": 1.0}}
    assert same_setup({"mrl": {"enabled": False, "shared": True, "nesting": [8]},
                       "mkd": {"enabled": False, "lambda_kd": 1.0}}, base)
    assert not same_setup({"mrl": {"enabled": True, "shared": False, "nesting": [8]},
                           "mkd": {"enabled": True, "lambda_kd": 0.0}}, base)


def test_a_key_missing_on_one_side_takes_its_default():
    reference = {"model": {"speaker": "text", "hidden": {"iemocap": 128}}, "mrl": {"enabled": True}}
    older = {"model": {"hidden": {"iemocap": 128}}, "mrl": {"enabled": False}}  # predates model.speaker
    defaults = {"model.speaker": "text"}
    assert same_setup(older, reference, defaults) and same_setup(reference, older, defaults)
    assert not same_setup(older, reference)  # no default known: missing is not equal
    assert not same_setup(older, {**reference, "model": {"speaker": "all", "hidden": {"iemocap": 128}}}, defaults)
    assert same_setup({"model": {"speaker": "text"}}, {}, {"model.speaker": "text", "model.hidden": {"iemocap": 128}})


def test_dialogues_from_the_feature_file(tmp_path):
    features = tmp_path / "toy.pt"
    torch.save({"dialogue_ids": ["a", "b", "c"], "lengths": torch.tensor([2, 3, 1]),
                "labels": torch.tensor([0, 1, 2, 0, 1, 2])}, features)
    old = pd.DataFrame({"seed": 0, "utterance": [2, 4, 5], "label": [2, 1, 2], "prediction": [0, 1, 2]})
    assert with_dialogues(old, features, "x.csv")["dialogue"].tolist() == ["b", "b", "c"]
    with pytest.raises(InputError, match="x.csv has no 'dialogue' column and .*missing.pt"):
        with_dialogues(old, tmp_path / "missing.pt", "x.csv")
    with pytest.raises(InputError, match="do not match"):  # another feature file than the one predicted on
        with_dialogues(old.assign(label=[0, 1, 2]), features, "x.csv")


def table_rows(text: str) -> dict:
    """method -> its cells in a markdown table (the first table that names it)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(line) <= set("|- ") and cells[0] != "method":
            rows.setdefault(cells[0], cells[1:])
    return rows


def fake_experiments(monkeypatch, tmp_path, rng):
    """An MGLRA and an MKD experiment in git (IEMOCAP only); MGLRA's CSV predates the dialogue column."""
    labels = rng.integers(0, 6, 60)
    torch.save({"dialogue_ids": ["d0", "d1", "d2", "d3"], "lengths": torch.tensor([20, 20, 20, 20]),
                "labels": torch.cat([torch.zeros(20, dtype=torch.long), torch.tensor(labels)])}, tmp_path / "iemocap.pt")
    files = {}
    for rev, mkd, accuracy in (("r1", False, 0.5), ("r2", True, 0.8)):
        preds = predictions([noisy(rng, labels, accuracy, 6) for _ in range(2)], labels, np.repeat([1, 2, 3], 20))
        preds = preds.assign(utterance=preds["utterance"] + 20, dialogue="d" + preds["dialogue"])
        files[rev, "plots/iemocap/test_predictions.csv"] = (preds if mkd else preds.drop(columns="dialogue")).to_csv(index=False)
        # r1 in the layout before the headline split (everything in metrics/<ds>.json), r2 in today's
        detail = "metrics/details/iemocap.json" if mkd else "metrics/iemocap.json"
        files[rev, detail] = json.dumps({"setup": {"mrl": False, "mrl_shared": False, "mkd": mkd},
                                         "test": {"acc": {"mean": 1, "std": 0}, "weighted_f1": {"mean": 1, "std": 0}}})
        if mkd:
            files[rev, "metrics/iemocap.json"] = json.dumps({"test": {"acc": {"mean": 1, "std": 0}}})
    monkeypatch.setattr(erc_runs, "git_file", lambda rev, path: files.get((rev, path)))
    params = {"mrl": {"enabled": False}, "mkd": {"enabled": False}, "train": {"lr": 0.001}}
    return [{"rev": "r1", "name": "mglra", "params": params},
            {"rev": "r2", "name": "mkd", "params": {**params, "mkd": {"enabled": True}}}], params


def test_build_table_compares_against_mglra(monkeypatch, tmp_path):
    experiments, params = fake_experiments(monkeypatch, tmp_path, np.random.default_rng(4))
    text = build_table(experiments, params, n_boot=200, defaults={}, features=str(tmp_path / "{dataset}.pt"))
    assert "paired cluster bootstrap over test dialogues with the seeds resampled too (200 resamples)" in text
    mkd = table_rows(text)["MKD"]
    assert mkd[0] == "mkd" and mkd[5].startswith("+")  # Δ Acc vs MGLRA
    assert mkd[-3:] == ["—", "—", ""]  # made before per-epoch records: no ensemble, no paper-protocol figures
    assert table_rows(text)["MRL"][0] == "not run"


def test_a_table_rebuilds_from_its_committed_records_without_the_experiments(monkeypatch, tmp_path):
    experiments, params = fake_experiments(monkeypatch, tmp_path, np.random.default_rng(4))
    features = str(tmp_path / "{dataset}.pt")
    text = build_table(experiments, params, n_boot=200, defaults={}, features=features)
    erc_records.save_records(find_rows(experiments, params, {}), features, tmp_path / "records")
    assert sorted(p.name for p in (tmp_path / "records").glob("*.json")) == ["mglra.json", "mkd.json"]
    # a clone: no experiment in git, only the records (whose CSVs carry the dialogues, so no feature file either)
    monkeypatch.setattr(erc_runs, "git_file", lambda rev, path: None)
    (tmp_path / "iemocap.pt").unlink()
    records = erc_records.load_records(tmp_path / "records")
    assert build_table(records, params, n_boot=200, defaults={}, features=features) == text
    with pytest.raises(InputError, match="has metrics"):  # the same experiments, read from git: nothing there
        build_table(experiments, params, n_boot=200, defaults={}, features=features)
    # the MGLRA row alone found again: the MKD record, no longer a row, is removed
    erc_records.save_records({k: v for k, v in find_rows(records, params, {}).items() if k[0] == "MGLRA"},
                           features, tmp_path / "records")
    assert [p.name for p in (tmp_path / "records").glob("*.json")] == ["mglra.json"]
    (tmp_path / "records" / "mglra.json").write_text('{"row": "MGLRA", "datasets": {"iemocap": {}}}')
    with pytest.raises(InputError, match=r"records/mglra.json: not a Table 1 record \(KeyError"):
        erc_records.load_records(tmp_path / "records")


def test_outputs_of_other_seeds_than_the_params_say_are_skipped(monkeypatch, tmp_path):
    experiments, params = fake_experiments(monkeypatch, tmp_path, np.random.default_rng(4))
    params = {**params, "train": {"lr": 0.001, "seeds": [0, 1]}}
    experiments = [{**e, "params": {**e["params"], "train": params["train"]}} for e in experiments]
    real = erc_runs.git_file

    def with_stale(rev, path):  # r0: params say seeds 0, 1 but its predictions are seed 0 only (not rerun)
        if rev != "r0":
            return real(rev, path)
        text = real("r1", path)
        if text is None or not path.endswith(".csv"):
            return text
        return pd.read_csv(io.StringIO(text)).query("seed == 0").to_csv(index=False)
    monkeypatch.setattr(erc_runs, "git_file", with_stale)
    stale = {"rev": "r0", "name": "params-ahead-of-outputs", "params": experiments[0]["params"]}
    text = build_table([stale] + experiments, params, n_boot=50, defaults={}, features=str(tmp_path / "{dataset}.pt"))
    assert table_rows(text)["MGLRA"][:2] == ["mglra", "2"] and "params-ahead-of-outputs" not in text


def lock(features_md5: str, lr: float = 0.001, mkd: bool = False) -> str:
    """A dvc.lock with IEMOCAP's train and evaluate stages as DVC writes them."""
    dep = lambda path, md5: {"path": path, "hash": "md5", "md5": md5, "size": 1}  # noqa: E731
    return yaml.safe_dump({"schema": "2.0", "stages": {
        "train@iemocap": {"cmd": "python src/train.py iemocap",
                          "deps": [dep("data/features/iemocap.pt", features_md5), dep("src/erc/models/mglra.py", "c0de")],
                          "params": {"params.yaml": {"mkd.enabled": mkd, "train": {"lr": lr}}},
                          "outs": [dep("models/iemocap.pt", f"weights-{mkd}")]},
        "evaluate@iemocap": {"cmd": "python src/evaluate.py iemocap",
                             "deps": [dep("models/iemocap.pt", f"weights-{mkd}"), dep("src/evaluate.py", "e7a1")],
                             "params": {"params.yaml": {"mkd.text_only": "student"}}}}})


def test_rows_from_other_inputs_are_not_reused(monkeypatch, tmp_path):
    experiments, params = fake_experiments(monkeypatch, tmp_path, np.random.default_rng(4))
    real = erc_runs.git_file
    # "old": same params.yaml as r1, run on features an earlier encoder made; "edited": params.yaml edited after
    # its run (its lock says lr 0.01); "lockless": no dvc.lock at all
    locks = {"r1": lock("new"), "r2": lock("new", mkd=True), "old": lock("old"), "edited": lock("new", lr=0.01)}

    def with_locks(rev, path):
        if path == "dvc.lock":
            return locks.get(rev)
        return real("r1" if rev in ("old", "edited", "lockless") else rev, path)
    monkeypatch.setattr(erc_runs, "git_file", with_locks)
    stale = [{"rev": rev, "name": rev, "params": experiments[0]["params"]} for rev in ("old", "edited", "lockless")]
    inputs = {"iemocap": run_inputs(lock("new"), "iemocap"), "meld": None}
    # the reference run's inputs: train's and evaluate's deps but the model train writes, their params but the switches
    assert inputs["iemocap"] == {"deps": {"data/features/iemocap.pt": "new", "src/erc/models/mglra.py": "c0de",
                                          "src/evaluate.py": "e7a1"},
                                 "params": {"train.lr": 0.001, "mkd.text_only": "student"}}
    rows = find_rows(stale + experiments, params, {}, inputs)
    assert rows[("MGLRA", "iemocap")]["exp"]["name"] == "mglra"  # the stale runs come first but are not used
    assert rows[("MKD", "iemocap")]["exp"]["name"] == "mkd"  # another row: its switch and its own model differ
    assert find_rows(stale + experiments, params, {})[("MGLRA", "iemocap")]["exp"]["name"] == "old"  # unfiltered
    with pytest.raises(InputError, match="no experiment matching the current params.yaml ran on the current "
                                         r"inputs .*python src/table.py --run\)$"):
        build_table(stale, params, defaults={}, inputs=inputs)
    with pytest.raises(InputError, match=r"^x/dvc.lock: not a readable dvc.lock$"):
        run_inputs("stages: [unclosed", "iemocap", "x/dvc.lock")


def test_no_matching_experiment_leaves_the_table_alone(monkeypatch, tmp_path):
    import table as script
    experiments, params = fake_experiments(monkeypatch, tmp_path, np.random.default_rng(4))
    monkeypatch.setattr(script, "experiments_from_dvc", lambda: experiments)
    experiments = [{**e, "params": {**e["params"], "datasets": ["iemocap"]}} for e in experiments]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["table.py"])
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "table1.md").write_text("old table\n")
    monkeypatch.setattr(script, "load_params", lambda: validate_params({**params, "datasets": ["iemocap"],
                                                                        "train": {"lr": 0.01}}))
    with pytest.raises(SystemExit) as exit_:  # no dvc.lock: no run to compare the rows with
        script.main()
    assert exit_.value.code == "error: dvc.lock: not found (run dvc repro first: Table 1's rows are compared with its run)"
    (tmp_path / "dvc.lock").write_text(lock("new", lr=0.01))
    with pytest.raises(SystemExit) as exit_:
        script.main()
    assert exit_.value.code == ("error: no experiment matches the current params.yaml (2 experiments found; "
                                "the nearest, mglra, differs in train.lr 0.001 vs 0.01)")
    # params as the experiments', but they have no dvc.lock saying they ran on the workspace run's inputs
    monkeypatch.setattr(script, "load_params", lambda: validate_params({**params, "datasets": ["iemocap"]}))
    with pytest.raises(SystemExit) as exit_:
        script.main()
    assert "ran on the current inputs" in exit_.value.code
    assert (tmp_path / "metrics" / "table1.md").read_text() == "old table\n"
    with pytest.raises(InputError, match=r"^no experiment matches the current params.yaml \(0 experiments found"):
        build_table([], params, defaults={})


def test_the_slurm_backend_sends_one_task_per_missing_row(monkeypatch, tmp_path):
    """table.py's wiring only (the array itself runs on a real cluster in test_slurm.py)."""
    import table as script
    _, params = fake_experiments(monkeypatch, tmp_path, np.random.default_rng(4))
    monkeypatch.setattr(script, "experiments_from_dvc", lambda: [])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text(lock("new"))
    monkeypatch.setattr(script, "load_params", lambda: validate_params({**params, "datasets": ["iemocap"]}))
    sent = {}

    def run_on_slurm(tasks, work, git_remote, dvc_remote, partition, max_parallel):
        sent.update(tasks=tasks, remotes=(git_remote, dvc_remote), partition=partition, max_parallel=max_parallel)
        raise InputError("SLURM: stop here")
    monkeypatch.setattr(script, "run_on_slurm", run_on_slurm)
    monkeypatch.setattr("sys.argv", ["table.py", "--run", "--backend", "slurm", "--partition", "cpu",
                                     "--max-parallel", "3"])
    with pytest.raises(SystemExit) as exit_:
        script.main()
    assert exit_.value.code == "error: SLURM: stop here"
    rows = [*erc_rows.ROWS.values(), *erc_rows.EXTRA_ROWS]
    assert len(sent["tasks"]) == len(rows) and len(set(sent["tasks"])) == len(rows)
    for (name, overrides), row in zip(sent["tasks"].items(), rows):
        assert name.startswith(erc_rows.row_slug(row) + "-") and overrides == erc_rows.row_overrides(row)
    assert sent["remotes"] == ("origin", "cluster") and sent["partition"] == "cpu" and sent["max_parallel"] == 3


def test_dvc_exp_show_failure_is_one_line(monkeypatch):
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr="ERROR: unexpected error\nERROR: not a git repo\n")
    monkeypatch.setattr(erc_runs.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(InputError, match=r"^dvc exp show failed: ERROR: not a git repo$"):
        erc_runs.experiments_from_dvc()


def fake_dvc(statuses, calls):
    """A stand-in for subprocess.run: records each dvc command; `exp show --json` answers the next of ``statuses``."""
    def run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=next(statuses) if cmd[1:3] == ["exp", "show"] else "",
                                           stderr="")
    return run


def shown(**states):
    """``dvc exp show --json`` as DVC writes it (its own dataclasses' ``dumpd``): the workspace, then the baseline
    commit with one experiment per name (``table_mrl="queued"`` names table-mrl; None: a finished experiment whose
    executor is gone)."""
    from dvc.repo.experiments.serialize import ExpExecutor, ExpRange, ExpState
    experiments = [ExpRange(revs=[ExpState(rev=f"{i + 1:040x}", name=name.replace("_", "-"))], name=name.replace("_", "-"),
                            executor=ExpExecutor(state, name="dvc-task") if state else None)
                   for i, (name, state) in enumerate(states.items())]
    return json.dumps([ExpState(rev="workspace").dumpd(), ExpState(rev="a" * 40, experiments=experiments).dumpd()])


def test_missing_rows_are_queued_with_their_switches_and_the_queue_is_waited_for():
    from erc.reporting.queue import run_missing_rows
    from erc.reporting.rows import missing_rows, row_overrides
    rows = {(name, d): {} for name in ("MGLRA", "MRL + MKD") for d in ("iemocap", "meld")}
    rows[("MKD", "iemocap")] = {}  # run for one dataset only: still missing
    todo = missing_rows(rows)
    assert todo == ["MRL", "MRL-E", "MKD", "MRL-E + MKD", "MGLRA, frozen MiniLM"]
    assert row_overrides("MGLRA, frozen MiniLM") == ["features.text=minilm", "mrl.enabled=false", "mrl.shared=false",
                                                     "mkd.enabled=false"]
    todo = todo[:4]
    calls = []
    statuses = iter([shown(table_mrl="running", table_mrl_e="queued", table_mkd="queued", table_mrl_e_mkd="queued",
                           table_mrl_11290934="failed"),  # an earlier run's experiment: not ours
                     shown(table_mrl=None, table_mrl_e="success", table_mkd="running", table_mrl_e_mkd="running"),
                     shown(table_mrl=None, table_mrl_e="success", table_mkd="success", table_mrl_e_mkd=None)])
    fake_run = fake_dvc(statuses, calls)
    run_missing_rows(todo, 2, run=fake_run, sleep=lambda s: None)
    queued = [c for c in calls if c[1:4] == ["exp", "run", "--queue"]]
    assert [c[5] for c in queued] == ["table-mrl", "table-mrl-e", "table-mkd", "table-mrl-e-mkd"]
    assert queued[1][6:] == ["-S", "mrl.enabled=true", "-S", "mrl.shared=true", "-S", "mkd.enabled=false"]
    assert ["dvc", "queue", "start", "-j", "2"] in calls
    assert sum(c[1:3] == ["exp", "show"] for c in calls) == 3  # polled until none of its tasks waits or runs
    # nothing missing: nothing queued, no queue started
    calls.clear()
    run_missing_rows([], 2, run=fake_run)
    assert calls == []


def test_queue_workers_that_stop_early_are_started_again():
    from erc.reporting.queue import queue_state, run_missing_rows
    stalled = shown(table_mrl_e_1="success", table_mkd_1="queued", table_mrl_0="failed")
    assert queue_state(json.loads(stalled), {"table-mrl-e-1", "table-mkd-1"}) == {"table-mrl-e-1": "success",
                                                                                  "table-mkd-1": "queued"}
    statuses = iter([shown(table_mrl_e_1="running", table_mkd_1="queued"), stalled,
                     shown(table_mrl_e_1="success", table_mkd_1="running"),
                     shown(table_mrl_e_1="success", table_mkd_1="success")])
    calls = []
    run_missing_rows(["MRL-E", "MKD"], 2, run=fake_dvc(statuses, calls), sleep=lambda s: None, stamp="1")
    # one of ours queued with nothing running: the workers stopped, started again once; the stale failure is not ours
    assert sum(c[1:3] == ["queue", "start"] for c in calls) == 2


def test_a_poll_that_fails_while_a_worker_sets_up_is_asked_again():
    """Seen in a real Table 1 run: dvc exp show fails while a worker creates an experiment's folder."""
    from erc.reporting.queue import SHOW_RETRIES, run_missing_rows
    setting_up = "ERROR: failed to show experiments - directory '.dvc/tmp/exps/tmpnrkd2bco/.dvc' does not exist"
    answers = iter([setting_up, shown(table_mrl="running"), setting_up, shown(table_mrl="success")])

    def run(cmd, **kwargs):
        answer = next(answers) if cmd[1:3] == ["exp", "show"] else ""
        failed = answer.startswith("ERROR")
        return subprocess.CompletedProcess(cmd, int(failed), stdout="" if failed else answer,
                                           stderr=answer if failed else "")
    run_missing_rows(["MRL"], 1, run=run, sleep=lambda s: None)  # two failed polls, then done
    answers = iter([setting_up] * SHOW_RETRIES)
    with pytest.raises(InputError, match="dvc exp show --json failed: ERROR: failed to show experiments"):
        run_missing_rows(["MRL"], 1, run=run, sleep=lambda s: None)


def test_a_failed_queue_task_is_one_line():
    from erc.reporting.queue import run_missing_rows
    statuses = iter([shown(table_mrl="failed")])
    with pytest.raises(InputError, match="experiment table-mrl failed"):
        run_missing_rows(["MRL"], 1, run=fake_dvc(statuses, []), sleep=lambda s: None)
    statuses = iter([shown(table_mkd="success")])  # ours not listed at all: an error, not a silent success
    with pytest.raises(InputError, match="experiment table-mrl is neither queued, running nor done"):
        run_missing_rows(["MRL"], 1, run=fake_dvc(statuses, []), sleep=lambda s: None)


def test_rows_run_through_a_real_dvc_queue(tmp_path, monkeypatch):
    """The queue path against DVC itself: a throwaway repository whose one stage reads the three switches and fails
    when MKD is on. MRL's experiment is queued with its switches, runs and is waited for; MKD's failure is one line."""
    import time
    from erc.reporting.queue import queue_state, run_missing_rows, shown_experiments
    monkeypatch.chdir(tmp_path)
    check = ("import yaml; p = yaml.safe_load(open('params.yaml')); assert not p['mkd']['enabled']; "
             "open('out.txt', 'w').write(str(p['mrl']))")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {"s": {"cmd": f'python -c "{check}"', "params": ["mrl", "mkd"],
                                 "outs": [{"out.txt": {"cache": False}}]}}}))  # in git: the experiment's commit holds it
    (tmp_path / "params.yaml").write_text("mrl: {enabled: false, shared: false}\nmkd: {enabled: false}\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "t"]):
        subprocess.run(cmd, check=True, capture_output=True)
    try:
        run_missing_rows(["MRL"], 1, sleep=lambda s: time.sleep(1), stamp="t")
        assert queue_state(shown_experiments(), {"table-mrl-t"}) == {"table-mrl-t": "success"}
        ref, = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True,
                              text=True).stdout.split()
        out = subprocess.run(["git", "show", f"{ref}:out.txt"], capture_output=True, text=True)
        assert out.stdout == "{'enabled': True, 'shared': False}"  # the row's switches reached the stage
        with pytest.raises(InputError, match=r"^dvc queue: experiment table-mkd-t failed"):
            run_missing_rows(["MKD"], 1, sleep=lambda s: time.sleep(1), stamp="t")
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], capture_output=True)


def test_a_queue_that_cannot_start_is_one_line():
    from erc.reporting.queue import start_queue

    def fake_run(cmd, stdout=None, **kwargs):
        stdout.write("Starting workers\nERROR: no worker could start\n")  # written where a worker would write
        return subprocess.CompletedProcess(cmd, 1)
    with pytest.raises(InputError, match=r"^dvc queue start failed: ERROR: no worker could start$"):
        start_queue(2, run=fake_run)


def test_protocol_cells_known_answer():
    def metrics(ensemble, median, best):
        return {"ensemble": {"test": {"weighted_f1": ensemble}},
                "protocols": {"test_picked": {"weighted_f1": {"median": median, "best": best}}}}
    base, row = metrics(60.0, 61.0, 62.5), metrics(61.5, 61.25, 63.0)
    assert protocol_cells(row, base) == ["61.50 (+1.50)", "61.25 / 63.00", "+0.25 / +2.00"]
    assert protocol_cells(base, base) == ["60.00", "61.00 / 62.50", ""]  # MGLRA against itself: no Δ
