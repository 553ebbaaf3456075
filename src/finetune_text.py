"""Stage finetune_text: python src/finetune_text.py [<dataset> ...] -> models/finetuned/<dataset>/ for each

With features.text minilm-ft / mpnet-ft: fine-tunes the encoder on the training utterances (and, with
finetune.folds >= 2, one encoder per fold without it), epochs chosen on validation; test labels are hidden
before anything runs. One stage for every dataset (default: all of them, the DVC stage's call), so that all
encoders share one pool of `workers` processes: MELD's single encoder alone would leave a core idle. A dataset
whose text is not fine-tuned, or that params.yaml's `datasets` leaves out, gets a note saying so instead."""
import json
import shutil
import tempfile
from pathlib import Path

from erc.data.corpus import check_cross_fitting, load_corpus
from erc.data.datasets import without_test_labels
from erc.training.finetune import curves_png, finetune_datasets, save_finetuned
from erc.features.utterance_encoder import FINETUNED
from erc.runtime.errors import run_stage
from erc.runtime.live import staged_curves
from erc.config.params import check_dataset, load_params


def main(*names: str) -> None:
    params = load_params()
    datasets = [check_dataset(name, params) for name in names] or list(params.datasets)
    text = {d: params.for_dataset(d).features.text for d in datasets}
    notes = {d: f"features.text is {text[d]}: nothing to fine-tune\n" for d in datasets if text[d] not in FINETUNED}
    notes.update({d: f"{d} is not in params.yaml's datasets: nothing fine-tuned\n" for d in datasets
                  if d not in params.datasets})
    tune, classes = {}, {}
    for dataset in datasets:
        if dataset not in notes:
            corpus = load_corpus(dataset, params)
            check_cross_fitting(corpus, params.for_dataset(dataset).finetune.folds)
            # the stage never holds a test label
            tune[dataset], classes[dataset] = without_test_labels(corpus.dialogues), corpus.classes
    with staged_curves(*(f"plots/finetune/{d}" for d in datasets)) as live_factory:  # whole or absent
        results = finetune_datasets(tune, params, live_factory, classes=classes) if tune else {}
    for dataset in datasets:
        out, curves = Path(f"models/finetuned/{dataset}"), Path(f"plots/finetune/{dataset}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{dataset}."))
        try:
            if dataset in notes:
                (tmp / "NOT_USED.txt").write_text(notes[dataset])
                curves.mkdir(parents=True, exist_ok=True)
                (curves / "NOT_USED.txt").write_text(notes[dataset])
                curves_png({}, curves / "curves.png", notes[dataset])
            else:
                result = results[dataset]
                save_finetuned(result, tmp)
                curves_png(result["encoders"], curves / "curves.png")
                print(dataset, json.dumps({n: {"epoch": e["epoch"], "valid_weighted_f1": round(e["valid_weighted_f1"], 2)}
                                           for n, e in result["encoders"].items()}), "drift:", result["drift"])
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)  # whole or absent
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


if __name__ == "__main__":
    run_stage(main, datasets="any")
