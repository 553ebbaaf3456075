"""benchmarks/gpu_check.py, the GPU check for an air-gapped CUDA node: without a GPU (or with nothing prepared) it
stops in one line; what travels is counted against the 64 MiB a command takes along; features travel in float16
and come back as float32; the rebuilt graphs are checked by content; only the packages the node lacks are
installed; the GPU run's metrics are set beside the CPU run's within the stated tolerance."""
import json
import os
import shutil
import subprocess

import pytest
import torch

import gpu_check
from conftest import ROOT, random_feats
from erc.data.graphs import build_graphs


def test_without_a_gpu_the_check_stops_in_one_line(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OUT=str(tmp_path / "out"), OMP_NUM_THREADS="1")
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no GPU") and "CUDA_VISIBLE_DEVICES is empty" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written, nothing installed


def test_nothing_prepared_is_one_line(tmp_path, capsys):
    assert gpu_check.main(["run", "--allow-cpu", "--build", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json not found" in err[0] and "gpu_check.py prepare" in err[0]


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_what_travels_is_tracked_untracked_and_the_carried_folder(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("/.gpu_check/\n/big/\n")
    (repo / "tracked.txt").write_bytes(b"t" * 1000)
    (repo / "gone.txt").write_bytes(b"g" * 300)
    git(repo, "add", ".gitignore", "tracked.txt", "gone.txt")
    (repo / "gone.txt").unlink()  # deleted in the working tree: it does not travel
    (repo / "untracked.txt").write_bytes(b"u" * 500)
    (repo / "big").mkdir()
    (repo / "big" / "ignored.bin").write_bytes(b"i" * 100_000)  # ignored and not carried
    build = repo / ".gpu_check"
    (build / "wheels").mkdir(parents=True)
    (build / "wheels" / "a.whl").write_bytes(b"w" * 2000)
    (build / "features").mkdir()
    (build / "features" / "iemocap.pt").write_bytes(b"f" * 4000)
    (build / "manifest.json").write_text("{}")
    sizes = gpu_check.travel_sizes(repo, build)
    assert sizes["parts"] == {"tracked files": 1000 + len("/.gpu_check/\n/big/\n"), "untracked files": 500,
                              ".gpu_check/features": 4000, ".gpu_check/manifest.json": 2, ".gpu_check/wheels": 2000}
    assert sizes["total"] == sum(sizes["parts"].values()) and sizes["limit"] == 64 * 2 ** 20
    gpu_check.check_budget(sizes)  # under the limit: no error
    assert "total (limit 64 MiB)" in gpu_check.size_lines(sizes)[-1]


def test_over_the_limit_is_refused_naming_the_largest_part():
    sizes = {"parts": {"tracked files": 15 * 2 ** 20, ".gpu_check/features": 60 * 2 ** 20}, "limit": 64 * 2 ** 20}
    sizes["total"] = sum(sizes["parts"].values())
    with pytest.raises(gpu_check.CheckError, match=r"75\.0 MiB would travel, over the 64 MiB .*"
                                                   r"largest: \.gpu_check/features, 60\.0 MiB"):
        gpu_check.check_budget(sizes)


def test_features_travel_in_float16_and_come_back_as_float32(tmp_path):
    feats = random_feats([40, 30, 50], ["train", "valid", "test"], text=(4, 64), audio=9)
    half = gpu_check.half_precision(feats.as_dict())
    assert {t.dtype for t in half["features"].values()} == {torch.float16}
    assert feats.features["text"].dtype == torch.float32  # the original is left as it was
    torch.save(feats.as_dict(), tmp_path / "full.pt")
    torch.save(half, tmp_path / "half.pt")
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    back = gpu_check.full_precision(torch.load(tmp_path / "half.pt", weights_only=True))
    for m, t in back["features"].items():
        assert t.dtype == torch.float32 and torch.allclose(t, feats.features[m], rtol=1e-3, atol=1e-3)
    assert torch.equal(back["labels"], feats.labels) and back["dialogue_ids"] == feats.dialogue_ids
    feats.features["audio"][0, 0] = 1e6
    with pytest.raises(gpu_check.CheckError, match="audio features exceed float16's range"):
        gpu_check.half_precision(feats.as_dict())


def test_the_graph_digest_follows_the_content():
    a, b = build_graphs([3, 5, 2], 2), build_graphs([3, 5, 2], 2)
    assert gpu_check.graphs_digest(a) == gpu_check.graphs_digest(b)
    assert gpu_check.graphs_digest(a) != gpu_check.graphs_digest(build_graphs([3, 5, 2], 2, window_past=1))
    assert gpu_check.graphs_digest(a) != gpu_check.graphs_digest(build_graphs([3, 5, 3], 2))


def test_only_the_missing_or_older_packages_are_installed():
    here = gpu_check.pins()  # this environment's versions: nothing to install
    assert set(here) == set(gpu_check.PACKAGES) and gpu_check.needed(here) == []
    other = dict(here, pydantic="0.0.1", **{"typing-extensions": "0.1"})  # an older typing-extensions is enough
    assert gpu_check.needed(other) == ["pydantic==0.0.1"]
    newer = dict(here, **{"typing-extensions": "999.0"})
    assert gpu_check.needed(newer) == ["typing-extensions==999.0"]



def test_the_metrics_are_set_beside_the_cpu_run_within_the_tolerance(tmp_path):
    for name in ("details/iemocap.json", "teachers/iemocap.json"):  # a "GPU run" that is the committed CPU run
        (tmp_path / "metrics" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "metrics" / name, tmp_path / "metrics" / name)
    seeds = json.loads((ROOT / "metrics" / "details" / "iemocap.json").read_text())["setup"]["seeds"]
    rows, note = gpu_check.metric_rows("iemocap", tmp_path, seeds)
    names = [r["name"] for r in rows]
    assert note is None and all(r["ok"] and abs(r["gpu"] - r["cpu"]) < 1e-9 for r in rows)
    assert any(n.startswith("model test weighted_f1") for n in names) and any("bc-LSTM" in n for n in names)
    assert any(n.startswith("text teacher") for n in names) and {r["tol"] for r in rows} == {3.0, 5.0}
    details = json.loads((tmp_path / "metrics" / "details" / "iemocap.json").read_text())
    details["test"]["weighted_f1"]["mean"] -= 3.5  # beyond ±3 on a mean of 5 seeds
    (tmp_path / "metrics" / "details" / "iemocap.json").write_text(json.dumps(details))
    rows, _ = gpu_check.metric_rows("iemocap", tmp_path, seeds)
    assert [r["name"] for r in rows if not r["ok"]] == [f"model test weighted_f1 (mean of {len(seeds)} seeds)"]
    rows, _ = gpu_check.metric_rows("iemocap", tmp_path, seeds[:2])  # fewer seeds: the CPU's mean of those, ±5
    assert rows[0]["tol"] == 5.0 and not any("bc-LSTM" in r["name"] for r in rows)
    assert gpu_check.metric_rows("iemocap", tmp_path, [99]) == ([], f"seeds [99] are not all in the CPU run's "
                                                                    f"{sorted(seeds)}: not compared")


def test_progress_bars_leave_the_output_but_what_follows_a_cut_bar_stays():
    bar = "iemocap fold0 epoch 1:   0%|          | 0/86 [00:00<?, ?batch/s]"  # a worker stopped mid-bar
    line = "== finetune_text: budget, 16.5 s\n"
    assert gpu_check.PROGRESS.sub("", bar + line) == line
    done = "Loading weights: 100%|██████████| 55/55 [00:00<00:00, 9788.96it/s]\n"
    assert gpu_check.PROGRESS.sub("", done) == "\n"
    table = "| model | 32.96 ± 0.00 | 27.09 ± 0.00 | 27.48 ± 0.00 |\n"  # evaluate's summary is no bar
    assert gpu_check.PROGRESS.sub("", table) == table
