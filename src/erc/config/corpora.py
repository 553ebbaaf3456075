"""A corpus entry (docs/corpora.md): one set of rules for what a corpus file does not say itself, whether the card
comes from ``params.yaml``'s ``corpora`` (``CorpusEntry``) or is handed to the reader (``erc.data.card.Card``)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import Field, NonNegativeInt, field_validator

from erc.config.base import NonNegativeFloat, Section

Name = Annotated[str, Field(min_length=1)]


class CorpusCard(Section):
    """A corpus's card: its classes, its speaker coding and the split rule for a file without a split column."""
    labels: Annotated[list[Name], Field(min_length=2)] = Field(
        description="the classes, each once; class index = position in this list (never order of first appearance)")
    speakers: Literal["per_dialogue", "global"] = Field(
        "per_dialogue", description="per_dialogue: speakers indexed by first appearance within each dialogue "
                                    "(MELD's); global: one vocabulary over the corpus")
    speaker_names: Optional[Annotated[list[Name], Field(min_length=1)]] = Field(
        None, description="the global vocabulary, in index order (null: first appearance in the file)")
    split_seed: NonNegativeInt = Field(
        0, description="without a split column: the seed that deals dialogues to train / valid / test")
    split_fractions: Annotated[list[NonNegativeFloat], Field(min_length=3, max_length=3)] = Field(
        [0.8, 0.1, 0.1], description="without a split column: the train / valid / test shares of the dialogues")

    @field_validator("labels")
    @classmethod
    def each_class_once(cls, labels):
        if len(set(labels)) != len(labels):
            raise ValueError(f"must list each class once, got {labels}")
        return labels

    @field_validator("speaker_names")
    @classmethod
    def each_speaker_once(cls, names, info):
        if names is not None and info.data.get("speakers") != "global":
            raise ValueError("is the global vocabulary: set speakers: global, or leave it out")
        if names is not None and len(set(names)) != len(names):
            raise ValueError(f"must list each speaker once, got {names}")
        return names

    @field_validator("split_fractions")
    @classmethod
    def three_shares(cls, fractions):
        if abs(sum(fractions) - 1) > 1e-6 or not all(fractions):
            raise ValueError(f"must be three shares (train, valid, test), each above 0, summing to 1, got "
                             f"{fractions}")
        return fractions


class CorpusFile(Section):
    path: str = Field(description="data/corpora/<file>.csv | .jsonl: the stages' dvc.yaml dep is that folder")

    @field_validator("path")
    @classmethod
    def under_the_corpora_folder(cls, path):
        if not path.startswith("data/corpora/") or Path(path).suffix not in (".csv", ".jsonl") \
                or ".." in Path(path).parts:
            raise ValueError(f"must be a .csv or .jsonl file under data/corpora/ (the folder the stages depend on), "
                             f"got {path!r}")
        return path


class CorpusEntry(CorpusCard, CorpusFile):  # bases in this order: the keys read path, labels, ..., like
    """A corpus of your own in params.yaml's ``corpora`` (docs/corpora.md): the file and its card."""
    like: Literal["iemocap", "meld"] = Field(
        "meld", description="the built-in whose values the keys given per dataset give this corpus, unless they "
                            "name it")
