"""The seed study of the paper's protocol (docs/seed_study.md): many seeds of a Table 1 row at the committed params,
each with its per-epoch test records, then both protocols and the "gain from nothing" that the paper's way of
comparing produces between two sets of runs of one method.

    python src/seed_study.py run <dataset> <row> [--seeds 0-19]   # train the missing seeds (resumable)
    python src/seed_study.py report                                # score, tables, figures (reads test labels)

``run`` trains exactly as stage ``train`` does (the same code, params.yaml with the row's three switches set; one
seed here gives the stage's run of that seed bit for bit) on the workspace's features, graphs and teachers, with
test labels hidden, and keeps each seed's selected epoch, curves and per-epoch test probabilities in
``runs/seed_study/<dataset>/<row>/seed<k>.pt`` (not in git: 1-2 MB each). ``report`` scores those records into
``metrics/seed_study/<dataset>.json`` (committed: per seed, both protocols' epochs and scores and the test w-F1
of every epoch), and from that file alone writes ``docs/seed_study.md`` and ``plots/protocol/<dataset>.png``.
Nothing here chooses anything: the study reports what each protocol would have said."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from erc.reporting.rows import ROWS, row_slug, with_overrides
from erc.data.feature_file import load_features
from erc.data.graphs import GRAPH_KEYS
from erc.runtime.errors import InputError, run_stage
from erc.runtime.files import load_torch, save_torch
from erc.training.train import train_model
from erc.config.params import check_dataset, validate_params
from erc.evaluation.records import collect_records
from erc.training.teachers import load_teacher_logits

RUNS = Path("runs/seed_study")


def row_params(row: str, seeds: list[int]):
    """params.yaml with ``row``'s switches (mrl.enabled, mrl.shared, mkd.enabled) and ``seeds``, one worker."""
    switches = [k for k, v in ROWS.items() if v == row]
    if not switches:
        raise InputError(f"row {row!r}: not one of {', '.join(ROWS.values())}")
    (mrl, shared, mkd), = switches
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw = with_overrides(raw, {"mrl.enabled": mrl, "mrl.shared": shared, "mkd.enabled": mkd,
                               "train.seeds": seeds, "workers": 1})
    return validate_params(raw)


def parse_seeds(text: str) -> list[int]:
    """``0-19`` or ``0,3,7`` -> a list of seeds."""
    try:
        if "-" in text:
            first, last = (int(x) for x in text.split("-"))
            return list(range(first, last + 1))
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--seeds {text}: expected a range 0-19 or a list 0,3,7") from None


def run(dataset: str, row: str, seeds: list[int]) -> None:
    """Train each seed of ``row`` not yet in ``runs/seed_study``; save it as soon as it is done."""
    params = row_params(row, seeds)
    check_dataset(dataset, params)
    folder = RUNS / dataset / row_slug(row)
    todo = [s for s in seeds if not (folder / f"seed{s}.pt").is_file()]
    if not todo:
        print(f"{dataset} {row}: seeds {seeds[0]}..{seeds[-1]} all done")
        return
    feats = load_features(f"data/features/{dataset}.pt")  # test labels hidden
    graphs = load_torch(f"data/graphs/{dataset}.pt", "graph file", GRAPH_KEYS)
    teacher_logits = None
    if params.mkd.enabled:
        teacher_logits = load_teacher_logits(f"models/teachers/{dataset}.pt", list(feats.features),
                                             len(feats.labels))
    for seed in todo:
        start = time.time()
        one = params.model_copy(update={"train": params.train.model_copy(update={"seeds": [seed]})})
        checkpoint = train_model(dataset, feats, graphs, one, teacher_logits, progress=False)
        record = collect_records(checkpoint.runs)
        run_ = checkpoint.runs[seed]
        save_torch({"dataset": dataset, "row": row, "seed": seed, "epoch": run_["epoch"], "history": run_["history"],
                    "utterances": record["utterances"], "recorded": record["runs"][seed],
                    "sources": checkpoint.sources, "device": checkpoint.device}, folder / f"seed{seed}.pt")
        best = run_["history"][run_["epoch"] - 1]["valid_weighted_f1"]
        print(f"{dataset} {row} seed {seed}: epoch {run_['epoch']}, valid w-F1 {best:.2f} "
              f"({time.time() - start:.0f} s)", flush=True)


def main(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="python src/seed_study.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("run", help="train the missing seeds of one row on one dataset")
    train.add_argument("dataset")
    train.add_argument("row", help=f"one of: {', '.join(ROWS.values())}")
    train.add_argument("--seeds", default="0-19")
    sub.add_parser("report", help="score the records (test labels) and write the tables and figures")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.dataset, args.row, parse_seeds(args.seeds))
    else:
        from erc.reporting.seed_report import report  # the only part that reads test labels
        report()


if __name__ == "__main__":
    run_stage(main, datasets="any")
