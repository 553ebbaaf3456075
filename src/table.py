"""The paper's Table 1 from DVC experiments: python src/table.py [--run [-j N]] -> metrics/table1.md

Rows are experiments whose params equal params.yaml but for mrl.enabled / mrl.shared / mkd.enabled (the
committed run is one of them) and whose train and evaluate stages read the same files and params as the
workspace's dvc.lock records (equal params on a re-fine-tuned encoder are another run), on the same device as the
workspace's run (its metrics' setup: a CUDA run of equal params is another run). ``--run`` first
queues the missing rows as DVC experiments, runs DVC's queue with N workers and waits; rows already run that way
are reused. Without a matching experiment it says why and leaves metrics/table1.md as it was."""
import argparse
import json
import sys
import time
from pathlib import Path

from erc.io import InputError, save_text
from erc.params import get, load_params
from erc.table import (DATASETS, build_table, experiments_from_dvc, find_rows, missing_rows, run_device, run_inputs,
                       run_missing_rows)


def reference_inputs(params: dict) -> dict:
    """dataset -> ``run_inputs`` of the workspace's dvc.lock, for each dataset that params.yaml runs."""
    if not Path("dvc.lock").is_file():
        raise InputError("dvc.lock: not found (run dvc repro first: Table 1's rows are compared with its run)")
    lock = Path("dvc.lock").read_text()
    inputs = {d: run_inputs(lock, d) if d in get(params, "datasets") else None for d in DATASETS}
    missing = [d for d in get(params, "datasets") if inputs[d] is None]
    if missing:
        raise InputError(f"dvc.lock: no complete train@{missing[0]} / evaluate@{missing[0]} (run dvc repro first)")
    return inputs


def reference_devices(params: dict) -> dict:
    """dataset -> the device the workspace's run computed on (its metrics' setup), for each dataset it ran."""
    devices = {}
    for d in get(params, "datasets"):
        path = Path(f"metrics/details/{d}.json")
        if path.is_file():
            try:
                devices[d] = run_device(json.loads(path.read_text()))
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: unreadable ({err.msg})") from None
    return devices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="store_true", help="queue and run the rows that have no results yet")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="DVC queue workers (each trains both datasets)")
    args = parser.parse_args()
    try:
        params = load_params()
        inputs = reference_inputs(params)  # rows must come from the workspace run's inputs, on its device
        devices = reference_devices(params)
        if args.run:
            todo = missing_rows(find_rows(experiments_from_dvc(), params, inputs=inputs, devices=devices))
            print(f"rows to run: {', '.join(todo) or 'none (all reused)'}", flush=True)
            start = time.time()
            run_missing_rows(todo, args.jobs, stamp=time.strftime("%m%d%H%M"))
            print(f"queue done in {(time.time() - start) / 60:.1f} min", flush=True)
        text = build_table(experiments_from_dvc(), params, inputs=inputs, devices=devices)
    except InputError as err:
        sys.exit(f"error: {err}")
    save_text(text, "metrics/table1.md")
    print(text)


if __name__ == "__main__":
    main()
