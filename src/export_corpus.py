"""A built-in dataset in the corpus format (docs/corpora.md): python src/export_corpus.py iemocap|meld OUT.csv

One row per utterance (dialogue, speaker, text, label, split), dialogues in the pipeline's order; read back with
the dataset's card (``erc.data.card.builtin_card``) it gives the same dialogues, labels, speakers and splits."""
import argparse
import sys

from erc.data.card import builtin_speaker_name
from erc.data.corpus_writers import write_corpus
from erc.data.datasets import CLASSES, load_dialogues
from erc.runtime.errors import InputError
from erc.config.params import check_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("out")
    args = parser.parse_args()
    try:
        dataset = check_dataset(args.dataset)
        dialogues = load_dialogues(dataset)
        write_corpus(dialogues, CLASSES[dataset], builtin_speaker_name(dataset), args.out)
    except InputError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {args.out}: {len(dialogues)} dialogues, {sum(len(d) for d in dialogues)} utterances")


if __name__ == "__main__":
    main()
