"""src/encoder_compare.py and src/paired_diff.py on runs committed in a real git repository."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import yaml

from conftest import ROOT
from test_bad_input import run_command, run_script

CLASSES = 6  # IEMOCAP's


def summary(mean, std=0.0):
    return {"mean": mean, "std": std}


def commit_run(repo, labels, dialogue, accuracy, head_f1, seed):
    """A run's committed outputs, IEMOCAP only: params, lock, metrics and every seed's test predictions."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(3):
        right = rng.random(len(labels)) < accuracy
        wrong = (labels + rng.integers(1, CLASSES, len(labels))) % CLASSES
        rows.append(pd.DataFrame({"seed": s, "utterance": np.arange(len(labels)), "dialogue": dialogue,
                                  "label": labels, "prediction": np.where(right, labels, wrong)}))
    (repo / "plots" / "iemocap").mkdir(parents=True, exist_ok=True)
    pd.concat(rows).to_csv(repo / "plots" / "iemocap" / "test_predictions.csv", index=False)
    curve = repo / "plots" / "finetune" / "iemocap" / "full" / "plots" / "metrics"
    curve.mkdir(parents=True, exist_ok=True)  # DVCLive's curve of the classifier: the kept epoch is the best
    (curve / "valid_weighted_f1.tsv").write_text(f"step\tvalid_weighted_f1\n0\t{head_f1 - 3}\n1\t{head_f1}\n"
                                                 f"2\t{head_f1 - 1}\n")
    (repo / "metrics" / "details").mkdir(parents=True, exist_ok=True)
    # every figure of a run its own (valid != test, the teacher and bc-LSTM by seed): a swapped side would show
    scores = {"valid": {"weighted_f1": summary(seed + 0.25, 1.0)}, "test": {"weighted_f1": summary(seed + 0.5, 2.0)}}
    (repo / "metrics" / "details" / "iemocap.json").write_text(json.dumps({
        **scores, "text_only_teacher": {"valid": {"weighted_f1": summary(50.0 + seed)},
                                        "test": {"weighted_f1": summary(51.0 + seed)}},
        "references": {"bc_lstm": {"valid": {"weighted_f1": summary(55.0 + seed, 0.5)},
                                   "test": {"weighted_f1": summary(56.0 + seed, 0.5)}}},
        "setup": {"mrl": False, "mrl_shared": False, "mkd": False}}))
    (repo / "params.yaml").write_text(yaml.safe_dump({"datasets": ["iemocap"], "features": {"text": f"enc{seed}"}}))
    (repo / "dvc.lock").write_text(yaml.safe_dump({"stages": {"train@iemocap": {"cmd": "python src/train.py"}}}))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"run {seed}"], cwd=repo,
                   check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def run(args, cwd):
    """src/encoder_compare.py run in this process (tests/test_bad_input.py, ``run_script``)."""
    return run_script("encoder_compare.py", *args, cwd=cwd)


def test_records_of_two_encoders_give_the_comparison_and_its_interval(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    rng = np.random.default_rng(0)
    dialogue = np.repeat([f"d{i}" for i in range(30)], 10)
    labels = rng.integers(0, CLASSES, len(dialogue))
    weak = commit_run(repo, labels, dialogue, 0.4, 45.5, seed=1)
    strong = commit_run(repo, labels, dialogue, 0.9, 60.25, seed=2)
    for rev, name in ((weak, "weak.json"), (strong, "strong.json")):
        done = run(["record", rev, str(tmp_path / name), "--row", "MGLRA"], repo)
        assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "strong.json").read_text())
    assert record["row"] == "MGLRA" and record["finetune"]["iemocap"]["valid_weighted_f1"] == 60.25
    assert record["finetune"]["iemocap"]["epoch"] == 2
    assert record["datasets"]["iemocap"]["params"]["features"]["text"] == "enc2"
    assert sorted(record["datasets"]["iemocap"]["test"]["prediction"]) == ["0", "1", "2"]

    other = commit_run(repo, labels, dialogue, 0.4, 30.0, seed=3)  # a second pair's first side
    assert run(["record", other, str(tmp_path / "other.json"), "--row", "x"], repo).returncode == 0

    out = tmp_path / "encoders.md"
    done = run(["table", "--names", "weak", "strong", "--out", str(out), "--n-boot", "200",
                "--pair", "MGLRA", str(tmp_path / "weak.json"), str(tmp_path / "strong.json"),
                "--pair", "MRL", str(tmp_path / "other.json"), str(tmp_path / "strong.json")], tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
            for line in out.read_text().splitlines() if line.startswith("| ") and "valid" not in line}
    assert rows["fine-tuned classifier (its head)"][:4] == ["45.50", "—", "60.25", "—"]
    assert rows["text teacher"][:6] == ["51.00", "52.00", "52.00", "53.00", "+1.00", "+1.00 (means)"]
    assert rows["bc-LSTM"][:4] == ["56.00 ± 0.50", "57.00 ± 0.50", "57.00 ± 0.50", "58.00 ± 0.50"]
    assert rows["MGLRA"][:5] == ["1.25 ± 1.00", "1.50 ± 2.00", "2.25 ± 1.00", "2.50 ± 2.00", "+1.00"]
    assert rows["MRL"][:2] == ["3.25 ± 1.00", "3.50 ± 2.00"]
    point, low, high = (float(x) for x in rows["MGLRA"][5].replace("[", "").replace("]", "").replace(",", "").split())
    assert 30 < low < point < high  # 0.9 against 0.4 accuracy: a gain far outside the interval's width
    # the classifier, teacher and bc-LSTM rows from another pair's runs
    done = run(["table", "--names", "a", "b", "--references", "MRL", "--n-boot", "50",
                "--pair", "MGLRA", str(tmp_path / "weak.json"), str(tmp_path / "strong.json"),
                "--pair", "MRL", str(tmp_path / "other.json"), str(tmp_path / "strong.json")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| fine-tuned classifier (its head) | 30.00 " in done.stdout.replace("  ", " ").replace("  ", " ")

    # paired_diff reads a record as one side and a git revision as the other: the same difference
    done = subprocess.run([sys.executable, str(ROOT / "src" / "paired_diff.py"), "iemocap",
                           str(tmp_path / "weak.json"), strong, "--n-boot", "200"], cwd=repo, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert f"w-F1: {strong} - {tmp_path / 'weak.json'} = {point:+.2f}" in done.stdout


def test_a_missing_revision_or_record_is_one_line(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    done = run_command("encoder_compare.py", "record", "nosuchrev", str(tmp_path / "r.json"), "--row", "x",
                       cwd=tmp_path)  # once as a command
    assert done.returncode == 1 and done.stderr == "error: nosuchrev:params.yaml not found\n"
    assert not (tmp_path / "r.json").exists()
    done = run(["table", "--pair", "x", str(tmp_path / "a.json"), str(tmp_path / "b.json")], tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "a.json" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    (tmp_path / "a.json").write_text(json.dumps({"row": "x", "datasets": {"iemocap": {"metrics": {}}}}))
    done = run(["table", "--pair", "x", str(tmp_path / "a.json"), str(tmp_path / "a.json")], tmp_path)
    assert done.returncode == 1 and done.stderr.startswith(f"error: {tmp_path / 'a.json'}: not a run record")
    assert len(done.stderr.splitlines()) == 1
