"""The paper's Table 1 from DVC experiments: python src/table.py [--run [-j N]] -> metrics/table1.md

Rows are experiments whose params equal params.yaml but for mrl.enabled / mrl.shared / mkd.enabled (the
committed run is one of them). ``--run`` first queues the missing rows as DVC experiments, runs DVC's queue with
N workers and waits; rows already run with the same params are reused. Without a matching experiment it says
why and leaves metrics/table1.md as it was."""
import argparse
import sys
import time

from erc.io import InputError, save_text
from erc.params import load_params
from erc.table import build_table, experiments_from_dvc, find_rows, missing_rows, run_missing_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="store_true", help="queue and run the rows that have no results yet")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="DVC queue workers (each trains both datasets)")
    args = parser.parse_args()
    try:
        params = load_params()
        if args.run:
            todo = missing_rows(find_rows(experiments_from_dvc(), params))
            print(f"rows to run: {', '.join(todo) or 'none (all reused)'}", flush=True)
            start = time.time()
            run_missing_rows(todo, args.jobs, stamp=time.strftime("%m%d%H%M"))
            print(f"queue done in {(time.time() - start) / 60:.1f} min", flush=True)
        text = build_table(experiments_from_dvc(), params)
    except InputError as err:
        sys.exit(f"error: {err}")
    save_text(text, "metrics/table1.md")
    print(text)


if __name__ == "__main__":
    main()
