"""Two text encoders compared on the same pipeline: validation and test of every model built on their features.

    # in the repository copy that ran it: keep a committed run as a record (metrics, test predictions, the
    # fine-tuned classifier's validation score, params and lock), as Table 1 keeps its rows
    python src/encoder_compare.py record REV metrics/encoders/mrl-mkd-mpnet-ft.json --row "MRL + MKD, MPNet-ft"
    # the comparison, per dataset, written as markdown (docs/results.md includes metrics/encoders.md)
    python src/encoder_compare.py table --out metrics/encoders.md --names MiniLM-ft MPNet-ft \\
        --pair MGLRA metrics/table1/mglra.json metrics/encoders/mglra-mpnet-ft.json \\
        --pair "MRL + MKD" metrics/table1/mrl-mkd.json metrics/encoders/mrl-mkd-mpnet-ft.json

Rows of the table: the fine-tuned classifier itself (its own head, validation only: test labels are read by
``evaluate`` alone and it does not score that head), the frozen text teacher (one model), the bc-LSTM reference
(its seeds), then each ``--pair`` (its seeds): validation and test w-F1 of each side, mean ± std, and for the pairs
the paired dialogue-level bootstrap Δ of test w-F1 (``erc.reporting.bootstrap.paired_bootstrap``, as Table 1's Δ).
The classifier, the teacher and the bc-LSTM are read from the first pair's records (``--references LABEL``: that
pair's). Chooses nothing: a report of finished runs.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from erc.data.datasets import CLASSES
from erc.reporting.bootstrap import paired_bootstrap
from erc.reporting.records import load_record, record_of, with_dialogues
from erc.reporting.runs import git_file, read_predictions
from erc.reporting.pages import markdown_table
from erc.runtime.errors import InputError
from erc.runtime.files import save_text


def kept_head(rev: str, d: str) -> dict | None:
    """The fine-tuned classifier's validation w-F1 at the epoch the stage kept (its best; the first of equals), from
    the DVCLive curve of the encoder on all training dialogues; None when the run has none."""
    curve = git_file(rev, f"plots/finetune/{d}/full/plots/metrics/valid_weighted_f1.tsv")
    if not curve:
        return None
    try:
        scores = [float(line.split("\t")[1]) for line in curve.strip().splitlines()[1:]]
    except (IndexError, ValueError):
        scores = []
    if not scores:
        raise InputError(f"{rev}:plots/finetune/{d}/full/plots/metrics/valid_weighted_f1.tsv: no epochs in it")
    best = int(np.argmax(scores))
    return {"valid_weighted_f1": scores[best], "epoch": best + 1, "per_epoch": scores}


def make_record(rev: str, out: Path, row: str) -> None:
    """The record of the run committed at ``rev`` (this repository), for every dataset its params run."""
    params = yaml.safe_load(git_file(rev, "params.yaml") or "null")
    if not isinstance(params, dict):
        raise InputError(f"{rev}:params.yaml not found")
    found, finetune = {}, {}
    for d in params.get("datasets") or list(CLASSES):
        metrics, preds = (git_file(rev, f"metrics/details/{d}.json"), git_file(rev, f"plots/{d}/test_predictions.csv"))
        if metrics is None or preds is None:
            raise InputError(f"{rev}: metrics/details/{d}.json or plots/{d}/test_predictions.csv not found")
        preds = with_dialogues(read_predictions(preds, rev, d), f"data/features/{d}.pt", rev)
        found[d] = {"exp": {"name": rev[:7], "rev": rev, "params": params}, "metrics": json.loads(metrics),
                    "preds": preds}
        finetune[d] = kept_head(rev, d)
    record = {**record_of(row, found), "finetune": finetune}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_text(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n", out)
    print(f"{out}: {row} at {rev[:7]} ({', '.join(found)})")


def pm(summary: dict | None, one_model: bool = False) -> str:
    if summary is None:
        return "—"
    return f"{summary['mean']:.2f}" if one_model else f"{summary['mean']:.2f} ± {summary['std']:.2f}"


def difference(a: dict | None, b: dict | None) -> str:
    """The second mean minus the first, or blank when either is missing."""
    return "" if a is None or b is None else f"{b['mean'] - a['mean']:+.2f}"


def side(record: dict, d: str, what: str) -> tuple[dict | None, dict | None]:
    """(valid, test) w-F1 summaries of one model in a record's metrics for dataset ``d``."""
    m = record["datasets"][d]["metrics"]
    if what == "classifier":
        head = (record.get("finetune") or {}).get(d)
        return ({"mean": head["valid_weighted_f1"], "std": 0.0} if head else None), None
    found = {"teacher": m.get("text_only_teacher"), "bc_lstm": (m.get("references") or {}).get("bc_lstm"),
             "model": m}[what]
    if found is None:
        return None, None
    return found["valid"]["weighted_f1"], found["test"]["weighted_f1"]


