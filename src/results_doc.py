"""docs/results.md from the committed run's metrics: python src/results_doc.py [--check]

Every table of the current run (headline, nesting sizes, teachers and student heads, text-only answers, references,
per seed, validation beside test), read from metrics/details/<dataset>.json, metrics/teachers/<dataset>.json,
metrics/table1.md and metrics/encoders.md (the text encoders compared, src/encoder_compare.py).
``--check`` exits non-zero when docs/results.md is not what the metrics give (a test runs it)."""
from __future__ import annotations

import json
from pathlib import Path

from erc.data.datasets import CLASSES
from erc.reporting.pages import markdown_table, write_or_check
from erc.config.params import DATASETS


def pm(summary: dict) -> str:
    return f"{summary['mean']:.2f} ± {summary['std']:.2f}"


def read(path: str) -> dict:
    return json.loads(Path(path).read_text())


def dataset_section(d: str) -> list[str]:
    m, teachers = read(f"metrics/details/{d}.json"), read(f"metrics/teachers/{d}.json")
    setup = m["setup"]
    seeds = setup["seeds"]
    out = [f"## {d.upper()}", "",
           f"Sources {', '.join(f'{k} `{v}`' for k, v in setup['sources'].items())}; MRL {setup['mrl']}, MRL-E "
           f"{setup['mrl_shared']}, MKD {setup['mkd']}; seeds {seeds}; devices "
           f"{', '.join(f'{k} {v}' for k, v in setup.get('device', {}).items())}.", "",
           "### Headline and nesting sizes (mean ± std over seeds)", ""]
    n_blocks = len(setup["sources"]) - list(setup["sources"].values()).count("none")
    widest = max((int(k) for k in m["nesting"]), default=None)
    rows = [[f"**prefix {size} a block (the full vector: headline)**" if int(size) == widest else f"prefix {size} a block",
             row["dim"], pm(row["valid"]["acc"]), pm(row["valid"]["weighted_f1"]), pm(row["test"]["acc"]),
             pm(row["test"]["weighted_f1"]), pm(row["test"]["macro_f1"])] for size, row in m["nesting"].items()]
    out += [markdown_table(["output", "dims", "valid Acc", "valid w-F1", "test Acc", "test w-F1", "test macro-F1"], rows),
            "", f"({n_blocks} modality blocks; a prefix of s a block gives s × {n_blocks} dims.)", "",
            "### Teachers, student heads and references (test w-F1; teachers and the logistic regression are one model)",
            ""]
    rows = [[f"{modality} teacher (frozen, unimodal MGLRA)", f"{t['valid']['weighted_f1']:.2f}", f"{t['test']['acc']:.2f}",
             f"{t['test']['weighted_f1']:.2f}", t["epoch"]] for modality, t in teachers.items()]
    rows += [[f"{modality} student head U_{modality}", pm(s["valid"]["weighted_f1"]), pm(s["test"]["acc"]),
              pm(s["test"]["weighted_f1"]), "model's"] for modality, s in m["students"].items()]
    refs = m["references"]
    rows.append([f"logistic regression (C = {refs['logreg']['C']})", pm(refs["logreg"]["valid"]["weighted_f1"]),
                 pm(refs["logreg"]["test"]["acc"]), pm(refs["logreg"]["test"]["weighted_f1"]), "—"])
    rows.append(["bc-LSTM", pm(refs["bc_lstm"]["valid"]["weighted_f1"]), pm(refs["bc_lstm"]["test"]["acc"]),
                 pm(refs["bc_lstm"]["test"]["weighted_f1"]), "per seed"])
    out.append(markdown_table(["model", "valid w-F1", "test Acc", "test w-F1", "kept epoch"], rows))
    answers = [k for k in m if k.startswith("text_only_") and k != "text_only_head"]
    if answers:
        out += ["", f"### Dialogues without audio (every utterance's audio marked missing; `mkd.text_only` answers with "
                    f"`{m.get('text_only_head')}`)", "",
                markdown_table(["answer", "valid w-F1", "test w-F1"],
                               [[key.removeprefix("text_only_"), pm(m[key]["valid"]["weighted_f1"]),
                                 pm(m[key]["test"]["weighted_f1"])] for key in answers])]
    out += protocol_section(m, teachers)
    rows = [[run["seed"], run["epoch"], f"{run['valid']['weighted_f1']:.2f}", f"{run['test']['acc']:.2f}",
             f"{run['test']['weighted_f1']:.2f}", *[f"{run['test']['per_class_f1'][c]:.1f}" for c in CLASSES[d]]]
            for run in m["per_seed"]]
    out += ["", "### Per seed (the epoch kept on validation)", "",
            markdown_table(["seed", "epoch", "valid w-F1", "test Acc", "test w-F1", *[f"F1 {c}" for c in CLASSES[d]]],
                           rows)]
    return out + [""]


