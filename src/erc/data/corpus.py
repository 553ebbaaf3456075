"""Conversations of your own, in one file format (docs/corpora.md): CSV or JSON Lines, one utterance a row, in
dialogue order, with the columns ``dialogue``, ``speaker``, ``text``, ``label`` (empty: unlabelled), and optionally
``split`` (train / valid / test), ``wav`` (a path relative to the file) and ``start`` / ``end`` (seconds within it).

The file is read under its card (``erc.data.card.Card``: the label list, class index = position, and the speaker
encoding). Without a ``split`` column, dialogues are dealt to train / valid / test from the card's seed and fractions
(recorded in what ``read_corpus`` returns). Every problem is one ``InputError`` naming the file and the row.
``load_corpus`` reads any dataset, a built-in or a registered corpus, as a ``Corpus``; corpus files are written in
``erc.data.corpus_writers``.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from erc.config.params import BUILTIN, Params, check_dataset
from erc.data.card import Card, builtin_card, card_of
from erc.data.datasets import SPLITS, Dialogue, load_dialogues
from erc.runtime.errors import InputError

REQUIRED = ("dialogue", "speaker", "text", "label")
OPTIONAL = ("split", "wav", "start", "end")


@dataclass
class Corpus:
    card: Card
    dialogues: list[Dialogue]
    split_source: str                                   # "column" or "seed <s>, fractions [..]"
    audio: dict = field(default_factory=dict)           # dialogue id -> per utterance (wav path | None, start, end)
    speaker_vocabulary: list[str] | None = None         # global speakers: index -> name

    @property
    def classes(self) -> list[str]:
        return list(self.card.labels)

    @property
    def n_speakers(self) -> int:
        if self.card.n_speakers is not None:
            return self.card.n_speakers
        used = max((max(d.speakers) for d in self.dialogues), default=-1) + 1
        return max(used, len(self.speaker_vocabulary or []))


def check_text(value, where, what: str = "text", max_chars: int | None = None) -> str:
    """The one rule for text entering the pipeline (a corpus row, a predict.py turn): a non-empty string of valid
    Unicode (no lone UTF-16 surrogate, which JSON's \\ud83d escapes allow), at most ``max_chars`` characters."""
    if not isinstance(value, str):
        raise InputError(f"{where}: '{what}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InputError(f"{where}: empty {what}")
    valid_unicode(value, where, what)
    if max_chars is not None and len(value) > max_chars:
        raise InputError(f"{where}: '{what}' has {len(value)} characters, at most {max_chars}")
    return value


def valid_unicode(value: str, where, what: str) -> str:
    """``value`` unless it holds a lone surrogate, which no file, terminal or text encoder can take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InputError(f"{where}: '{what}' holds U+{ord(value[err.start]):04X} at character {err.start}, a lone "
                         "surrogate (not valid Unicode)") from None
    return value


def lies_in(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` once ``..`` and symbolic links are resolved."""
    return path.resolve().is_relative_to(folder.resolve())


def read_rows(path: Path) -> list[dict]:
    """The file's rows as dicts of strings (JSON Lines values other than strings are kept as given)."""
    if not path.is_file():
        raise InputError(f"{path}: corpus file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: line {number} is not JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}: line {number} is not a JSON object")
            for column, value in row.items():  # JSON may escape a lone surrogate; a CSV, being UTF-8, cannot
                if isinstance(value, str):
                    valid_unicode(value, f"{path}: row {number}", column)
            rows.append({"_row": number, **row})
        return rows
    if path.suffix != ".csv":
        raise InputError(f"{path}: a corpus is a .csv or a .jsonl file")
    reader = csv.DictReader(io.StringIO(text, newline=""))  # not splitlines: a text may hold U+0085 or U+2028
    try:
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: missing column '{missing[0]}' (a corpus has {', '.join(REQUIRED)})")
        return [{"_row": number, **row} for number, row in enumerate(reader, start=2)]  # row 1: the header
    except csv.Error as err:
        raise InputError(f"{path}: not a readable CSV near line {reader.line_num} ({err})") from None


def _split_by_seed(ids: list[str], card: Card) -> dict[str, str]:
    """Dialogue -> split: a seeded permutation of the dialogues cut by the card's fractions (at least one train)."""
    order = np.random.default_rng(card.split_seed).permutation(len(ids))
    n_train = max(1, round(card.split_fractions[0] * len(ids)))
    n_valid = round(card.split_fractions[1] * len(ids))
    names = ["train"] * n_train + ["valid"] * n_valid + ["test"] * (len(ids) - n_train - n_valid)
    return {ids[i]: names[rank] for rank, i in enumerate(order)}


def read_corpus(path: str | Path, card: Card, check_wav: bool = True, within: Path | None = None) -> Corpus:
    """The dialogues of a corpus file, in file order, checked row by row; ``within``: the folder every wav must
    lie in."""
    path = Path(path)
    rows = read_rows(path)
    if not rows:
        raise InputError(f"{path}: no utterances")
    at = lambda row: f"{path}: row {row['_row']}"  # noqa: E731
    has_split = any(str(r.get("split") or "").strip() for r in rows)
    index = {label: k for k, label in enumerate(card.labels)}
    vocabulary = {name: k for k, name in enumerate(card.speaker_names or [])}
    order, turns, finished = [], {}, set()
    for row in rows:
        for column in REQUIRED:
            if column not in row:
                raise InputError(f"{at(row)}: missing column '{column}'")
        dialogue = str(row["dialogue"] if row["dialogue"] is not None else "").strip()
        if not dialogue:
            raise InputError(f"{at(row)}: empty dialogue id")
        if order and dialogue != order[-1]:
            finished.add(order[-1])
        if dialogue in finished:
            raise InputError(f"{at(row)}: dialogue {dialogue!r} continues after another dialogue began (the rows of "
                             "a dialogue must be consecutive, in turn order)")
        if not order or order[-1] != dialogue:
            order.append(dialogue)
            turns[dialogue] = []
        text = check_text(row["text"] if row["text"] is not None else "", at(row))
        speaker = str(row["speaker"] if row["speaker"] is not None else "").strip()
        if not speaker:
            raise InputError(f"{at(row)}: empty speaker")
        label = str(row["label"] if row["label"] is not None else "").strip()
        if label and label not in index:
            raise InputError(f"{at(row)}: label {label!r} is not in the card's labels {card.labels}")
        split = str(row.get("split") or "").strip()
        if has_split and split not in SPLITS:
            raise InputError(f"{at(row)}: split {split!r} is not one of {list(SPLITS)}")
        if turns[dialogue] and has_split and split != turns[dialogue][0]["split"]:
            raise InputError(f"{at(row)}: dialogue {dialogue!r} is split across {turns[dialogue][0]['split']} and "
                             f"{split}")
        wav = str(row.get("wav") or "").strip() or None
        if wav is not None and within is not None and not lies_in(path.parent / wav, within):
            raise InputError(f"{at(row)}: wav {wav!r} lies outside {within} (the folder the stages depend on)")
        if wav is not None and check_wav and not (path.parent / wav).is_file():
            raise InputError(f"{at(row)}: wav {wav!r} not found (relative to {path.parent})")
        try:
            start = float(row["start"]) if str(row.get("start") or "").strip() else None
            end = float(row["end"]) if str(row.get("end") or "").strip() else None
        except (TypeError, ValueError):
            raise InputError(f"{at(row)}: start / end must be seconds") from None
        if (start is not None and not 0 <= start < float("inf")) or (end is not None and not 0 < end < float("inf")):
            raise InputError(f"{at(row)}: start / end must be finite seconds, not negative")
        if (start is not None or end is not None) and wav is None:
            raise InputError(f"{at(row)}: start / end without a wav")
        if start is not None and end is not None and not 0 <= start < end:
            raise InputError(f"{at(row)}: start {start} must be before end {end} (and not negative)")
        if card.speakers == "global" and speaker not in vocabulary:
            if card.speaker_names is not None:
                raise InputError(f"{at(row)}: speaker {speaker!r} is not in the card's speakers {card.speaker_names}")
            vocabulary[speaker] = len(vocabulary)
        turns[dialogue].append({"speaker": speaker, "text": text, "label": index[label] if label else -1,
                                "split": split, "wav": wav, "start": start, "end": end})
    if has_split:
        splits, source = {d: turns[d][0]["split"] for d in order}, "column"
    else:
        splits = _split_by_seed(order, card)
        source = f"seed {card.split_seed}, fractions {list(card.split_fractions)}"
    dialogues, audio = [], {}
    for d in order:
        names = [t["speaker"] for t in turns[d]]
        if card.speakers == "global":
            speakers = [vocabulary[n] for n in names]
        else:
            first = list(dict.fromkeys(names))
            speakers = [first.index(n) for n in names]
        dialogues.append(Dialogue(d, splits[d], speakers, [t["label"] for t in turns[d]], [t["text"] for t in turns[d]],
                                  list(range(len(names)))))
        if any(t["wav"] for t in turns[d]):
            audio[d] = [(str(path.parent / t["wav"]) if t["wav"] else None, t["start"], t["end"]) for t in turns[d]]
    for split in SPLITS:
        labelled = [d for d in dialogues if d.split == split and any(y >= 0 for y in d.labels)]
        if not labelled:
            raise InputError(f"{path}: no labelled dialogue in the {split} split "
                             f"({sum(d.split == split for d in dialogues)} dialogues there; splits from {source})")
    return Corpus(card, dialogues, source, audio, list(vocabulary) if card.speakers == "global" else None)


def load_corpus(name: str, params: Params, raw_dir: str | Path = "data/raw", check_wav: bool = True) -> Corpus:
    """Dataset ``name`` as a corpus: the built-ins from their standard metadata and splits (``erc.data.datasets``), a
    registered corpus from its file. Every stage reads its dialogues here."""
    check_dataset(name, params)
    if name in BUILTIN:
        card = builtin_card(name)
        return Corpus(card, load_dialogues(name, raw_dir), "standard", {}, card.speaker_names)
    return read_corpus(params.corpora[name].path, card_of(name, params), check_wav, Path("data/corpora").resolve())


def check_cross_fitting(corpus: Corpus, folds: int) -> None:
    """Cross-fitting needs at least ``folds`` training dialogues (one a fold), else one line."""
    n = sum(d.split == "train" for d in corpus.dialogues)
    if folds >= 2 and n < folds:
        raise InputError(f"corpus {corpus.card.name}: {n} training dialogues cannot make {folds} cross-fitting folds "
                         "(finetune.folds: 0, or more training dialogues)")
