"""Table 1 of the paper from DVC experiments: test Acc / weighted F1 (mean ± std over seeds) per method,
the paper's numbers beside ours, each row's paired cluster bootstrap difference against MGLRA, and the paper's
protocol beside ours. The parts: ``rows`` (names, params), ``runs`` (experiments and their files), ``records``
(the committed rows), ``bootstrap``, ``queue`` (running the missing rows)."""
from __future__ import annotations

import json

from erc.config import params as erc_params
from erc.config.params import flatten
from erc.reporting.bootstrap import paired_bootstrap
from erc.reporting.pages import markdown_table
from erc.reporting.records import with_dialogues
from erc.reporting.rows import (EXTRA_ROWS, PAPER, REFERENCE_ROWS, ROWS, SWITCHES, datasets_of, differences,
                                n_classes_of, row_name, same_setup, with_overrides)
from erc.reporting.runs import exp_file, read_predictions, run_device, same_inputs
from erc.runtime.errors import InputError


def find_rows(experiments: list[dict], reference_params: dict, defaults: dict | None = None,
              inputs: dict | None = None, devices: dict | None = None) -> dict:
    """(row name, dataset) -> the first experiment with ``reference_params`` but for the three switches whose
    metrics and test predictions exist (and whose predictions hold the seeds its params name). With ``inputs``
    (dataset -> ``run_inputs`` of the reference run), only experiments whose training and evaluation read the same
    files and params count: equal params.yaml on other features or code (a re-fine-tuned encoder) is another run.
    With ``devices`` (dataset -> ``run_device`` of the reference run), only runs on the same device count: CUDA's
    kernels give other numbers than the CPU's for the same params (``device: auto`` reads the same on both)."""
    defaults = erc_params.flat_defaults() if defaults is None else defaults
    rows = {}  # (row name, dataset) -> what the experiment produced for that dataset
    variants = {name: with_overrides(reference_params, o) for name, o in EXTRA_ROWS.items()}
    for exp in experiments:  # the first entry found for a configuration is kept
        extra = next((name for name, variant in variants.items() if same_setup(exp["params"], variant, defaults)
                      and all(flatten(exp["params"]).get(k, defaults.get(k)) == v
                              for k, v in EXTRA_ROWS[name].items() if k in SWITCHES)), None)
        if extra is None and not same_setup(exp["params"], reference_params, defaults):
            continue
        matching = same_inputs(exp, inputs, code_only=extra is not None, datasets=datasets_of(reference_params))
        for d in datasets_of(reference_params):
            if not matching[d]:
                continue
            # the detail file since the headline split; before it, metrics/<d>.json held everything
            metrics = exp_file(exp, f"metrics/details/{d}.json") or exp_file(exp, f"metrics/{d}.json")
            preds = exp_file(exp, f"plots/{d}/test_predictions.csv")
            if metrics and preds:
                where = f"{exp['name']} ({exp['rev'][:7]})"
                try:
                    metrics = json.loads(metrics)
                except json.JSONDecodeError as err:
                    raise InputError(f"{where}: metrics/{d}.json is unreadable ({err})") from None
                preds = read_predictions(preds, where, d)
                seeds = flatten(exp["params"]).get("train.seeds", defaults.get("train.seeds"))
                if seeds is not None and sorted(preds["seed"].unique().tolist()) != sorted(seeds):
                    continue  # a commit whose params changed without a rerun: its outputs are another run's
                if devices and devices.get(d) and run_device(metrics) != devices[d]:
                    continue  # the same params run on another device: another run
                setup = metrics.get("setup", {})  # what actually ran (an experiment may rerun one dataset only)
                name = extra or row_name({"mrl": {"enabled": setup.get("mrl"), "shared": setup.get("mrl_shared")},
                                          "mkd": {"enabled": setup.get("mkd")}})
                rows.setdefault((name, d), {"exp": exp, "metrics": metrics, "preds": preds})
    return rows


def no_rows_reason(experiments: list[dict], reference_params: dict, defaults: dict, inputs: dict | None = None) -> str:
    """One line on why no experiment gave a row: none found, none with the current params, none on the current
    inputs, or no outputs."""
    if not experiments:
        return "no experiment matches the current params.yaml (0 experiments found; run the rows first, README \"Table 1\")"
    diffs = [(differences(e["params"], reference_params, defaults), e["name"]) for e in experiments]
    nearest, name = min(diffs, key=lambda d: len(d[0]))
    checked = [d for d in (inputs or {}) if inputs.get(d) is not None]
    candidates = [e for e in experiments if same_setup(e["params"], reference_params, defaults)]
    if not nearest and checked and not any(any(same_inputs(e, inputs)[d] for d in checked) for e in candidates):
        return (f"no experiment matching the current params.yaml ran on the current inputs (the deps and params "
                f"that dvc.lock records for train and evaluate; {len(experiments)} experiments found; run the rows "
                f"again: python src/table.py --run)")
    if not nearest:
        return (f"no experiment matching the current params.yaml has metrics/<dataset>.json and "
                f"plots/<dataset>/test_predictions.csv ({len(experiments)} experiments found)")
    shown = ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in list(nearest.items())[:3])
    more = f" and {len(nearest) - 3} more" if len(nearest) > 3 else ""
    return (f"no experiment matches the current params.yaml ({len(experiments)} experiments found; the nearest, "
            f"{name}, differs in {shown}{more})")


