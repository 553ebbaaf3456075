"""Conversations of your own, in one file format (docs/corpora.md): CSV or JSON Lines, one utterance a row, in
dialogue order, with the columns ``dialogue``, ``speaker``, ``text``, ``label`` (empty: unlabelled), and optionally
``split`` (train / valid / test), ``wav`` (a path relative to the file) and ``start`` / ``end`` (seconds within it).

A card names the corpus, its label list in a fixed order (class index = position in the list, never the order of
first appearance) and its speaker encoding: ``per_dialogue`` (speakers indexed by first appearance within each
dialogue, MELD's) or ``global`` (one vocabulary: the card's ``speakers`` list, or first appearance in the file).
Without a ``split`` column, dialogues are dealt to train / valid / test from a seed and fractions (recorded in what
``read_corpus`` returns). Every problem is one ``InputError`` naming the file and the row.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from erc.data.datasets import SPLITS, Dialogue, load_dialogues
from erc.runtime.errors import InputError
from erc.config.params import BUILTIN, Params, check_dataset

REQUIRED = ("dialogue", "speaker", "text", "label")
OPTIONAL = ("split", "wav", "start", "end")
SPEAKER_ENCODINGS = ("per_dialogue", "global")


@dataclass
class Card:
    """What a corpus file does not say itself."""
    name: str
    labels: list[str]
    speakers: str = "per_dialogue"               # per_dialogue | global
    speaker_names: list[str] | None = None       # the global vocabulary, in index order (None: first appearance)
    split_seed: int = 0
    split_fractions: tuple = (0.8, 0.1, 0.1)     # train / valid / test, when the file has no split column
    n_speakers: int | None = None                # the model's speaker slots (None: as many as the file needs)

    def __post_init__(self):
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise InputError(f"corpus {self.name}: 'labels' must list each class once, got {self.labels}")
        if self.speakers not in SPEAKER_ENCODINGS:
            raise InputError(f"corpus {self.name}: 'speakers' must be one of {list(SPEAKER_ENCODINGS)}, "
                             f"got {self.speakers!r}")
        fractions = tuple(self.split_fractions)
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6 or not fractions[0]:
            raise InputError(f"corpus {self.name}: 'split_fractions' must be three shares (train, valid, test) "
                             f"summing to 1 with train > 0, got {list(fractions)}")


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


def builtin_card(dataset: str) -> Card:
    """The card under which a built-in dataset, exported (``src/export_corpus.py``), reads back as itself: IEMOCAP's
    speakers are one vocabulary (M = 0, F = 1), MELD's are indexed by first appearance in each dialogue (9 slots)."""
    from erc.data.datasets import CLASSES, N_SPEAKERS
    if dataset == "iemocap":
        return Card("iemocap", CLASSES["iemocap"], "global", ["M", "F"], n_speakers=N_SPEAKERS["iemocap"])
    return Card("meld", CLASSES["meld"], "per_dialogue", n_speakers=N_SPEAKERS["meld"])


def card_of(name: str, params: Params) -> Card:
    """The card of a dataset: a built-in's, or a corpus's from its ``corpora`` entry in params.yaml."""
    if name in BUILTIN:
        return builtin_card(name)
    entry = params.corpora[name]
    return Card(name, list(entry.labels), entry.speakers, entry.speaker_names, entry.split_seed,
                tuple(entry.split_fractions))


def load_corpus(name: str, params: Params, raw_dir: str | Path = "data/raw", check_wav: bool = True) -> Corpus:
    """Dataset ``name`` as a corpus: the built-ins from their standard metadata and splits (``erc.data.datasets``), a
    registered corpus from its file. Every stage reads its dialogues here."""
    check_dataset(name, params)
    if name in BUILTIN:
        card = builtin_card(name)
        return Corpus(card, load_dialogues(name, raw_dir), "standard", {}, card.speaker_names)
    return read_corpus(params.corpora[name].path, card_of(name, params), check_wav, Path("data/corpora").resolve())


def speaker_coding(name: str, params: Params) -> tuple[Card, list[str] | None]:
    """(card, global speaker vocabulary or None): how a new dialogue's speakers are encoded for dataset ``name``
    (a corpus's vocabulary by first appearance is the one training used, kept in its feature file)."""
    card = card_of(check_dataset(name, params), params)
    if card.speakers != "global" or card.speaker_names is not None:
        return card, card.speaker_names
    from erc.runtime.files import load_torch
    path = f"data/features/{name}.pt"
    record = load_torch(path, "feature file (run dvc repro first)").get("corpus") or {}
    if not record.get("speaker_vocabulary"):
        raise InputError(f"{path}: holds no speaker vocabulary of corpus {name}; rerun dvc repro")
    return card, record["speaker_vocabulary"]


