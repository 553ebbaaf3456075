"""The test difference between two committed runs, with a dialogue-level 95 % bootstrap interval.

    python src/paired_diff.py meld 5b38837 HEAD    # HEAD's run minus 5b38837's, on MELD test
    python src/paired_diff.py iemocap metrics/table1/mglra.json REV   # a Table 1 row as a side

Reads ``plots/<dataset>/test_predictions.csv`` of each git revision (every seed's test predictions), or the test
predictions a Table 1 record (``metrics/table1/<row>.json``, a file) keeps for the dataset, and resamples
the test dialogues jointly and each side's seeds independently, as Table 1's Δ column does
(``erc.reporting.bootstrap.paired_bootstrap``). Both runs must have been tested on the same utterances.
"""
import argparse
import sys
from pathlib import Path

import pandas as pd

from erc.config.params import check_dataset
from erc.data.datasets import CLASSES
from erc.reporting.bootstrap import paired_bootstrap
from erc.reporting.records import load_record, with_dialogues
from erc.reporting.runs import git_file, read_predictions
from erc.runtime.errors import InputError


def predictions(side: str, dataset: str) -> pd.DataFrame:
    """Every seed's test predictions of ``side``: a git revision, or a Table 1 record file."""
    path = f"plots/{dataset}/test_predictions.csv"
    if side.endswith(".json"):
        if not Path(side).is_file():
            raise InputError(f"{side}: no such record file")
        text = next((exp["files"][path] for exp in load_record(Path(side)) if path in exp["files"]), None)
        where = side
        if text is None:
            raise InputError(f"{side}: the record holds no {dataset} row")
    else:
        text, where = git_file(side, path), f"{side}:{path}"
        if text is None:
            raise InputError(f"{where} not found (an unknown revision, or a run before predictions were kept)")
    return with_dialogues(read_predictions(text, where, dataset), f"data/features/{dataset}.pt", where)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("base", help="git revision subtracted")
    parser.add_argument("row", help="git revision measured")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    try:
        dataset = check_dataset(args.dataset)
        point, low, high = paired_bootstrap(predictions(args.row, dataset), predictions(args.base, dataset),
                                            len(CLASSES[dataset]), n_boot=args.n_boot)
    except InputError as err:
        sys.exit(f"error: {err}")
    for k, name in enumerate(("Acc", "w-F1")):
        print(f"{dataset} test {name}: {args.row} - {args.base} = {point[k]:+.2f} [{low[k]:+.2f}, {high[k]:+.2f}]")


if __name__ == "__main__":
    main()
