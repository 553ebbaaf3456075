"""A dataset's card and its speaker coding: what a corpus file does not say itself (its labels in a fixed order,
class index = position; its speakers, ``per_dialogue``, indexed by first appearance within each dialogue as MELD's,
or ``global``, one vocabulary), the built-ins' cards, the built-ins' speaker names, and how a new dialogue's
speakers are encoded as training encoded them."""
from __future__ import annotations

from typing import Callable, Optional

from pydantic import PositiveInt, ValidationError

from erc.config.corpora import CorpusCard
from erc.config.params import BUILTIN, Params, check_dataset, describe
from erc.data.datasets import CLASSES, N_SPEAKERS, Dialogue
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch


class Card(CorpusCard):
    """A corpus's card under the rules of a ``corpora`` entry in params.yaml (``erc.config.corpora.CorpusCard``),
    with the corpus's name and the model's speaker slots; a bad card is one ``InputError`` naming the key."""
    name: str
    n_speakers: Optional[PositiveInt] = None   # the model's speaker slots (None: as many as the file needs)

    def __init__(self, name: str, labels: list[str], **card):
        try:
            super().__init__(name=name, labels=labels, **card)
        except ValidationError as err:
            raise InputError(describe(err.errors()[0], f"corpus {name}", list(Card.model_fields))) from None


def speaker_name(dataset: str, speaker: int) -> str:
    """A built-in dataset's speaker index as a name: IEMOCAP's M / F, MELD's P<index> (its metadata keeps
    indices, not names)."""
    return "MF"[speaker] if dataset == "iemocap" else f"P{speaker}"


def builtin_speaker_name(dataset: str) -> Callable[[Dialogue, int], str]:
    """``write_corpus``'s speaker naming for a built-in dataset (``speaker_name`` of each turn's speaker)."""
    return lambda dialogue, speaker: speaker_name(dataset, speaker)


def builtin_card(dataset: str) -> Card:
    """The card under which a built-in dataset, exported (``src/export_corpus.py``), reads back as itself: IEMOCAP's
    speakers are one vocabulary (M = 0, F = 1), MELD's are indexed by first appearance in each dialogue (9 slots)."""
    if dataset == "iemocap":
        names = [speaker_name(dataset, k) for k in range(N_SPEAKERS[dataset])]
        return Card(dataset, CLASSES[dataset], speakers="global", speaker_names=names, n_speakers=N_SPEAKERS[dataset])
    return Card("meld", CLASSES["meld"], speakers="per_dialogue", n_speakers=N_SPEAKERS["meld"])


def card_of(name: str, params: Params) -> Card:
    """The card of a dataset: a built-in's, or a corpus's from its ``corpora`` entry in params.yaml."""
    if name in BUILTIN:
        return builtin_card(name)
    entry = params.corpora[name]
    return Card(name, **entry.model_dump(include=set(CorpusCard.model_fields)))


def speaker_coding(name: str, params: Params) -> tuple[Card, list[str] | None]:
    """(card, global speaker vocabulary or None): how a new dialogue's speakers are encoded for dataset ``name``
    (a corpus's vocabulary by first appearance is the one training used, kept in its feature file)."""
    card = card_of(check_dataset(name, params), params)
    if card.speakers != "global" or card.speaker_names is not None:
        return card, card.speaker_names
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
