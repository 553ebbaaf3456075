"""Seconds per training epoch and per evaluation pass, and peak memory, at the default params.

    python benchmarks/train_speed.py                 # IEMOCAP and MELD on the pipeline's features
    python benchmarks/train_speed.py --released-dims # IEMOCAP dialogue structure, random inputs of the
                                                     # released dims (text 4x1024, audio 1582, visual 342)
Runs on CUDA as well when it is available. Not a test: it prints figures.
"""
import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from erc.batching import DialogueData  # noqa: E402
from erc.features import load_features  # noqa: E402
from erc.graphs import build_graphs  # noqa: E402
from erc.io import load_torch  # noqa: E402
from erc.model import MGLRA  # noqa: E402
from erc.params import Params, load_params  # noqa: E402
from erc.training import build_objective, model_config, predict  # noqa: E402


def released_dims(feats: dict) -> dict:
    n = len(feats["labels"])
    g = torch.Generator().manual_seed(0)
    feats = dict(feats)
    feats["features"] = {"text": torch.randn(n, 4, 1024, generator=g), "audio": torch.randn(n, 1582, generator=g),
                         "visual": torch.randn(n, 342, generator=g)}
    return feats


def bench(dataset: str, device: torch.device, params: Params, released: bool, epochs: int) -> None:
    feats = load_features(f"data/features/{dataset}.pt")
    if released:
        feats = released_dims(feats)
        graphs = build_graphs(feats["lengths"].tolist(), 3)
    else:
        graphs = load_torch(f"data/graphs/{dataset}.pt")
    data = DialogueData(feats, graphs["multimodal"]).to(device)  # as fit does: features on the device once
    config = model_config(feats, params, dataset, use_mkd=False)
    model = MGLRA(**config).to(device)
    objective = build_objective(params, dataset, feats, len(config["nesting"]), use_mkd=False)
    objective.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, evals = [], []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for batch in data.batches("train", 16, shuffle=True):
            batch = batch.to(device)
            loss = objective(model(batch), batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        predict(model, data, "test", device)
        evals.append(time.perf_counter() - start)
    memory = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    label = f"{dataset}{' released dims' if released else ''} on {device.type}"
    print(f"{label:32s} train epoch {min(times):6.2f} s   test pass {min(evals):5.2f} s   "
          f"peak {'GPU' if device.type == 'cuda' else 'RSS'} memory {memory:.2f} GiB "
          f"(threads {torch.get_num_threads()}, best of {epochs})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--released-dims", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--datasets", nargs="+", default=["iemocap", "meld"])
    args = parser.parse_args()
    params = load_params()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for dataset in (["iemocap"] if args.released_dims else args.datasets):
            bench(dataset, device, params, args.released_dims, args.epochs)


if __name__ == "__main__":
    main()
