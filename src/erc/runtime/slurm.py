"""DVC experiments as a SLURM job array (``python src/table.py --run --backend slurm``; docs/cluster.md).

DVC's queue is local by design; across machines DVC shares experiments through a git remote and a DVC remote. So
each array task clones the git remote at the base commit into its own folder (one repository copy a job: a
workspace's lock allows one run), pulls what the DVC remote holds (the upstream stages' outputs, pushed once by the
launcher with their run-cache, so that workers reuse them), runs ``dvc exp run -n <name> -S ...`` and pushes the
experiment (``dvc exp push``). The launcher waits (``sbatch --wait``), checks that every expected experiment reached
the git remote (``dvc exp push`` of a diverged name only warns), names each task that did not with its log, and
pulls the others (``dvc exp pull``). One task a DVC experiment: a row runs both datasets in one experiment, as on
the local queue, so its metrics are one commit.
"""
from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

from erc.runtime.errors import InputError
from erc.runtime.files import save_text

TASK = """#!/bin/bash
# One DVC experiment of a SLURM array (written by erc.runtime.slurm): clone, pull, run, push.
set -euo pipefail
line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {tasks})
name=${{line%%$'\\t'*}}
overrides=${{line#*$'\\t'}}
work={work}/clones/$name
rm -rf "$work"
git clone -q {remote} "$work"
cd "$work"
git checkout -q {base}
dvc pull {dvc_remote} --run-cache -q || echo "dvc pull: not everything was on the DVC remote (it reruns here)" >&2
eval "dvc exp run -n $name $overrides"
dvc exp push {push_cache} origin "$name"
git ls-remote origin | grep -q "/$name\$" || {{ echo "$name did not reach origin" >&2; exit 1; }}
"""


def _run(cmd: list[str], cwd=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise InputError(f"{' '.join(cmd[:3])} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result


def check_pushed(git_remote: str = "origin", cwd=None) -> str:
    """The base commit (HEAD), refused when the workspace has uncommitted changes or HEAD is not on the remote:
    workers see only what the git remote holds."""
    if _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd).stdout.strip():
        raise InputError("uncommitted changes: commit and push them first (SLURM workers clone the git remote)")
    head = _run(["git", "rev-parse", "HEAD"], cwd).stdout.strip()
    _run(["git", "fetch", "-q", git_remote], cwd)
    if not _run(["git", "branch", "-r", "--contains", head], cwd, check=False).stdout.strip():
        raise InputError(f"HEAD {head[:7]} is not on {git_remote}: git push first (SLURM workers clone the git remote)")
    return head


def remote_url(git_remote: str = "origin", cwd=None) -> str:
    return _run(["git", "remote", "get-url", git_remote], cwd).stdout.strip()


def remote_experiments(git_remote: str = "origin", cwd=None) -> set[str]:
    """Names of the experiments the git remote holds (``refs/exps/<xx>/<yyyy>/<name>``)."""
    out = _run(["git", "ls-remote", git_remote, "refs/exps/*"], cwd).stdout
    return {line.split("/")[-1] for line in out.splitlines() if line.strip()}


def submit(tasks: dict[str, list[str]], work: str | Path, base: str, remote: str, dvc_remote: str | None = None,
           partition: str | None = None, max_parallel: int | None = None, run=subprocess.run) -> Path:
    """Write the array's task list and script under ``work`` and ``sbatch --wait`` it; returns the log folder.
    ``tasks``: experiment name -> its ``-S key=value`` overrides."""
    work = Path(work).resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    names = list(tasks)
    listing = "".join(f"{name}\t{' '.join('-S ' + shlex.quote(o) for o in tasks[name])}\n" for name in names)
    save_text(listing, work / "tasks.tsv")
    script = TASK.format(tasks=shlex.quote(str(work / "tasks.tsv")), work=shlex.quote(str(work)),
                         remote=shlex.quote(remote), base=base,
                         dvc_remote=f"-r {shlex.quote(dvc_remote)}" if dvc_remote else "",
                         push_cache=f"-r {shlex.quote(dvc_remote)}" if dvc_remote else "--no-cache")
    save_text(script, work / "task.sh")
    array = f"0-{len(names) - 1}" + (f"%{max_parallel}" if max_parallel else "")
    cmd = ["sbatch", "--wait", f"--array={array}", "--job-name=erc-exp", f"--output={work / 'logs'}/%a.out",
           *(["--partition", partition] if partition else []), str(work / "task.sh")]
    try:
        run(cmd, capture_output=True, text=True)  # non-zero when a task failed: each is checked below
    except FileNotFoundError:
        raise InputError("sbatch: not found (SLURM's client commands must be on PATH)") from None
    return work / "logs"


def run_on_slurm(tasks: dict[str, list[str]], work: str | Path, git_remote: str = "origin",
                 dvc_remote: str | None = None, partition: str | None = None, max_parallel: int | None = None,
                 cwd=None, push_upstream: bool = True) -> list[str]:
    """Run ``tasks`` (name -> overrides) as one SLURM array of DVC experiments and bring them back; returns the
    names that arrived. InputError naming each task that failed or did not push, with its log."""
    base = check_pushed(git_remote, cwd)
    if push_upstream and dvc_remote:  # what the workers reuse instead of recomputing: outputs and run-cache
        _run(["dvc", "push", "-r", dvc_remote, "--run-cache", "-q"], cwd, check=False)
    logs = submit(tasks, work, base, remote_url(git_remote, cwd), dvc_remote, partition, max_parallel)
    arrived = remote_experiments(git_remote, cwd)
    missing = [name for name in tasks if name not in arrived]
    pulled = [name for name in tasks if name in arrived]
    for name in pulled:
        _run(["dvc", "exp", "pull", "--no-cache", git_remote, name], cwd)
    if missing:
        index = {name: k for k, name in enumerate(tasks)}
        raise InputError("SLURM: " + "; ".join(f"{name} did not arrive (log {logs / f'{index[name]}.out'})"
                                                for name in missing) + " (run again: only these are resubmitted)")
    return pulled


def stamp() -> str:
    return time.strftime("%m%d%H%M%S")
