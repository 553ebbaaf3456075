"""Emotion of each turn of a dialogue: python src/predict.py dialogue.json [--dataset iemocap|meld] [--seed S]
[--format json|table]

dialogue.json: [{"speaker": "M", "text": "..."}, ...]; optional "audio": the standardised descriptors of the
turn (otherwise the turn is treated as having no audio, as during training). The probabilities are the mean
over the checkpoint's seeds (``--seed`` uses one). Prints JSON to stdout, or with ``--format table`` a table."""
import argparse
import json
import sys

from erc.io import InputError, load_torch
from erc.params import check_dataset, get, load_params
from erc.predict import format_table, predict_dialogue, read_dialogue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dialogue")
    parser.add_argument("--dataset", default="iemocap")
    parser.add_argument("--seed", type=int, default=None, help="one seed's model instead of the seeds' ensemble")
    parser.add_argument("--format", choices=["json", "table"], default="json")
    args = parser.parse_args()
    try:
        dataset = check_dataset(args.dataset)
        params = load_params()
        checkpoint = load_torch(f"models/{dataset}.pt", "model checkpoint (run dvc repro first)",
                                ("config", "runs", "sources"))
        window = (get(params, "graphs.window_past"), get(params, "graphs.window_future"))
        turns = read_dialogue(args.dialogue)
        predictions = predict_dialogue(turns, checkpoint, dataset, window, args.seed, args.dialogue,
                                       get(params, "mkd.text_only"))
        if args.format == "table":
            print(format_table(predictions))
        else:
            print(json.dumps(predictions, indent=2, allow_nan=False))  # strict JSON: a NaN here is a bug, not output
    except InputError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
