"""Emotion of each turn of a dialogue: python src/predict.py dialogue.json [--dataset iemocap|meld|<corpus>] [--seed S]
[--format json|table] [--allow-any-path]

dialogue.json: [{"speaker": "M", "text": "..."}, ...], at most 1,000 turns, each text non-empty and at most 5,000
characters; optional "wav": the path of the turn's recording (its descriptors are measured with Praat), relative
to the JSON file and inside its folder unless --allow-any-path, or "audio": its standardised descriptors; a turn
with neither has no audio. The probabilities are the mean over the checkpoint's seeds (``--seed`` uses one). A dialogue with no audio on any turn is answered as
``mkd.text_only`` says (with ``teacher`` or ``student+teacher``, models/teachers/<dataset>.pt is read too).
Prints JSON to stdout, or with ``--format table`` a table."""
import argparse
import json
from functools import partial

from erc.runtime.device import stage_device
from erc.data.card import speaker_coding
from erc.runtime.errors import InputError, one_line_errors
from erc.runtime.files import load_torch
from erc.models.checkpoint import Checkpoint
from erc.models.mglra import text_only_head
from erc.config.params import check_dataset, load_params
from erc.models.inference import Serving, format_table, predict_dialogue, read_dialogue


def load_text_teacher(dataset: str, text_only: str) -> dict:
    path = f"models/teachers/{dataset}.pt"
    teachers = load_torch(path, "teacher file (run dvc repro first)")
    if not isinstance(teachers, dict) or not {"config", "state"} <= set(teachers.get("text", {})):
        raise InputError(f"{path}: no text teacher (mkd.text_only: {text_only} needs one)")
    return teachers["text"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dialogue")
    parser.add_argument("--dataset", default="iemocap")
    parser.add_argument("--seed", type=int, default=None, help="one seed's model instead of the seeds' ensemble")
    parser.add_argument("--format", choices=["json", "table"], default="json")
    parser.add_argument("--allow-any-path", action="store_true",
                        help="read a turn's wav wherever it lies (by default only inside the JSON file's folder)")
    args = parser.parse_args()
    with one_line_errors():
        params = load_params()
        dataset = check_dataset(args.dataset, params)
        coding = speaker_coding(dataset, params)
        checkpoint = Checkpoint.load(f"models/{dataset}.pt", "model checkpoint (run dvc repro first)")
        window = (params.graphs.window_past, params.graphs.window_future)
        turns = read_dialogue(args.dialogue, args.allow_any_path)
        text_only = params.for_dataset(dataset).mkd.text_only
        # the text teacher, read only when a dialogue without audio needs it
        teacher = partial(load_text_teacher, dataset, text_only) \
            if "teacher" in text_only_head(checkpoint.config, text_only) else None
        serving = Serving(window, text_only, teacher, stage_device(params), coding)
        predictions = predict_dialogue(turns, checkpoint, dataset, serving, args.seed, args.dialogue)
        if args.format == "table":
            print(format_table(predictions))
        else:
            print(json.dumps(predictions, indent=2, allow_nan=False))  # strict JSON: a NaN here is a bug, not output


if __name__ == "__main__":
    main()