def protocol_section(m: dict, teachers: dict) -> list[str]:
    """Both protocols (validation-picked: ours; test-picked: the paper's, measured only) and the seed ensemble."""
    if "protocols" not in m:
        return []

    def row(name, report):
        ours, paper = report["validation_picked"]["weighted_f1"], report["test_picked"]["weighted_f1"]
        return [name, len(report["per_run"]), pm(ours), pm(paper), f"{paper['median']:.2f} / {paper['best']:.2f}",
                f"{report['gap_weighted_f1']:+.2f}"]
    rows = [row("model", m["protocols"])]
    if "protocols" in m["references"]["bc_lstm"]:
        rows.append(row("bc-LSTM", m["references"]["bc_lstm"]["protocols"]))
    for modality, t in teachers.items():
        if "protocols" in t:
            p = t["protocols"]
            rows.append([f"{modality} teacher", 1, f"{p['test_at_valid_picked']['weighted_f1']:.2f}",
                         f"{p['test_at_test_picked']['weighted_f1']:.2f}", "",
                         f"{p['test_at_test_picked']['weighted_f1'] - p['test_at_valid_picked']['weighted_f1']:+.2f}"])
    ensemble = m["ensemble"]
    return ["", "### Both protocols (test w-F1; test-picked is the paper's protocol, measured from the per-epoch "
                "records (float16: a seed's validation-picked score there is within 0.04 of the float32 one), never used to choose)", "",
            markdown_table(["model", "runs", "validation-picked", "test-picked", "test-picked median / best", "gap"],
                           rows), "",
            f"Seed ensemble (the seeds' mean probabilities, each at its validation-picked epoch: what `predict.py` "
            f"serves): valid w-F1 {ensemble['valid']['weighted_f1']:.2f}, test Acc {ensemble['test']['acc']:.2f}, "
            f"test w-F1 {ensemble['test']['weighted_f1']:.2f}."]


def render() -> str:
    lines = ["# Results of the committed run", "",
             "Generated from `metrics/` by `python src/results_doc.py` (a test fails when it is out of date). Every "
             "figure: the committed `params.yaml`, `dvc repro`, test scored at the epoch with the best validation "
             "weighted F1, mean ± std over the seeds; test labels are read by `evaluate` only.", "",
             "**Intervals.** Δ figures (Table 1) are a paired cluster bootstrap over *test dialogues*: 1000 resamples "
             "of the dialogues with replacement, the seeds of each row resampled too, the same draw for both rows; "
             "mean difference and 95 % percentile interval (`erc.reporting.bootstrap.paired_bootstrap`). Utterances within a "
             "dialogue are not independent, so resampling utterances would give intervals too narrow.", ""]
    for d in DATASETS:
        if Path(f"metrics/details/{d}.json").is_file():
            lines += dataset_section(d)
    for path, title in (("metrics/table1.md", "Table 1"), ("metrics/encoders.md", "Text encoders")):
        if Path(path).is_file():  # written by src/table.py / src/encoder_compare.py
            body = Path(path).read_text().split("\n")
            lines += [f"## {title} ({path})", ""] + ["#" + line if line.startswith("## ") else line for line in body[1:]]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    write_or_check(render(), "docs/results.md", "python src/results_doc.py")


if __name__ == "__main__":
    main()
