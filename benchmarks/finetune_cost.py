"""Time and memory of the fine-tuning cost knobs, per encoder: seconds a training batch (forward, backward, AdamW
step) and the peak memory of the process, on IEMOCAP's training utterances as ``finetune_text`` batches them.

    python benchmarks/finetune_cost.py [--encoder minilm|mpnet|<HF id or folder>] [--batches 8] [--device cpu|cuda]

Each setting runs in a fresh process (so each peak is its own): the params.yaml recipe (batch 32, max_length 160),
then one knob changed at a time: ``accumulate`` 4, ``checkpointing``, ``freeze_layers`` half the layers,
``max_length`` 64, and on CUDA ``precision`` bf16 / fp16. Peak memory: the process's maximum resident set on a CPU
(model, optimiser state and activations), ``torch.cuda.max_memory_allocated`` on CUDA. Not a test: it prints
figures; run it with nothing else on the cores.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from erc.data.datasets import CLASSES, load_dialogues
from erc.features.utterance_encoder import Inputs, UtteranceClassifier, _batches, _rows_by_split, resolve_encoder
from erc.runtime.device import autocast
from erc.training.finetune import micro_batches
from erc.training.losses import task_loss

RECIPE = {"batch_size": 32, "max_length": 160, "accumulate": 1, "checkpointing": False, "freeze_layers": 0,
          "precision": "fp32"}


def one(encoder: str, setting: dict, batches: int, device: str) -> dict:
    """Seconds a batch (the first one, a warm-up, left out) and the peak memory in MiB of one setting."""
    from transformers import AutoTokenizer
    torch.set_num_threads(1)
    torch.manual_seed(0)
    folder = resolve_encoder(encoder)
    dialogues = load_dialogues("iemocap")
    inputs = Inputs(AutoTokenizer.from_pretrained(folder), dialogues, "iemocap", 0, setting["max_length"])
    labels = torch.tensor([y for d in dialogues for y in d.labels])
    train = _rows_by_split(dialogues)[0]["train"]
    model = UtteranceClassifier(folder, len(CLASSES["iemocap"]), setting["freeze_layers"],
                                setting["checkpointing"]).to(device).train()
    criterion = task_loss("weighted_nll", labels[train], len(CLASSES["iemocap"]), 0.0).to(device)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if setting["precision"] == "fp16" else None
    seconds = []
    for chunk in list(_batches(train, setting["batch_size"], torch.Generator().manual_seed(0)))[:batches + 1]:
        start = time.perf_counter()
        optimiser.zero_grad()
        for rows, share in micro_batches(chunk, criterion, labels, setting["accumulate"]):
            with autocast(torch.device(device), setting["precision"]):
                logits = model.logits(inputs, rows)
            loss = criterion(logits.float(), labels[rows].to(device)) * share
            (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(optimiser)
            scaler.update()
        else:
            optimiser.step()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    layers = model.encoder.config.num_hidden_layers
    return {"seconds": sum(seconds[1:]) / max(1, len(seconds) - 1), "peak_mib": peak, "layers": layers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a setting as JSON: run it here and print the result
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.encoder, json.loads(args.one), args.batches, args.device)))
        return
    depth = UtteranceClassifier(resolve_encoder(args.encoder), 1).encoder.config.num_hidden_layers
    changes = {"recipe": {}, "accumulate 4": {"accumulate": 4}, "checkpointing": {"checkpointing": True},
               f"freeze_layers {depth // 2}": {"freeze_layers": depth // 2}, "max_length 64": {"max_length": 64}}
    if args.device == "cuda":
        changes.update({"bf16": {"precision": "bf16"}, "fp16": {"precision": "fp16"}})
    print(f"{args.encoder} ({depth} layers) on {args.device}, batch {RECIPE['batch_size']} utterances, mean of "
          f"{args.batches} batches after one warm-up")
    print("| setting | s / batch | peak MiB |\n|---|---|---|")
    for name, change in changes.items():
        out = subprocess.run([sys.executable, __file__, "--encoder", args.encoder, "--batches", str(args.batches),
                              "--device", args.device, "--one", json.dumps({**RECIPE, **change})],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {name} | failed: {out.stderr.strip().splitlines()[-1]} | |", flush=True)
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {name} | {result['seconds']:.2f} | {result['peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