def predictions(path: str, d: str):
    exp = next((e for e in load_record(Path(path)) if f"plots/{d}/test_predictions.csv" in e["files"]), None)
    if exp is None:
        raise InputError(f"{path}: the record holds no {d} row")
    return read_predictions(exp["files"][f"plots/{d}/test_predictions.csv"], path, d)


def read_record(path: str) -> dict:
    """A record file (``record``, or a Table 1 record), checked to hold what the table reads."""
    try:
        record = json.loads(Path(path).read_text())
        for d, r in record["datasets"].items():
            for split in ("valid", "test"):
                float(r["metrics"][split]["weighted_f1"]["mean"])
    except OSError as err:
        raise InputError(f"{path}: {err.strerror}") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise InputError(f"{path}: not a run record ({type(err).__name__}: {err})") from None
    return record


def table(pairs: list[tuple[str, str, str]], names: list[str], n_boot: int, heads_from: str | None = None,
          references: str | None = None) -> str:
    records = [(label, read_record(a), read_record(b), a, b) for label, a, b in pairs]
    first = next((r for r in records if r[0] == references), None) if references else records[0]
    if first is None:
        raise InputError(f"--references {references!r}: no --pair of that label")
    if heads_from and not first[1].get("finetune"):  # a Table 1 record: the classifier's score from a commit
        first[1]["finetune"] = {d: kept_head(heads_from, d) for d in first[1]["datasets"]}
        if None in first[1]["finetune"].values():
            raise InputError(f"--heads-from {heads_from}: no fine-tuning curve (plots/finetune) in that commit")
    datasets = [d for d in first[1]["datasets"] if all(d in r[1]["datasets"] and d in r[2]["datasets"]
                                                       for r in records)]
    header = ["model", f"{names[0]} valid", f"{names[0]} test", f"{names[1]} valid", f"{names[1]} test",
              "Δ valid", "Δ test w-F1 [95 %]"]
    out = [f"# Text encoders: {names[0]} vs {names[1]} (w-F1 %, mean ± std over seeds)", "",
           "Written by `python src/encoder_compare.py table` from the records in `metrics/table1/` and "
           "`metrics/encoders/`. Δ: the second minus the first, paired bootstrap over test dialogues with the seeds "
           f"resampled ({n_boot} resamples), as Table 1's; Δ valid: the difference of the validation means. The classifier is the fine-tuned encoder's own head "
           "(validation only); the teacher is one model; the classifier, the teacher and the bc-LSTM are read from "
           f"the '{first[0]}' runs" + (f"; the first encoder's classifier from commit {heads_from}'s run"
                                          if heads_from else "") + ".", ""]
    for d in datasets:
        rows = []
        for label, what in (("fine-tuned classifier (its head)", "classifier"), ("text teacher", "teacher"),
                            ("bc-LSTM", "bc_lstm")):
            (va, ta), (vb, tb) = side(first[1], d, what), side(first[2], d, what)
            one = what != "bc_lstm"
            rows.append([label, pm(va, one), pm(ta, one), pm(vb, one), pm(tb, one), difference(va, vb),
                         difference(ta, tb) + (" (means)" if ta and tb else "")])
        for label, a, b, path_a, path_b in records:
            (va, ta), (vb, tb) = side(a, d, "model"), side(b, d, "model")
            point, low, high = paired_bootstrap(predictions(path_b, d), predictions(path_a, d), len(CLASSES[d]),
                                                n_boot=n_boot)
            rows.append([label, pm(va), pm(ta), pm(vb), pm(tb), difference(va, vb),
                         f"{point[1]:+.2f} [{low[1]:+.2f}, {high[1]:+.2f}]"])
        out += [f"## {d.upper()}", "", markdown_table(header, rows), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="keep the run committed at REV as a record")
    rec.add_argument("rev")
    rec.add_argument("out", type=Path)
    rec.add_argument("--row", required=True, help="the row's name")
    tab = sub.add_parser("table", help="the comparison as markdown")
    tab.add_argument("--pair", nargs=3, action="append", required=True, metavar=("LABEL", "FIRST", "SECOND"))
    tab.add_argument("--names", nargs=2, default=["first", "second"])
    tab.add_argument("--out", type=Path)
    tab.add_argument("--references", metavar="LABEL", help="the pair whose runs give the classifier, teacher and "
                     "bc-LSTM rows (default: the first)")
    tab.add_argument("--heads-from", metavar="REV",
                     help="the first side's classifier scores from this commit's plots/finetune (a Table 1 record lacks them)")
    tab.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    try:
        if args.command == "record":
            make_record(args.rev, args.out, args.row)
            return
        text = table(args.pair, args.names, args.n_boot, args.heads_from, args.references)
    except InputError as err:
        sys.exit(f"error: {err}")
    if args.out:
        save_text(text + "\n", args.out)
    print(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
