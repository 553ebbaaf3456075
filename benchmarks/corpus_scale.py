"""A corpus the size of MELD through the whole pipeline: wall time and memory peak of ``dvc repro`` on it.

    python benchmarks/corpus_scale.py WORK [--dataset meld] [--relabel SEED]

Copies the project's tracked files into WORK, exports a built-in dataset as a corpus file
(``data/corpora/big.csv``, the format of docs/corpora.md; ``--relabel`` shuffles the labels within each split,
a corpus nobody has seen), registers it as ``big`` (``like`` the dataset it came from) with ``datasets: [big]``,
and runs ``dvc repro`` there, sampling the resident memory of the whole process tree every half second. Prints the
wall time, the peak of the tree's summed RSS and of its largest process, and the corpus's test metrics.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import yaml

from erc.data.corpus import builtin_speaker_name, write_corpus
from erc.data.datasets import CLASSES, load_dialogues
from erc.runtime.project import copy_project

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(root: psutil.Process) -> tuple[int, int]:
    """(summed RSS, largest RSS) in bytes of ``root`` and its descendants."""
    sizes = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            sizes.append(proc.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
    return sum(sizes), max(sizes, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--dataset", default="meld", choices=["iemocap", "meld"])
    parser.add_argument("--relabel", type=int, default=None, help="shuffle labels within each split with this seed")
    args = parser.parse_args()
    if args.work.exists():
        sys.exit(f"error: {args.work} exists; give a new folder")
    copy_project(ROOT, args.work)
    dialogues = load_dialogues(args.dataset, ROOT / "data" / "raw")
    if args.relabel is not None:
        rng = np.random.default_rng(args.relabel)
        for split in ("train", "valid", "test"):
            chosen = [d for d in dialogues if d.split == split]
            pool = rng.permutation([y for d in chosen for y in d.labels]).tolist()
            for d in chosen:
                d.labels, pool = pool[:len(d)], pool[len(d):]
    write_corpus(dialogues, CLASSES[args.dataset], builtin_speaker_name(args.dataset),
                 args.work / "data" / "corpora" / "big.csv")
    params = yaml.safe_load((args.work / "params.yaml").read_text())
    params["datasets"] = ["big"]
    params["corpora"] = {"big": {"path": "data/corpora/big.csv", "labels": CLASSES[args.dataset],
                                 "speakers": "per_dialogue", "like": args.dataset}}
    (args.work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run("git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm big",
                   cwd=args.work, shell=True, check=True)
    n = sum(len(d) for d in dialogues)
    print(f"corpus: {len(dialogues)} dialogues, {n} utterances ({args.dataset} exported"
          f"{', relabelled' if args.relabel is not None else ''})", flush=True)
    start, peak_sum, peak_one = time.time(), 0, 0
    with open(args.work / "repro.log", "w") as log:
        proc = subprocess.Popen(["dvc", "repro"], cwd=args.work, stdout=log, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            total, largest = tree_rss(root)
            peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
            time.sleep(0.5)
    wall = time.time() - start
    if proc.returncode:
        sys.exit(f"error: dvc repro failed (exit {proc.returncode}); see {args.work / 'repro.log'}")
    metrics = json.loads((args.work / "metrics" / "big.json").read_text())
    print(f"dvc repro: {wall / 60:.1f} min wall; memory peak {peak_sum / 2**30:.2f} GiB summed over the process "
          f"tree, {peak_one / 2**30:.2f} GiB in one process")
    print("test:", json.dumps({k: round(v["mean"], 2) for k, v in metrics["test"].items()}))


if __name__ == "__main__":
    main()
