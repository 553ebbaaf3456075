"""End to end: the DVC workflow as a user drives it, on the shared throwaway project (tests/conftest.py
``pipeline``: a few real IEMOCAP and MELD dialogues and two corpora made here, one ``dvc repro``).

Every stage runs once for every dataset and a second repro has nothing to do; a param change reruns only the stages
that read it (``dvc repro --dry``); the MGLRA baseline made as the README says (one real ``dvc exp run``), turned into
a branch; dvc metrics diff against it; dvc plots show.
"""
import pytest
import yaml

from conftest import run, stages_run

pytestmark = pytest.mark.xdist_group("pipeline")  # one worker builds the shared project (pytest -n)

DATASETS = ("iemocap", "meld", "mine", "talk")
PER_DATASET = ("extract_features", "build_graphs", "train_teachers", "train_references", "train", "evaluate")


def test_repro_runs_every_stage_of_every_dataset_once_and_then_nothing(pipeline):
    assert pipeline.stages == sorted(["finetune_text"] + [f"{s}@{d}" for s in PER_DATASET for d in DATASETS])
    assert "Data and pipelines are up to date" in run("dvc repro", pipeline.repo)


def would_rerun(repo, **changes):
    """The stages ``dvc repro --dry`` would run with ``changes`` ({"mrl.shared": True}) made to params.yaml, the
    file put back afterwards. (``dvc exp run --dry`` runs in a temporary copy that holds no outputs: with DVC 3.67
    it fails on the first stage downstream of another, so the workspace's ``repro --dry`` asks instead.)"""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        *sections, name = key.split(".")
        place = params
        for section in sections:
            place = place[section]
        place[name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        return stages_run(run("dvc repro --dry", repo))
    finally:
        run("git checkout -q -- params.yaml", repo)
        assert run("git status --porcelain --untracked-files=no", repo).strip() == ""  # a dry run writes nothing


def test_a_param_change_reruns_only_the_stages_that_read_it(pipeline):
    train = [f"train@{d}" for d in DATASETS]
    assert would_rerun(pipeline.repo, **{"mrl.shared": True}) == sorted(train)  # MRL-E: train only (evaluate
    # follows from the new models, as the baseline below shows)
    assert would_rerun(pipeline.repo, **{"mkd.lambda_kd": 0.5}) == sorted(train)  # teachers reused, not retrained
    assert would_rerun(pipeline.repo, **{"mkd.text_only": "fused"}) == sorted(f"evaluate@{d}" for d in DATASETS)
    assert would_rerun(pipeline.repo, **{"teachers.seed": 1}) == sorted(f"train_teachers@{d}" for d in DATASETS)
    # a project of the corpus alone: only the one stage that reads several datasets at once is out of date, so the
    # corpus's stages here are those of a run of it alone (and its encoders the same bits: tests/test_finetune.py)
    assert would_rerun(pipeline.repo, datasets=["mine"]) == ["finetune_text"]


def test_the_mglra_baseline_as_an_experiment_then_metrics_diff_and_plots(pipeline):
    repo = pipeline.repo
    try:
        # the MGLRA baseline as the README documents it: an experiment turned into a branch
        baseline = run("dvc exp run -n mglra -S mrl.enabled=false -S mkd.enabled=false", repo)
        assert stages_run(baseline) == sorted(f"{s}@{d}" for s in ("train", "evaluate") for d in DATASETS)
        run("dvc exp branch mglra mglra-baseline", repo)
    finally:  # the committed tiny run back in the workspace, for the other tests of the project
        run("git checkout -q -- . && dvc checkout -q", repo)
    assert "Data and pipelines are up to date" in run("dvc status", repo)
    diff = run("dvc metrics diff mglra-baseline --all", repo)
    for dataset in DATASETS:
        assert f"metrics/{dataset}.json" in diff
        # the headline only (12 figures a dataset): sizes and seeds stay in metrics/details
        assert sum(f"metrics/{dataset}.json" in line for line in diff.splitlines()) <= 12
    for key in ("test.acc.mean", "test.weighted_f1.mean", "text_only.test.weighted_f1.mean"):
        assert key in diff
    for key in ("ensemble.test.weighted_f1", "paper_protocol_test_picked.test.weighted_f1.mean"):
        assert key in diff
    assert "nesting" not in diff
    detail = run("dvc metrics diff mglra-baseline --all --targets metrics/details/iemocap.json", repo)
    assert "nesting.8.test.weighted_f1.mean" in detail or "nesting.2.test.weighted_f1.mean" in detail

    run("dvc plots show", repo)
    page = (repo / "dvc_plots" / "index.html").read_text()
    for dataset in ("iemocap", "meld"):
        for name in ("curves.png", "confusion.png", "nesting.png", "modalities.png"):
            assert f"plots_{dataset}_{name}".replace(".", "_") in page.replace(".", "_") or f"{dataset}/{name}" in page
    for dataset in ("iemocap", "meld"):  # the fine-tuning curves too
        assert f"finetune/{dataset}/curves.png" in page or f"finetune_{dataset}_curves_png" in page.replace(".", "_")
    assert "vega" not in page.lower()  # images only: nothing that needs a network to draw
