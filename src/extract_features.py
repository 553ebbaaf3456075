"""Stage extract_features: python src/extract_features.py <dataset> -> data/features/<dataset>.pt"""
import sys
import time

from erc.features import extract, save_features
from erc.params import check_dataset, load_params


def main(dataset: str) -> None:
    params = load_params()
    start = time.time()
    feats = extract(check_dataset(dataset), params)
    save_features(feats, f"data/features/{dataset}.pt")
    shapes = {m: tuple(t.shape) for m, t in feats["features"].items()}
    print(f"{dataset}: {len(feats['dialogue_ids'])} dialogues, {len(feats['labels'])} utterances, "
          f"features {shapes}, {time.time() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
