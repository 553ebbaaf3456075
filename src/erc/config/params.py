"""``params.yaml`` as a schema: every key, its type, range and default, checked once when the file is read.

An unknown key is refused with the nearest valid key; a key left out takes its default (the behaviour the
pipeline had before the key existed, mostly the released MGLRA's). ``load_params`` returns the typed ``Params``
with every key present; a stage reads ``params.train.lr``, and ``params.for_dataset(d)`` gives the values of keys set
once or per dataset (``model.hidden: {iemocap: 128, meld: 256}``) as dataset ``d``'s.

Datasets are the two built-ins and the corpora registered under ``corpora`` (docs/corpora.md). A key given per
dataset names ``iemocap`` and ``meld`` and may name a corpus too; a corpus it does not name takes the value of the
built-in its entry is ``like``.

The public entry of ``erc.config``: the sections live in ``erc.config.sections`` (each key's meaning is its field's
``description``), a corpus entry in ``erc.config.corpora``, the per-dataset machinery in ``erc.config.base``.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, PositiveInt, ValidationError, model_validator

from erc.config.base import BUILTIN, DATASETS, ByDataset, Section, per_dataset_values, resolved
from erc.config.corpora import CorpusEntry
from erc.config.sections import Features, Finetune, Graphs, Mkd, Model, Mrl, References, Teachers, Train
from erc.runtime.errors import InputError

__all__ = ["BUILTIN", "DATASETS", "RESERVED", "Params", "check_dataset", "describe", "dotted_keys", "flat_defaults",
           "flatten", "load_params", "validate_params"]

# output folders beside the per-dataset ones (plots/<dataset>, metrics/<dataset>.json): no corpus may take their name
RESERVED = ("finetune", "finetuned", "train", "teachers", "references", "details", "table1")


class Params(Section):
    datasets: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = Field(
        list(BUILTIN), description="the datasets every stage runs on: iemocap, meld and the corpora registered under "
                                   "`corpora`")
    corpora: dict[str, CorpusEntry] = Field(
        {}, description="your own conversations by name: the file under data/corpora/, its label list (class index "
                        "= position), speaker encoding, the split rule for a file without a split column, and which "
                        "built-in's per-dataset values it takes (docs/corpora.md)")
    workers: PositiveInt = Field(
        2, description="processes for independent units (encoders, seeds, teachers); each runs on one thread, so it "
                       "changes the wall time, never a number; no stage lists it")
    device: Literal["auto", "cpu", "cuda"] = Field(  # erc.runtime.device
        "auto", description="where every computing stage runs: auto = cuda where PyTorch sees a GPU, else cpu; "
                            "recorded in metrics and checkpoints")
    features: Features = Field(default_factory=Features)
    graphs: Graphs = Field(default_factory=Graphs)
    model: Model = Field(default_factory=Model)
    train: Train = Field(default_factory=Train)
    teachers: Teachers = Field(default_factory=Teachers)
    finetune: Finetune = Field(default_factory=Finetune)
    mrl: Mrl = Field(default_factory=Mrl)
    mkd: Mkd = Field(default_factory=Mkd)
    references: References = Field(default_factory=References)

    def like(self, dataset: str) -> str:
        """The built-in whose per-dataset values ``dataset`` takes where a key does not name it."""
        return dataset if dataset in BUILTIN else self.corpora[dataset].like

    def for_dataset(self, dataset: str) -> "Params":
        """These params as ``dataset`` sees them: a key given once or per dataset holds ``dataset``'s value."""
        return resolved(self, check_dataset(dataset, self), self.like(dataset))

    @model_validator(mode="after")
    def datasets_are_known(self):
        clash = [name for name in self.corpora if name in BUILTIN]
        if clash:
            raise ValueError(f"'corpora.{clash[0]}' clashes with the built-in dataset {clash[0]}: name it otherwise")
        taken = [name for name in self.corpora if name in RESERVED]
        if taken:
            raise ValueError(f"'corpora.{taken[0]}': {taken[0]} names a folder of the pipeline's outputs "
                             f"(plots/{taken[0]}, ...): name the corpus otherwise")
        bad = [name for name in self.corpora if not name.replace("_", "").replace("-", "").isalnum()]
        if bad:
            raise ValueError(f"'corpora.{bad[0]}': a corpus name is letters, digits, '-' and '_' (it names files)")
        known = [*BUILTIN, *self.corpora]
        for d in self.datasets:
            if d not in known:
                near = difflib.get_close_matches(d, known, n=1, cutoff=0.6)
                raise ValueError(f"'datasets' lists {d!r}, neither a built-in dataset nor a corpus under 'corpora' "
                                 f"({', '.join(known)})" + (f"; did you mean {near[0]!r}?" if near else ""))
        for key, value in per_dataset_values(self):
            for name in value.model_extra or {}:
                if name not in self.corpora:
                    near = difflib.get_close_matches(f"{key}.{name}", [f"{key}.{k}" for k in known], n=1, cutoff=0.6)
                    raise ValueError(f"unknown key '{key}.{name}'" + (f" (did you mean '{near[0]}'?)" if near else
                                                                      " (not a dataset: iemocap, meld or a corpus)"))
        return self

    @model_validator(mode="after")
    def sources_have_their_inputs(self):
        for d in self.datasets:
            if d in self.corpora:
                resolved = self.for_dataset(d)
                for modality in ("text", "audio", "visual"):
                    if getattr(resolved.features, modality) == "file":
                        raise ValueError(f"'features.{modality}' is file, the built-ins' public feature pickles; "
                                         f"corpus {d} makes its features from its file (give it another source)")
                if resolved.features.audio == "opensmile":
                    raise ValueError(f"'features.audio' is opensmile; corpus {d} measures its wavs with Praat "
                                     "(praat or praat-wav) or has no audio (none)")
                if resolved.finetune.fold_by == "session":
                    raise ValueError(f"'finetune.fold_by' is session for corpus {d}, which has no sessions; fold by "
                                     "dialogue")
        for d in self.datasets:
            resolved = self.for_dataset(d)
            if resolved.features.text == "ft" and not resolved.finetune.encoder:
                raise ValueError(f"'finetune.encoder' must name the encoder to fine-tune ({d}) when features.text is "
                                 "ft: minilm, mpnet, a Hugging Face model id or a local directory")
        for modality in ("text", "audio", "visual"):
            source = getattr(self.features, modality)
            for d in self.datasets:
                if d in self.corpora:
                    continue
                if (source.value(d, d) if isinstance(source, ByDataset) else source) == "file":
                    if not getattr(getattr(self.features.files, d), modality):
                        raise ValueError(f"'features.files.{d}.{modality}' must name a feature file when "
                                         f"features.{modality} is file")
        if self.features.audio in ("opensmile", "praat-wav"):
            for d in [d for d in self.datasets if d in BUILTIN]:  # a corpus's wavs are in its file
                if not getattr(self.features.wav_dirs, d):
                    raise ValueError(f"'features.wav_dirs.{d}' must name the wav folder when features.audio is "
                                     f"{self.features.audio}")
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"'datasets' lists a dataset twice: {self.datasets}")
        return self

    @model_validator(mode="after")
    def nesting_fits_the_block(self):
        if len(set(self.mrl.nesting)) != len(self.mrl.nesting):
            raise ValueError(f"'mrl.nesting' lists a size twice: {self.mrl.nesting}")
        block = 2 * self.model.graph_hidden  # a modality block of the fused vector: [h^K | h^0]
        too_wide = [m for m in self.mrl.nesting if m > block]
        if too_wide:
            raise ValueError(f"'mrl.nesting' sizes {too_wide} exceed the block width 2 * model.graph_hidden = {block}")
        n_sizes = len({m for m in self.mrl.nesting if m < block}) + 1  # the full block is always a size
        if self.mrl.weights is not None and not any(self.mrl.weights):
            raise ValueError("'mrl.weights' are all 0: no size would be trained")
        if self.mrl.weights is not None and len(self.mrl.weights) != n_sizes:
            raise ValueError(f"'mrl.weights' needs one weight per nesting size ({n_sizes} with the full block), "
                             f"got {len(self.mrl.weights)}")
        return self


