"""The paper's Table 1 from DVC experiments: python src/table.py [--run [-j N]] -> metrics/table1.md

Rows are experiments whose params equal params.yaml but for mrl.enabled / mrl.shared / mkd.enabled (the
committed run is one of them) and whose train@<dataset> read the same files as the workspace's dvc.lock says
(features, graphs, teachers, code: equal params on a re-fine-tuned encoder are another run). ``--run`` first
queues the missing rows as DVC experiments, runs DVC's queue with N workers and waits; rows already run that way
are reused. Without a matching experiment it says why and leaves metrics/table1.md as it was."""
import argparse
import sys
import time
from pathlib import Path

from erc.io import InputError, save_text
from erc.params import load_params
from erc.table import DATASETS, build_table, experiments_from_dvc, find_rows, missing_rows, run_missing_rows, train_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="store_true", help="queue and run the rows that have no results yet")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="DVC queue workers (each trains both datasets)")
    args = parser.parse_args()
    try:
        params = load_params()
        lock = Path("dvc.lock").read_text() if Path("dvc.lock").is_file() else None
        inputs = {d: train_inputs(lock, d) for d in DATASETS}  # rows must be trained on the workspace's inputs
        if args.run:
            todo = missing_rows(find_rows(experiments_from_dvc(), params, inputs=inputs))
            print(f"rows to run: {', '.join(todo) or 'none (all reused)'}", flush=True)
            start = time.time()
            run_missing_rows(todo, args.jobs, stamp=time.strftime("%m%d%H%M"))
            print(f"queue done in {(time.time() - start) / 60:.1f} min", flush=True)
        text = build_table(experiments_from_dvc(), params, inputs=inputs)
    except InputError as err:
        sys.exit(f"error: {err}")
    save_text(text, "metrics/table1.md")
    print(text)


if __name__ == "__main__":
    main()
