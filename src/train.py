"""Stage train: python src/train.py <dataset> -> models/<dataset>.pt
MGLRA with MRL / MRL-E and MKD as params.yaml says, one run per seed, each kept at its best validation epoch."""

from erc.data.feature_file import load_features
from erc.data.graphs import GRAPH_KEYS
from erc.runtime.files import load_torch, save_torch
from erc.runtime.errors import run_stage
from erc.runtime.live import staged_curves
from erc.config.params import check_dataset, load_params
from erc.evaluation.records import collect_records, epochs_path
from erc.training.train import train_model
from erc.training.teachers import load_teacher_logits


def main(dataset: str) -> None:
    params = load_params()
    check_dataset(dataset, params)
    feats = load_features(f"data/features/{dataset}.pt")  # test labels hidden
    graphs = load_torch(f"data/graphs/{dataset}.pt", "graph file", GRAPH_KEYS)
    teacher_logits = None
    if params.mkd.enabled:
        teacher_logits = load_teacher_logits(f"models/teachers/{dataset}.pt", list(feats.features), len(feats.labels))
    with staged_curves(f"plots/train/{dataset}") as live_factory:  # the curves: whole or absent
        checkpoint = train_model(dataset, feats, graphs, params, teacher_logits, live_factory=live_factory)
    records = collect_records(checkpoint.runs)  # each seed's per-epoch test probabilities, out of the checkpoint
    checkpoint.save(f"models/{dataset}.pt")
    save_torch(records, epochs_path(f"models/{dataset}.pt"))
    for seed, run in checkpoint.runs.items():
        best = run["history"][run["epoch"] - 1]
        print(f"{dataset} seed {seed}: epoch {run['epoch']}, valid w-F1 {best['valid_weighted_f1']:.2f}")


if __name__ == "__main__":
    run_stage(main)
