"""DVC experiments as a SLURM job array (erc.runtime.slurm) on a real cluster: munge, one controller and two nodes started
here on localhost (skipped where SLURM is not installed; .ci/run installs it), a bare git remote, a DVC remote
(a folder, then S3 served by moto on 127.0.0.1), and a tiny pipeline whose grid runs as the array."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from erc.runtime.errors import InputError
from erc.runtime.slurm import run_on_slurm
import localhost_slurm

pytestmark = [pytest.mark.skipif(not all(shutil.which(p) for p in ("slurmctld", "slurmd", "munged", "sbatch")),
                                 reason="SLURM (slurmctld, slurmd, munge) is not installed"),
              pytest.mark.xdist_group("slurm")]  # with pytest -n, one worker starts the one cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A two-node SLURM cluster on localhost (tests/localhost_slurm.py); every daemon it starts is stopped."""
    d = tmp_path_factory.mktemp("slurm")
    conf = localhost_slurm.start(d, n_nodes=2)
    try:
        with pytest.MonkeyPatch.context() as patch:  # sbatch and the launcher find the cluster by SLURM_CONF
            patch.setenv("SLURM_CONF", str(conf))
            yield d
    finally:
        localhost_slurm.stop(d)


SCORE = """\
import json, sys, yaml
p = yaml.safe_load(open("params.yaml"))
if p["fail"]:
    sys.exit("forced failure")
data = open("data.txt").read()
json.dump({"score": p["a"] * 2, "data": data}, open("metrics.json", "w"))
"""
PREPARE = """\
import os
with open(os.environ["PREPARE_LOG"], "a") as log:  # who ran the upstream stage
    log.write(os.environ.get("SLURM_JOB_ID", "launcher") + "\\n")
open("data.txt", "w").write("prepared")
"""
DVC_YAML = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py]
    outs: [data.txt]
  score:
    cmd: python score.py
    deps: [score.py, data.txt]
    params: [a, fail]
    metrics:
      - metrics.json:
          cache: false
"""


def git(*args, cwd):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def project(tmp_path, dvc_remote_url, remote_name="store", extra_config=()):
    """A pushed repository with a two-stage pipeline run once (its outputs and run-cache on the DVC remote)."""
    bare, repo = tmp_path / "remote.git", tmp_path / "project"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo.mkdir()
    (repo / "score.py").write_text(SCORE)
    (repo / "prepare.py").write_text(PREPARE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("a: 1\nfail: false\n")
    git("init", "-q", "-b", "main", cwd=repo)
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "remote", "add", remote_name, dvc_remote_url], cwd=repo, check=True)
    for key, value in extra_config:
        subprocess.run(["dvc", "remote", "modify", remote_name, key, value], cwd=repo, check=True)
    subprocess.run(["dvc", "config", "core.analytics", "false"], cwd=repo, check=True)
    subprocess.run(["dvc", "repro", "-q"], cwd=repo, check=True)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "pipeline", cwd=repo)
    git("remote", "add", "origin", str(bare), cwd=repo)
    git("push", "-q", "origin", "main", cwd=repo)
    return repo


def shown_metrics(repo) -> dict:
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, capture_output=True, text=True,
                                      check=True).stdout)
    found = {}
    for entry in shown:
        for group in entry.get("experiments") or []:
            for rev in group.get("revs") or []:
                data = rev.get("data") or {}
                metrics = ((data.get("metrics") or {}).get("metrics.json") or {}).get("data")
                found[rev.get("name")] = metrics
    return found


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PREPARE_LOG", str(tmp_path / "prepare.log"))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    for key, value in (("GIT_AUTHOR_NAME", "t"), ("GIT_AUTHOR_EMAIL", "t@t"), ("GIT_COMMITTER_NAME", "t"),
                       ("GIT_COMMITTER_EMAIL", "t@t")):
        monkeypatch.setenv(key, value)
    return tmp_path


def test_a_grid_runs_as_an_array_and_every_experiment_comes_back(cluster, env):
    repo = project(env, str(env / "dvcstore"))
    tasks = {"grid-a2": ["a=2"], "grid-a3": ["a=3"], "grid-a4": ["a=4"]}
    arrived = run_on_slurm(tasks, env / "work", dvc_remote="store", cwd=repo)
    assert sorted(arrived) == sorted(tasks)
    metrics = shown_metrics(repo)
    assert {name: metrics[name]["score"] for name in tasks} == {"grid-a2": 4, "grid-a3": 6, "grid-a4": 8}
    assert all(metrics[name]["data"] == "prepared" for name in tasks)
    # the upstream stage ran once, in the launcher's repository: the workers pulled it with its run-cache
    assert (env / "prepare.log").read_text().split() == ["launcher"]
    assert sorted(os.listdir(env / "work" / "logs")) == ["0.out", "1.out", "2.out"]


def test_a_failed_task_is_named_with_its_log_and_a_rerun_sends_it_alone(cluster, env):
    repo = project(env, str(env / "dvcstore"))
    with pytest.raises(InputError, match=r"SLURM: broken did not arrive \(log .*/logs/1\.out\)") as err:
        run_on_slurm({"fine": ["a=5"], "broken": ["fail=true"]}, env / "work", dvc_remote="store", cwd=repo)
    assert "fine" not in str(err.value).split("SLURM:")[1].split("(run again")[0].replace("broken", "")
    assert "forced failure" in (env / "work" / "logs" / "1.out").read_text()
    assert shown_metrics(repo)["fine"]["score"] == 10
    arrived = run_on_slurm({"broken-fixed": ["a=6"]}, env / "work2", dvc_remote="store", cwd=repo)
    assert arrived == ["broken-fixed"] and os.listdir(env / "work2" / "logs") == ["0.out"]


def test_uncommitted_or_unpushed_work_is_refused(cluster, env):
    repo = project(env, str(env / "dvcstore"))
    (repo / "params.yaml").write_text("a: 9\nfail: false\n")
    with pytest.raises(InputError, match="uncommitted changes: commit and push them first"):
        run_on_slurm({"x": ["a=1"]}, env / "work", dvc_remote="store", cwd=repo)
    git("commit", "-qam", "local only", cwd=repo)
    with pytest.raises(InputError, match=r"HEAD \w{7} is not on origin: git push first"):
        run_on_slurm({"x": ["a=1"]}, env / "work", dvc_remote="store", cwd=repo)


@pytest.fixture
def s3(tmp_path):
    """An S3-compatible server (moto) on 127.0.0.1 with a bucket; stopped at the end."""
    pytest.importorskip("dvc_s3", reason="dvc-s3 is not installed")
    if not shutil.which("moto_server"):
        pytest.skip("moto_server is not installed")
    port = localhost_slurm.free_port()
    server = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        import boto3
        localhost_slurm.wait_for(lambda: _up(url), "moto_server")
        boto3.client("s3", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x",
                     region_name="us-east-1").create_bucket(Bucket="erc")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _up(url):
    import urllib.request
    try:
        urllib.request.urlopen(url, timeout=1)
        return True
    except OSError:
        return False


def test_the_dvc_remote_can_be_s3(cluster, env, s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    repo = project(env, "s3://erc/dvc", extra_config=[("endpointurl", s3)])
    arrived = run_on_slurm({"s3-a7": ["a=7"]}, env / "work", dvc_remote="store", cwd=repo)
    assert arrived == ["s3-a7"] and shown_metrics(repo)["s3-a7"]["score"] == 14
    assert (env / "prepare.log").read_text().split() == ["launcher"]  # data.txt came from S3


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
