"""Stage train_references: python src/train_references.py <dataset> -> models/references/<dataset>.pt
Logistic regression and bc-LSTM on the same features, selected on validation."""

from erc.data.feature_file import load_features
from erc.data.graphs import GRAPH_KEYS
from erc.runtime.files import load_torch, save_torch
from erc.runtime.errors import run_stage
from erc.config.params import check_dataset, load_params
from erc.evaluation.records import collect_records, epochs_path
from erc.training.references import train_references


def main(dataset: str) -> None:
    params = load_params()
    check_dataset(dataset, params)
    feats = load_features(f"data/features/{dataset}.pt")  # test labels hidden
    graphs = load_torch(f"data/graphs/{dataset}.pt", "graph file", GRAPH_KEYS)
    references = train_references(dataset, feats, graphs, params)
    records = collect_records(references["bc_lstm"])  # each bc-LSTM seed's per-epoch test probabilities
    save_torch(references, f"models/references/{dataset}.pt")
    save_torch(records, epochs_path(f"models/references/{dataset}.pt"))


if __name__ == "__main__":
    run_stage(main)