def speaker_indices(names: list, card: Card, vocabulary: list[str] | None, n_slots: int, where) -> list[int]:
    """A new dialogue's speakers (names, in turn order) as training encoded them: by the global vocabulary, or by
    first appearance in the dialogue; one line when the model cannot take them."""
    names = [str(n) for n in names]
    if card.speakers == "global":
        known = {n: k for k, n in enumerate((vocabulary or [])[:n_slots])}
        bad = [n for n in names if n not in known]
        if bad:
            shown = ", ".join(list(known)[:10]) + (", ..." if len(known) > 10 else "")
            raise InputError(f"{where}: speaker {bad[0]!r} is unknown to {card.name} (its speakers: {shown})")
        return [known[n] for n in names]
    order = list(dict.fromkeys(names))
    if len(order) > n_slots:
        raise InputError(f"{where}: {len(order)} distinct speakers, the model knows at most {n_slots}")
    return [order.index(n) for n in names]


def builtin_speaker_name(dataset: str):
    """``write_corpus``'s speaker naming for a built-in dataset (MELD's metadata keeps indices, not names)."""
    return (lambda d, s: "MF"[s]) if dataset == "iemocap" else (lambda d, s: f"P{s}")


def check_cross_fitting(corpus: Corpus, folds: int) -> None:
    """Cross-fitting needs at least ``folds`` training dialogues (one a fold), else one line."""
    n = sum(d.split == "train" for d in corpus.dialogues)
    if folds >= 2 and n < folds:
        raise InputError(f"corpus {corpus.card.name}: {n} training dialogues cannot make {folds} cross-fitting folds "
                         "(finetune.folds: 0, or more training dialogues)")


def write_corpus(dialogues: list[Dialogue], classes: list[str], speaker_names, path: str | Path) -> None:
    """``dialogues`` as a corpus CSV (with its split column); ``speaker_names(dialogue, index)`` names a speaker."""
    _write_rows([[d.id, speaker_names(d, s), text, classes[y] if y >= 0 else "", d.split]
                 for d in dialogues for s, y, text in zip(d.speakers, d.labels, d.sentences)], path)


def _write_rows(rows: list[list], path: str | Path) -> None:
    """Corpus rows (dialogue, speaker, text, label, split) as a CSV, written atomically."""
    from erc.runtime.files import atomic_path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["dialogue", "speaker", "text", "label", "split"])
            writer.writerows(rows)


def import_compm(files: dict[str, str | Path], out: str | Path) -> None:
    """CoMPM's TSVs (one file per split: ``Speaker\\tUtterance\\tEmotion[\\tSentiment]``, an optional header, a blank
    line between dialogues) as one corpus CSV; dialogues are named ``<split>-<n>``."""
    rows = []
    for split, file in files.items():
        file = Path(file)
        if not file.is_file():
            raise InputError(f"{file}: CoMPM file not found")
        n, started = 0, False
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                n, started = (n + 1, False) if started else (n, started)
                continue
            cells = line.split("\t")
            if number == 1 and cells[:3] == ["Speaker", "Utterance", "Emotion"]:
                continue
            if len(cells) < 3:
                raise InputError(f"{file}: line {number} has {len(cells)} tab-separated fields, expected "
                                 "Speaker, Utterance, Emotion[, Sentiment]")
            rows.append([f"{split}-{n}", cells[0], cells[1], cells[2], split])
            started = True
    _write_rows(rows, out)


def import_meld_csv(files: dict[str, str | Path], out: str | Path) -> None:
    """MELD's official CSVs (``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv``: Utterance,
    Speaker, Emotion, Dialogue_ID, Utterance_ID, ...) as one corpus CSV, utterances in Utterance_ID order; dialogues
    are named ``<split>-<Dialogue_ID>``, with the wav of each clip as MELD's video names it (``dia<D>_utt<U>.wav``)
    left out (the clips are not shipped with the CSVs)."""
    import pandas as pd
    from erc.runtime.files import atomic_path
    from erc.data.datasets import repair_cp1252
    frames = []
    for split, file in files.items():
        file = Path(file)
        if not file.is_file():
            raise InputError(f"{file}: MELD CSV not found")
        try:
            table = pd.read_csv(file, usecols=["Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID"])
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
            raise InputError(f"{file}: not a MELD CSV ({str(err).splitlines()[0]})") from None
        table = table.sort_values(["Dialogue_ID", "Utterance_ID"], kind="stable")
        frames.append(pd.DataFrame({"dialogue": [f"{split}-{d}" for d in table["Dialogue_ID"]],
                                    "speaker": table["Speaker"].astype(str).map(repair_cp1252),
                                    "text": table["Utterance"].astype(str).map(repair_cp1252),
                                    "label": table["Emotion"], "split": split}))
    out = Path(out)
    with atomic_path(out) as tmp:
        pd.concat(frames).to_csv(tmp, index=False)
