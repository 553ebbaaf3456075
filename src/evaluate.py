"""Stage evaluate: python src/evaluate.py <dataset> -> metrics/<dataset>.json (the headline figures),
metrics/details/<dataset>.json (per nesting size, student head, seed, references), metrics/teachers/<dataset>.json,
plots/<dataset>/. The only stage that reads test labels."""

import torch

from erc.evaluation import evaluate as ev
from erc.runtime.device import stage_device
from erc.data.feature_file import load_features
from erc.models.checkpoint import Checkpoint
from erc.data.graphs import GRAPH_KEYS
from erc.runtime.files import load_torch, save_json
from erc.runtime.errors import run_stage
from erc.config.params import check_dataset, load_params
from erc.evaluation.records import both_protocols, epochs_path, load_records


def main(dataset: str) -> None:
    params = load_params()
    text_only, device = params.for_dataset(check_dataset(dataset, params)).mkd.text_only, stage_device(params)
    feats = load_features(f"data/features/{dataset}.pt", hide_test_labels=False)
    graphs = load_torch(f"data/graphs/{dataset}.pt", "graph file", GRAPH_KEYS)
    checkpoint = Checkpoint.load(f"models/{dataset}.pt")
    teacher_file = f"models/teachers/{dataset}.pt"
    teacher_models = load_torch(teacher_file, "teacher file")
    teachers = ev.evaluate_teachers(teacher_models, feats, teacher_file)
    metrics, test_predictions = ev.evaluate_model(checkpoint, feats, graphs, text_only,
                                                  teacher_models.get("text", {}).get("logits"), device)
    references = load_torch(f"models/references/{dataset}.pt", "reference file", ("logreg", "bc_lstm"))
    metrics["references"] = ev.evaluate_references(references, feats)
    # the paper's protocol beside ours, measured on the per-epoch test records: reported, never used to pick
    labels, classes = feats.labels, feats.classes
    runs = {"model": ({seed: run["epoch"] for seed, run in checkpoint.runs.items()}, f"models/{dataset}.pt"),
            "bc_lstm": ({seed: r["epoch"] for seed, r in references["bc_lstm"].items()},
                        f"models/references/{dataset}.pt"),
            "teachers": ({m: t["epoch"] for m, t in teacher_models.items()}, teacher_file)}
    protocols = {name: both_protocols(load_records(epochs_path(path), len(classes)), labels, classes, epochs)
                 for name, (epochs, path) in runs.items()}
    metrics["protocols"] = protocols["model"]
    metrics["references"]["bc_lstm"]["protocols"] = protocols["bc_lstm"]
    for run in protocols["teachers"]["per_run"]:
        teachers[run["run"]]["protocols"] = {k: v for k, v in run.items() if k != "run"}
    mrl, mkd = checkpoint.mrl, checkpoint.mkd
    metrics["setup"] = {"sources": checkpoint.sources, "mrl": mrl["enabled"], "mrl_shared": mrl["shared"],
                        "mkd": mkd["enabled"], "seeds": [run["seed"] for run in metrics["per_seed"]],
                        "device": ev.devices(feats, checkpoint, teacher_models, references, device)}
    save_json(metrics, f"metrics/details/{dataset}.json")
    save_json(ev.headline(metrics), f"metrics/{dataset}.json")
    save_json(teachers, f"metrics/teachers/{dataset}.json")

    out = f"plots/{dataset}"
    labels = torch.cat([p[0] for p in test_predictions.values()])
    predictions = torch.cat([p[1] for p in test_predictions.values()])
    ev.confusion_plots(labels, predictions, feats.classes, out)
    variant = "MRL-E" if mrl["enabled"] and mrl["shared"] else "MRL" if mrl["enabled"] else "MGLRA"
    ev.nesting_plots(metrics, variant, out)
    ev.modality_plots(teachers, metrics["students"], out)
    ev.curve_plots(checkpoint, out)
    ev.prediction_table(test_predictions, feats, out)  # for paired bootstrap comparisons between experiments
    print(ev.markdown_summary(dataset, metrics))


if __name__ == "__main__":
    run_stage(main)
