"""Validation-only probe of the learning rate for plain MGLRA (no MRL, no MKD): prints the best validation
weighted F1 and its epoch per lr. Test labels are hidden (load_features), so this cannot peek at test.

    python benchmarks/lr_probe.py iemocap 1e-4 3e-4 1e-3 --seed 0
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from erc.batching import DialogueData  # noqa: E402
from erc.features import load_features  # noqa: E402
from erc.io import load_torch  # noqa: E402
from erc.model import MGLRA  # noqa: E402
from erc.params import load_params  # noqa: E402
from erc.runs import train_settings  # noqa: E402
from erc.training import build_objective, fit, model_config, seed_everything  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("lrs", nargs="+", type=float)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = load_params()
    feats = load_features(f"data/features/{args.dataset}.pt")
    data = DialogueData(feats, load_torch(f"data/graphs/{args.dataset}.pt")["multimodal"])
    for lr in args.lrs:
        settings = dict(train_settings(params, args.dataset), lr=lr)
        seed_everything(args.seed)
        config = model_config(feats, params, args.dataset, use_mrl=False, use_mkd=False)
        objective = build_objective(params, args.dataset, feats, 1, use_mkd=False)
        result = fit(MGLRA(**config), data, objective, feats["classes"], seed=args.seed, device="cpu",
                     progress=False, **settings)
        best = result["history"][result["epoch"] - 1]
        print(f"{args.dataset} lr {lr:g}: best valid w-F1 {best['valid_weighted_f1']:.2f} at epoch {result['epoch']}"
              f"/{settings['epochs']}")


if __name__ == "__main__":
    main()