def build_table(experiments: list[dict], reference_params: dict, n_boot: int = 1000, defaults: dict | None = None,
                features: str = "data/features/{dataset}.pt", inputs: dict | None = None,
                devices: dict | None = None) -> str:
    """Rows from the experiments whose params equal ``reference_params`` but for the three switches (and, with
    ``inputs``, that read the same files: ``find_rows``); InputError when there is none. ``defaults`` (dotted key
    -> default) default to the params schema's."""
    defaults = erc_params.flat_defaults() if defaults is None else defaults
    rows = find_rows(experiments, reference_params, defaults, inputs, devices)
    if not rows:
        raise InputError(no_rows_reason(experiments, reference_params, defaults, inputs))
    lines = ["# Table 1: test Acc / weighted F1 (%), mean ± std over seeds", "",
             "Paper numbers use RoBERTa-large text and openSMILE audio; ours use the pipeline's features "
             "(params.yaml `features`). Δ vs MGLRA: paired cluster bootstrap over test dialogues with the seeds "
             f"resampled too ({n_boot} resamples), mean difference and 95 % interval.", ""]
    lines[-2] += (" Ensemble: the mean of the seeds' probabilities, each at its validation-picked epoch (what "
                  "predict.py serves). Paper protocol: each seed's epoch picked on the test set (a measurement, "
                  "chosen by nothing), median / best of the seeds, and their Δ against MGLRA's median.")
    header = ["method", "experiment", "seeds", "Acc", "w-F1", "paper Acc / w-F1", "Δ Acc vs MGLRA", "Δ w-F1 vs MGLRA",
              "ensemble w-F1 (Δ)", "paper protocol w-F1: median / best", "Δ paper protocol: median / best"]


    def pm(score: dict) -> str:
        return f"{score['mean']:.2f} ± {score['std']:.2f}"


    for d in datasets_of(reference_params):
        n_classes, cells = None, []
        for name in [*ROWS.values(), *EXTRA_ROWS]:
            paper = PAPER.get((name, d))
            paper = f"{paper[0]:.2f} / {paper[1]:.2f}" if paper else "—"
            if (name, d) not in rows:
                cells.append([name, "not run", "", "", "", paper, "", "", "", "", ""])
                continue
            r = rows[(name, d)]
            delta = ["", ""]
            if name != "MGLRA" and ("MGLRA", d) in rows:
                row, base = (with_dialogues(x["preds"], features.format(dataset=d),
                                            f"{x['exp']['name']}'s plots/{d}/test_predictions.csv")
                             for x in (r, rows[("MGLRA", d)]))
                n_classes = n_classes or n_classes_of(d, features.format(dataset=d))
                point, low, high = paired_bootstrap(row, base, n_classes, n_boot)
                delta = [f"{point[i]:+.2f} [{low[i]:+.2f}, {high[i]:+.2f}]" for i in range(2)]
            test = r["metrics"]["test"]
            base = rows[("MGLRA", d)]["metrics"] if ("MGLRA", d) in rows else {}
            cells.append([name, r["exp"]["name"], r["preds"]["seed"].nunique(), pm(test["acc"]),
                          pm(test["weighted_f1"]), paper, *delta, *protocol_cells(r["metrics"], base)])
        reference = next((rows[(n, d)] for n in ["MRL + MKD", *ROWS.values()] if (n, d) in rows), None)
        for name, key in REFERENCE_ROWS.items():  # trained by train_references on the rows' own features
            ref = (reference["metrics"].get("references") or {}).get(key) if reference else None
            if ref:
                seeds = reference["preds"]["seed"].nunique() if key == "bc_lstm" else 1
                cells.append([name, reference["exp"]["name"], seeds, pm(ref["test"]["acc"]),
                              pm(ref["test"]["weighted_f1"]), "—", "", "",
                              *protocol_cells(ref, rows[("MGLRA", d)]["metrics"] if ("MGLRA", d) in rows else {})])
        lines += [f"## {d.upper()}", "", markdown_table(header, cells), ""]
    return "\n".join(lines)


def protocol_cells(metrics: dict, base: dict) -> list[str]:
    """Ensemble w-F1 (Δ), the paper protocol's median / best w-F1, and its Δ against ``base``'s (MGLRA's) median;
    "—" for a run made before the per-epoch records existed."""
    ensemble = (metrics.get("ensemble") or {}).get("test", {}).get("weighted_f1")
    base_ensemble = (base.get("ensemble") or {}).get("test", {}).get("weighted_f1")
    cells = ["—" if ensemble is None else f"{ensemble:.2f}" + (
        f" ({ensemble - base_ensemble:+.2f})" if base_ensemble is not None and base is not metrics else "")]
    picked = ((metrics.get("protocols") or {}).get("test_picked") or {}).get("weighted_f1")
    base_picked = ((base.get("protocols") or {}).get("test_picked") or {}).get("weighted_f1")
    cells.append("—" if picked is None else f"{picked['median']:.2f} / {picked['best']:.2f}")
    cells.append("" if picked is None or base_picked is None or base is metrics else
                 f"{picked['median'] - base_picked['median']:+.2f} / {picked['best'] - base_picked['median']:+.2f}")
    return cells