def dotted_keys(model: type[BaseModel] = Params, prefix: str = "") -> list[str]:
    """Every valid dotted key, sections and leaves alike."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        if "ByDataset" in str(field.annotation):  # per-dataset values: model.hidden.iemocap, ...
            keys += [f"{prefix}{name}.{d}" for d in DATASETS]
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, Section):
            keys += dotted_keys(kind, f"{prefix}{name}.")
    return keys


def describe(error: dict, where: str, known: list[str] | None = None) -> str:
    """One line for the first schema error: the dotted key, what it must be, what it got; an unknown key is shown
    with the nearest of ``known`` (default: every key of params.yaml)."""
    path = [str(p) for p in error["loc"] if isinstance(p, str) and p not in ("one", "each") and "[" not in p]
    key = ".".join(path)
    if error["type"] == "extra_forbidden":
        near = difflib.get_close_matches(key, dotted_keys() if known is None else known, n=1, cutoff=0.6)
        return f"{where}: unknown key '{key}'" + (f" (did you mean '{near[0]}'?)" if near else "")
    if error["type"] == "missing":
        return f"{where}: missing key '{key}'"
    message = error["msg"].removeprefix("Value error, ").replace("Input should", "should")
    message = message[0].lower() + message[1:]
    if error["type"] == "value_error":  # a cross-key check: its message names the keys
        return f"{where}: '{key}' {message}" if key else f"{where}: {message}"
    return f"{where}: '{key}' {message}, got {error['input']!r}"


def validate_params(raw: Any, where: str = "params.yaml") -> Params:
    """Check ``raw`` (nested dicts) against the schema; return the typed params with every key (defaults filled in)."""
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains a "missing"
        first = errors[0]
        if first["type"] == "missing" and first["loc"][-1] in BUILTIN and isinstance(first["input"], dict):
            # a per-dataset value without iemocap or meld: a stray key that is no corpus is the likelier typo
            corpora = raw.get("corpora") if isinstance(raw.get("corpora"), dict) else {}
            stray = [k for k in first["input"] if k not in BUILTIN and k not in corpora]
            if stray:
                key = describe(first, where).split("'")[1]
                raise InputError(f"{where}: unknown key '{key.rsplit('.', 1)[0]}.{stray[0]}' (did you mean "
                                 f"'{key}'?)") from None
        raise InputError(describe(first, where)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return validate_params(raw, str(path))


def flatten(nested: dict, prefix: str = "") -> dict:
    """Nested sections -> {dotted key: value}."""
    out = {}
    for key, value in nested.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def flat_defaults() -> dict:
    """Dotted key -> default value, for every leaf of the schema."""
    return flatten(Params().model_dump())


def check_dataset(name: str, params: Params | None = None) -> str:
    """``name`` if it is a built-in dataset or a corpus registered in ``params``, else one line."""
    known = [*BUILTIN, *(params.corpora if params is not None else {})]
    if name not in known:
        raise InputError(f"unknown dataset {name!r}; expected one of {known}"
                         + ("" if params is not None else " (or a corpus registered under 'corpora' in params.yaml)"))
    return name
