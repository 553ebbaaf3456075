"""Markdown table of ``benchmarks/probe.py --out`` runs: per setting, the selected held-out w-F1 per session
(mean over seeds), the mean and std of the per-seed means over sessions, and the peak mean. Runs on the standard
validation split (no session) give the best validation w-F1 (the selected epoch's) per seed, mean ± std. Runs that measured it
add the selected model's w-F1 with every audio marked missing ("text-only") and the text teacher's on the same
utterances.

    python benchmarks/probe_table.py runs.jsonl [more.jsonl ...] [--per-class]
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict


def text_cells(rs: list[dict]) -> list[str]:
    """Mean text-only w-F1 and mean text-teacher w-F1 over the runs that have them ("—" where none)."""
    cells = []
    for key in ("text_only", "text_teacher"):
        vals = [r[key] for r in rs if key in r]
        cells.append(f"{statistics.mean(vals):.2f}" if vals else "—")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--per-class", action="store_true", help="also the mean per-class F1 of the selected epochs")
    args = parser.parse_args()
    runs = []
    for name in args.files:
        try:
            with open(name) as f:
                runs += [json.loads(line) for line in f if line.strip()]
        except (OSError, json.JSONDecodeError) as err:
            sys.exit(f"error: {name}: {err}")
    by_setting = defaultdict(list)
    for r in runs:
        by_setting[r["run"]].append(r)
    sessions = sorted({r["session"] for r in runs if r.get("session")})
    if not sessions:  # standard validation: the selected epoch's validation w-F1 per seed
        print("| setting | " + " | ".join(f"seed {s}" for s in sorted({r["seed"] for r in runs})) +
              " | valid w-F1, mean ± std | last-10 mean | text-only | text teacher |")
        print("|" + "---|" * (len({r["seed"] for r in runs}) + 5))
        for setting, rs in by_setting.items():
            by_seed = {r["seed"]: r["best"] for r in rs}
            cells = [f"{by_seed[s]:.2f}" if s in by_seed else "—" for s in sorted({r["seed"] for r in runs})]
            values = list(by_seed.values())
            spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells += [f"**{statistics.mean(values):.2f}**{spread}", f"{statistics.mean(r['last10'] for r in rs):.2f}",
                      *text_cells(rs)]
            print(f"| {setting} | " + " | ".join(cells) + " |")
        return
    header = ["setting", *sessions, "selected, mean ± seed std", "peak, mean", "text-only", "text teacher", "runs"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for setting, rs in by_setting.items():
        cells = []
        for s in sessions:
            vals = [r["selected"] for r in rs if r["session"] == s]
            cells.append(f"{statistics.mean(vals):.2f}" if vals else "—")
        seeds = sorted({r["seed"] for r in rs})
        # per seed: the mean over the sessions it ran (leave-one-session-out), then mean ± std over seeds
        per_seed = [statistics.mean(r["selected"] for r in rs if r["seed"] == s) for s in seeds]
        spread = f" ± {statistics.stdev(per_seed):.2f}" if len(per_seed) > 1 else ""
        peak = statistics.mean(r["best"] for r in rs)
        cells += [f"**{statistics.mean(per_seed):.2f}**{spread}", f"{peak:.2f}", *text_cells(rs), str(len(rs))]
        print(f"| {setting} | " + " | ".join(cells) + " |")
    with_classes = [r for r in runs if "selected_per_class" in r]  # runs before per-class scores had none
    if args.per_class and with_classes:
        classes = list(with_classes[0]["selected_per_class"])
        print("\n| setting | " + " | ".join(classes) + " |")
        print("|" + "---|" * (len(classes) + 1))
        for setting, rs in by_setting.items():
            rs = [r for r in rs if "selected_per_class" in r]
            if not rs:
                continue
            means = [statistics.mean(r["selected_per_class"][c] for r in rs) for c in classes]
            print(f"| {setting} | " + " | ".join(f"{m:.1f}" for m in means) + " |")


if __name__ == "__main__":
    main()
