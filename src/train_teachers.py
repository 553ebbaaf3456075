"""Stage train_teachers: python src/train_teachers.py <dataset> -> models/teachers/<dataset>.pt
One unimodal teacher per modality, selected on validation; its logits for every utterance are cached."""

from erc.data.feature_file import load_features
from erc.data.graphs import GRAPH_KEYS
from erc.runtime.files import load_torch, save_torch
from erc.runtime.errors import run_stage
from erc.runtime.live import staged_curves
from erc.config.params import check_dataset, load_params
from erc.evaluation.records import collect_records, epochs_path
from erc.training.teachers import train_teachers


def main(dataset: str) -> None:
    params = load_params()
    check_dataset(dataset, params)
    feats = load_features(f"data/features/{dataset}.pt")  # test labels hidden
    graphs = load_torch(f"data/graphs/{dataset}.pt", "graph file", GRAPH_KEYS)
    with staged_curves(f"plots/teachers/{dataset}") as live_factory:  # the curves: whole or absent
        teachers = train_teachers(dataset, feats, graphs, params, live_factory=live_factory)
    records = collect_records(teachers)  # each teacher's per-epoch test probabilities, out of the teacher file
    save_torch(teachers, f"models/teachers/{dataset}.pt")
    save_torch(records, epochs_path(f"models/teachers/{dataset}.pt"))
    for m, t in teachers.items():
        best = t["history"][t["epoch"] - 1]
        print(f"{dataset} {m} teacher: epoch {t['epoch']}, valid w-F1 {best['valid_weighted_f1']:.2f}")


if __name__ == "__main__":
    run_stage(main)
