"""The paper's Table 1 from DVC experiments: python src/table.py [--run [-j N | --backend slurm]] -> metrics/table1.md

Rows are experiments whose params equal params.yaml but for mrl.enabled / mrl.shared / mkd.enabled (the
committed run is one of them) and whose train and evaluate stages read the same files and params as the
workspace's dvc.lock records (equal params on a re-fine-tuned encoder are another run), on the same device as the
workspace's run (its metrics' setup: a CUDA run of equal params is another run). ``--run`` first
queues the missing rows as DVC experiments, runs DVC's queue with N workers and waits; rows already run that way
are reused; ``--backend slurm`` runs them as one SLURM job array instead (erc.runtime.slurm, docs/cluster.md). Each row
of the table is also recorded in metrics/table1/<row>.json (what the table read of its
experiment), committed with the table: DVC's experiments stay in the repository copy that ran them, so a clone
rebuilds the table from the records and ``--run`` reruns only rows no record holds for the current inputs.
Without a matching experiment it says why and leaves metrics/table1.md as it was."""
import argparse
import json
import time
from pathlib import Path

from erc.runtime.errors import InputError, one_line_errors
from erc.runtime.files import save_text
from erc.config.params import Params, load_params
from erc.reporting.experiment_table import build_table, find_rows
from erc.reporting.queue import run_missing_rows
from erc.reporting.records import load_records, save_records
from erc.reporting.rows import missing_rows, row_overrides, row_slug
from erc.reporting.runs import experiments_from_dvc, run_device, run_inputs
from erc.runtime.slurm import run_on_slurm


def reference_inputs(params: Params) -> dict:
    """dataset -> ``run_inputs`` of the workspace's dvc.lock, for each dataset that params.yaml runs."""
    if not Path("dvc.lock").is_file():
        raise InputError("dvc.lock: not found (run dvc repro first: Table 1's rows are compared with its run)")
    lock = Path("dvc.lock").read_text()
    inputs = {d: run_inputs(lock, d) for d in params.datasets}
    missing = [d for d in params.datasets if inputs[d] is None]
    if missing:
        raise InputError(f"dvc.lock: no complete train@{missing[0]} / evaluate@{missing[0]} (run dvc repro first)")
    return inputs


def reference_devices(params: Params) -> dict:
    """dataset -> the device the workspace's run computed on (its metrics' setup), for each dataset it ran."""
    devices = {}
    for d in params.datasets:
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
    parser.add_argument("--backend", choices=["local", "slurm"], default="local",
                        help="local: DVC's queue here; slurm: one SLURM array task per row (docs/cluster.md)")
    parser.add_argument("--partition", help="SLURM partition (slurm backend)")
    parser.add_argument("--max-parallel", type=int, help="array tasks running at once (slurm backend)")
    parser.add_argument("--git-remote", default="origin", help="what the workers clone and push to (slurm backend)")
    parser.add_argument("--dvc-remote", default="cluster",
                        help="the DVC remote every node reaches, in .dvc/config (slurm backend)")
    parser.add_argument("--work", default=".dvc/tmp/slurm",
                        help="a folder every node reaches: task list, clones, logs (slurm backend)")
    args = parser.parse_args()
    with one_line_errors():
        params = load_params()
        inputs = reference_inputs(params)  # rows must come from the workspace run's inputs, on its device
        devices = reference_devices(params)
        reference = params.model_dump()

        def experiments():  # fresh experiments first: a row found twice keeps the first
            return experiments_from_dvc() + load_records()

        if args.run:
            todo = missing_rows(find_rows(experiments(), reference, inputs=inputs, devices=devices), params.datasets)
            print(f"rows to run: {', '.join(todo) or 'none (all reused)'}", flush=True)
            start, stamp = time.time(), time.strftime("%m%d%H%M%S")
            if args.backend == "slurm" and todo:
                tasks = {row_slug(name, f"{stamp}-{k}"): row_overrides(name) for k, name in enumerate(todo)}
                run_on_slurm(tasks, Path(args.work) / stamp, args.git_remote, args.dvc_remote, args.partition,
                             args.max_parallel)
            else:
                run_missing_rows(todo, args.jobs, stamp=stamp)
            print(f"{args.backend} run done in {(time.time() - start) / 60:.1f} min", flush=True)
        found = experiments()
        text = build_table(found, reference, inputs=inputs, devices=devices)
        save_records(find_rows(found, reference, inputs=inputs, devices=devices))
        save_text(text, "metrics/table1.md")
    print(text)


if __name__ == "__main__":
    main()
