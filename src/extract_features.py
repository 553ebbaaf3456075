"""Stage extract_features: python src/extract_features.py <dataset> -> data/features/<dataset>.pt"""
import time

from erc.features.extract import extract
from erc.runtime.errors import run_stage
from erc.config.params import check_dataset, load_params


def main(dataset: str) -> None:
    params = load_params()
    start = time.time()
    feats = extract(check_dataset(dataset, params), params)
    feats.save(f"data/features/{dataset}.pt")
    shapes = {m: tuple(t.shape) for m, t in feats.features.items()}
    print(f"{dataset}: {len(feats.dialogue_ids)} dialogues, {len(feats.labels)} utterances, "
          f"features {shapes}, {time.time() - start:.1f} s")


if __name__ == "__main__":
    run_stage(main)
