"""Stage finetune_text: python src/finetune_text.py <dataset> -> models/finetuned/<dataset>/

With features.text minilm-ft / mpnet-ft: fine-tunes the encoder on the training utterances (and, with
finetune.folds >= 2, one encoder per fold without it), epochs chosen on validation; test labels are hidden
before anything runs. With any other text source it writes a note saying it was not needed."""
import json
import shutil
import tempfile
from pathlib import Path

from erc.datasets import CLASSES, load_dialogues
from erc.finetune import curves_png, finetune_dataset, save_finetuned
from erc.finetuned import FINETUNED
from erc.io import run_stage
from erc.live import live_logger
from erc.params import check_dataset, load_params, per_dataset


def main(dataset: str) -> None:
    params = load_params()
    out = Path(f"models/finetuned/{check_dataset(dataset)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{dataset}."))
    curves = Path(f"plots/finetune/{dataset}")
    shutil.rmtree(curves, ignore_errors=True)  # no curves of an earlier run left beside this one's
    try:
        source = per_dataset(params, "features.text", dataset)
        if source not in FINETUNED:
            note = f"features.text is {source}: nothing to fine-tune\n"
            (tmp / "NOT_USED.txt").write_text(note)
            curves.mkdir(parents=True, exist_ok=True)
            (curves / "NOT_USED.txt").write_text(note)
            curves_png({}, curves / "curves.png", note)
        else:
            dialogues = load_dialogues(dataset)
            for d in dialogues:  # the stage never holds a test label
                if d.split == "test":
                    d.labels = [-1] * len(d)
            result = finetune_dataset(dataset, dialogues, CLASSES[dataset], params, live_logger)
            save_finetuned(result, tmp)
            curves_png(result["encoders"], curves / "curves.png")
            print(json.dumps({n: {"epoch": e["epoch"], "valid_weighted_f1": round(e["valid_weighted_f1"], 2)}
                              for n, e in result["encoders"].items()}), "drift:", result["drift"])
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)  # whole or absent
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


if __name__ == "__main__":
    run_stage(main)
