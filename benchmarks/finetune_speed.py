"""Seconds per fine-tuning batch (forward + backward, one CPU thread): one padded pass against the length-sorted
sub-batches that ``finetune_text`` runs (``erc.features.utterance_encoder.length_pieces``), on the pipeline's training utterances.

    python benchmarks/finetune_speed.py [--batches 15]

Prints, per dataset, the padded tokens over the real ones and the seconds a 32-utterance batch takes each way,
then the per-pass cost in tokens (``PIECE_OVERHEAD``) fitted to all measured passes: seconds = a · passes +
b · padded tokens, overhead = a / b. Not a test: it prints figures; run it with nothing else on the cores.
"""
import argparse
import time

import numpy as np
import torch

from erc.data.datasets import CLASSES, load_dialogues
from erc.features.utterance_encoder import (Inputs, UtteranceClassifier, _batches, _rows_by_split, base_encoder_dir,
                                            length_pieces)

BATCH, MAX_LENGTH = 32, 160  # params.yaml's finetune.batch_size and max_length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_dir("minilm-ft"))
    fits = []  # (passes, padded tokens, seconds) of every timed batch
    for dataset in ("iemocap", "meld"):
        dialogues = load_dialogues(dataset)
        inputs = Inputs(tokenizer, dialogues, dataset, 0, MAX_LENGTH)
        train = _rows_by_split(dialogues)[0]["train"]
        real = sum(len(inputs.ids[r]) for r in train)
        batches = list(_batches(train, BATCH, torch.Generator().manual_seed(0)))
        width = lambda rows: len(rows) * max(len(inputs.ids[r]) for r in rows)  # noqa: E731
        one = sum(width(b) for b in batches) / real
        cut = sum(width([b[k] for k in p]) for b in batches for p in length_pieces([len(inputs.ids[r]) for r in b]))
        torch.manual_seed(0)
        model = UtteranceClassifier(base_encoder_dir("minilm-ft"), len(CLASSES[dataset])).train()
        seconds = {"one pass": [], "sub-batches": []}
        for b in batches[:args.batches]:
            for mode in seconds:
                start = time.perf_counter()
                logits = model(inputs.batch(b)) if mode == "one pass" else model.logits(inputs, b)
                logits.sum().backward()
                seconds[mode].append(time.perf_counter() - start)
                pieces = [b] if mode == "one pass" else [[b[k] for k in p]
                                                         for p in length_pieces([len(inputs.ids[r]) for r in b])]
                fits.append((len(pieces), sum(width(p) for p in pieces), seconds[mode][-1]))
        print(f"{dataset}: padded / real tokens, one pass {one:.2f}, sub-batches {cut / real:.2f}; seconds a batch "
              f"(mean of {args.batches}): one pass {np.mean(seconds['one pass']):.2f}, sub-batches "
              f"{np.mean(seconds['sub-batches']):.2f}", flush=True)
    passes, tokens, time_ = map(np.array, zip(*fits))
    (a, b), *_ = np.linalg.lstsq(np.stack([passes, tokens], 1), time_, rcond=None)
    print(f"fitted: {a * 1e3:.1f} ms a pass + {b * 1e6:.1f} µs a padded token -> a pass costs {a / b:.0f} tokens "
          f"(PIECE_OVERHEAD)")


if __name__ == "__main__":
    main()
