"""Running Table 1's missing rows: one queued DVC experiment per row, the queue started and waited for; the tasks'
states read from ``dvc exp show --json`` (``dvc queue status`` has no JSON)."""
from __future__ import annotations

import json
import subprocess
import tempfile

from erc.reporting.rows import row_overrides, row_slug
from erc.runtime.errors import InputError


def _dvc(args: list[str], run=subprocess.run) -> str:
    result = run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise InputError(f"dvc {' '.join(args[:3])} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result.stdout


SHOW_RETRIES = 5  # dvc exp show failing this many polls in a row is an error, not a worker's set-up
STATES = ("failed", "running", "queued", "success")  # a name listed twice keeps the earlier state here


def queue_state(shown: list, names: set[str]) -> dict[str, str]:
    """(experiment name -> queued | running | success | failed) of ``names`` in ``dvc exp show --json`` output: DVC's
    ``ExpRange`` entries under each baseline, each with its name and its executor's state (a finished experiment may
    have none left: success). Experiments of other, earlier runs are ignored."""
    states = {}
    for baseline in shown or []:
        for group in (baseline or {}).get("experiments") or []:
            name = group.get("name")
            if name in names:
                state = (group.get("executor") or {}).get("state") or "success"
                if name not in states or STATES.index(state) < STATES.index(states[name]):
                    states[name] = state
    return states


def shown_experiments(run=subprocess.run) -> list:
    """``dvc exp show --json`` (the current commit's experiments, the queued and failed ones included), parsed."""
    try:
        return json.loads(_dvc(["exp", "show", "--json"], run))
    except json.JSONDecodeError:
        raise InputError("dvc exp show --json did not print JSON") from None


def start_queue(jobs: int, run=subprocess.run) -> None:
    """``dvc queue start -j N``. Its workers outlive the command and inherit its stdout and stderr: they go to a
    file, not a pipe, or reading them would wait for the last worker to exit."""
    with tempfile.TemporaryFile(mode="w+") as log:
        result = run(["dvc", "queue", "start", "-j", str(jobs)], stdout=log, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            log.seek(0)
            lines = log.read().strip().splitlines()
            raise InputError(f"dvc queue start failed: {lines[-1] if lines else f'exit {result.returncode}'}")


def run_missing_rows(names: list[str], jobs: int, run=subprocess.run, sleep=None, stamp: str = "") -> None:
    """Queue one DVC experiment per missing row (the current params with the row's switches), start DVC's queue
    with ``jobs`` workers and wait until this run's tasks are done; one of them failing is one InputError line
    naming it. Workers that stop while this run's tasks still wait are started again. ``dvc exp show`` fails for a
    moment while a worker creates an experiment's folder ("directory .../.dvc/tmp/exps/... does not exist"): a
    failed poll is asked again, ``SHOW_RETRIES`` in a row are an error."""
    import time
    sleep = sleep or time.sleep
    slugs = set()
    for name in names:
        slug = row_slug(name, stamp)
        _dvc(["exp", "run", "--queue", "-n", slug, *[a for o in row_overrides(name) for a in ("-S", o)]], run)
        slugs.add(slug)
    if not names:
        return
    start_queue(jobs, run)
    unreadable = 0
    while True:
        try:
            states = queue_state(shown_experiments(run), slugs)
            unreadable = 0
        except InputError:  # dvc exp show fails while a worker sets up an experiment's folder: ask again
            unreadable += 1
            if unreadable >= SHOW_RETRIES:
                raise
            sleep(30)
            continue
        failed = sorted(name for name, state in states.items() if state == "failed")
        if failed:
            raise InputError(f"dvc queue: experiment {failed[0]} failed (dvc queue logs {failed[0]})")
        queued, running = (sum(states.get(name) == state for name in slugs) for state in ("queued", "running"))
        unlisted = sorted(slugs - set(states))
        if not queued and not running:
            if unlisted:
                raise InputError(f"dvc queue: experiment {unlisted[0]} is neither queued, running nor done "
                                 f"(dvc exp show does not list it)")
            return
        if queued and not running:
            start_queue(jobs, run)  # its workers stopped with tasks still queued
        sleep(30)
