"""Stage build_graphs: python src/build_graphs.py <dataset> -> data/graphs/<dataset>.pt"""

from erc.data.feature_file import load_features
from erc.data.graphs import build_graphs
from erc.runtime.errors import run_stage
from erc.runtime.files import save_torch
from erc.config.params import check_dataset, load_params


def main(dataset: str) -> None:
    params = load_params()
    check_dataset(dataset, params)
    feats = load_features(f"data/features/{dataset}.pt")
    graphs = build_graphs(feats.lengths.tolist(), len(feats.features),
                          params.graphs.window_past, params.graphs.window_future)
    save_torch(graphs, f"data/graphs/{dataset}.pt")
    edges = sum(g.num_edges for g in graphs["multimodal"])
    print(f"{dataset}: {len(graphs['multimodal'])} dialogue graphs, {edges} multimodal edges")


if __name__ == "__main__":
    run_stage(main)
