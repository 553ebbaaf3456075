"""End to end: the DVC workflow as a user drives it, on a throwaway copy of the project with a few real dialogues.

dvc repro; dvc exp run -S mrl.shared=true reruns only the stages that read mrl.*; the MGLRA baseline made as
the README says; dvc metrics diff against it; dvc plots show.
"""
import os
import pickle
import shutil
import subprocess

import yaml

from conftest import ROOT

KEEP = {"train": 3, "valid": 2, "test": 2}


def run(cmd, cwd):
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", PYTHONWARNINGS="ignore")
    result = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def trim_metadata(raw):
    """Keep the first few dialogues of each split in the metadata pickles (the other raw files stay whole)."""
    with open(raw / "iemocap.pkl", "rb") as f:
        speakers, labels, sentences, train, test, valid = pickle.load(f)
    train, valid, test = train[:KEEP["train"]], valid[:KEEP["valid"]], test[:KEEP["test"]]
    keep = set(train + valid + test)
    pick = lambda d: {k: v for k, v in d.items() if k in keep}  # noqa: E731
    with open(raw / "iemocap.pkl", "wb") as f:
        pickle.dump([pick(speakers), pick(labels), pick(sentences), train, test, valid], f)
    with open(raw / "meld.pkl", "rb") as f:
        speakers, labels, sentiment, sentences, train, test, valid = pickle.load(f)
    train, valid, test = train[:KEEP["train"]], valid[:KEEP["valid"]], test[:KEEP["test"]]
    keep = set(train + valid + test)
    with open(raw / "meld.pkl", "wb") as f:
        pickle.dump([pick(speakers), pick(labels), pick(sentiment), pick(sentences), train, test, valid], f)


def tiny_params(path):
    p = yaml.safe_load(path.read_text())
    p["model"].update(hidden={"iemocap": 16, "meld": 16}, graph_hidden=8, graph_layers=2)
    p["train"].update(epochs=2, seeds=[0, 1])
    p["mrl"].update(enabled=True, shared=False, nesting=[2, 4, 8])  # the default MRL + MKD setup, whatever
    p["mkd"].update(enabled=True, lambda_kd=1.0)                    # the working tree's params say
    p["references"].update(logreg_C=[1.0], bclstm_hidden=8)
    p["finetune"].update(epochs=1, max_length=48)  # with a fine-tuned text default: its folds, one short epoch
    path.write_text(yaml.safe_dump(p, sort_keys=False))


def stages_run(output):
    return sorted({line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")})


def test_workflow_repro_experiment_baseline_diff_and_plots(tmp_path):
    repo = tmp_path / "project"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("metrics/", "plots/")) or name == "dvc.lock":
            continue  # a fresh run: no results carried over
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    trim_metadata(repo / "data" / "raw")
    tiny_params(repo / "params.yaml")
    run("git init -q && git add -A && git commit -qm tiny", repo)

    first = run("dvc repro", repo)
    assert "train_teachers@iemocap" in stages_run(first) and "evaluate@meld" in stages_run(first)
    assert "Data and pipelines are up to date" in run("dvc repro", repo)
    run("git add -A && git commit -qm 'tiny run'", repo)

    experiment = run("dvc exp run -S mrl.shared=true", repo)
    assert stages_run(experiment) == ["evaluate@iemocap", "evaluate@meld", "train@iemocap", "train@meld"]
    distill = run("dvc exp run -S mkd.lambda_kd=0.5", repo)  # teachers are reused, not retrained
    assert stages_run(distill) == ["evaluate@iemocap", "evaluate@meld", "train@iemocap", "train@meld"]

    # the MGLRA baseline as the README documents it: an experiment turned into a branch
    baseline = run("dvc exp run -n mglra -S mrl.enabled=false -S mkd.enabled=false", repo)
    assert "train_teachers@iemocap" not in stages_run(baseline)
    run("dvc exp branch mglra mglra-baseline", repo)
    run("git checkout -q -- . && dvc checkout -q", repo)
    diff = run("dvc metrics diff mglra-baseline --all", repo)
    for dataset in ("iemocap", "meld"):
        assert f"metrics/{dataset}.json" in diff
    for key in ("test.acc.mean", "test.weighted_f1.mean", "text_only.test.weighted_f1.mean"):
        assert key in diff
    for key in ("ensemble.test.weighted_f1", "paper_protocol_test_picked.test.weighted_f1.mean"):
        assert key in diff
    assert len(diff.splitlines()) < 30 and "nesting" not in diff  # the headline only (12 figures a dataset)
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
