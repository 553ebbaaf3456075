"""Corpus files written (docs/corpora.md): a dataset's dialogues as a corpus CSV (``src/export_corpus.py``), and
importers of CoMPM's TSVs and MELD's official CSVs; every file is written atomically (whole or absent)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import pandas as pd

from erc.data.datasets import Dialogue, repair_cp1252
from erc.runtime.errors import InputError
from erc.runtime.files import atomic_path


def write_corpus(dialogues: list[Dialogue], classes: list[str], speaker_names: Callable[[Dialogue, int], str],
                 path: str | Path) -> None:
    """``dialogues`` as a corpus CSV (with its split column); ``speaker_names(dialogue, index)`` names a speaker."""
    _write_rows([[d.id, speaker_names(d, s), text, classes[y] if y >= 0 else "", d.split]
                 for d in dialogues for s, y, text in zip(d.speakers, d.labels, d.sentences)], path)


def _write_rows(rows: list[list], path: str | Path) -> None:
    """Corpus rows (dialogue, speaker, text, label, split) as a CSV, written atomically."""
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
