"""``params.yaml`` as a schema: every key, its type, range and default, checked once when the file is read.

An unknown key is refused with the nearest valid key; a key left out takes its default (the behaviour the
pipeline had before the key existed, mostly the released MGLRA's). ``load_params`` returns the typed ``Params``
with every key present; a stage reads ``params.train.lr``, and ``params.for_dataset(d)`` gives the values of keys set
once or per dataset (``model.hidden: {iemocap: 128, meld: 256}``) as dataset ``d``'s.

Datasets are the two built-ins and the corpora registered under ``corpora`` (docs/corpora.md). A key given per
dataset names ``iemocap`` and ``meld`` and may name a corpus too; a corpus it does not name takes the value of the
built-in its entry is ``like``.
"""
from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, NonNegativeInt, PositiveInt, Tag, ValidationError,
                      model_validator)

from erc.runtime.errors import InputError

BUILTIN = ("iemocap", "meld")
DATASETS = BUILTIN   # the built-in datasets (a corpus is registered in params.yaml)
# output folders beside the per-dataset ones (plots/<dataset>, metrics/<dataset>.json): no corpus may take their name
RESERVED = ("finetune", "finetuned", "train", "teachers", "references", "details", "table1")
Rate = Annotated[float, Field(ge=0, lt=1)]  # dropout rates, mask ratios: a probability below 1
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    def __reduce__(self):  # pickled as its values: ByDataset[...] classes are made at import and cannot be pickled
        return type(self).model_validate, (self.model_dump(),)


class ByDataset(Section):
    """A value per dataset: both built-ins, and any registered corpus (an extra key, checked by ``Params``)."""
    model_config = ConfigDict(extra="allow")

    def value(self, dataset: str, like: str):
        """``dataset``'s value; a corpus not named here takes the built-in's it is ``like``."""
        values = dict(self)
        return values[dataset] if dataset in values else values[like]


@cache
def by_dataset(kind):
    """The ``ByDataset`` of values of type ``kind``: ``iemocap`` and ``meld`` required, corpora's keys optional."""
    class Of(ByDataset):
        __pydantic_extra__: dict[str, kind]
        iemocap: kind
        meld: kind
    Of.__name__ = Of.__qualname__ = f"ByDataset[{getattr(kind, '__name__', kind)}]"
    return Of


def per_dataset_type(kind):
    """``kind`` once for every dataset, or ``{iemocap: kind, meld: kind[, <corpus>: kind]}``."""
    return Annotated[Union[Annotated[kind, Tag("one")], Annotated[by_dataset(kind), Tag("each")]],
                     Discriminator(lambda v: "each" if isinstance(v, (dict, ByDataset)) else "one")]


class FileSources(Section):
    text: Optional[str] = None
    audio: Optional[str] = None
    visual: Optional[str] = None


class Features(Section):
    # once, or per dataset ({iemocap: minilm, meld: minilm-ft}): validation may pick a different source for each
    # ft: the encoder finetune.encoder names, fine-tuned (minilm-ft / mpnet-ft: the two offline packages, fine-tuned)
    text: per_dataset_type(Literal["minilm", "mpnet", "minilm-ft", "mpnet-ft", "ft", "file", "none"]) = "minilm"
    audio: Literal["praat", "praat-wav", "opensmile", "file", "none"] = "praat"
    visual: Literal["file", "none"] = "none"
    text_batch_size: PositiveInt = 64
    files: by_dataset(FileSources) = Field(default={"iemocap": {}, "meld": {}}, validate_default=True)
    wav_dirs: by_dataset(Optional[str]) = Field(default={"iemocap": None, "meld": None}, validate_default=True)

    @model_validator(mode="after")
    def some_modality(self):
        texts = list(dict(self.text).values()) if isinstance(self.text, ByDataset) else [self.text]
        if "none" in texts and self.audio == self.visual == "none":
            raise ValueError("selects no modality (text, audio and visual are all none)")
        return self


class Graphs(Section):
    window_past: Annotated[int, Field(ge=-1)] = -1     # -1 = whole dialogue
    window_future: Annotated[int, Field(ge=-1)] = -1


class Model(Section):
    hidden: per_dataset_type(PositiveInt) = 128
    graph_hidden: PositiveInt = 128
    graph_layers: NonNegativeInt = 4
    attention_heads: PositiveInt = 2
    dropout: Rate = 0.5
    input_dropout: per_dataset_type(Rate) = 0.0   # once or per dataset: validation chose 0.5 on MELD only
    mask_ratio: Rate = 0.5
    av_lstm: bool = False
    speaker: Literal["text", "all", "encoder"] = "text"
    speaker_init_std: PositiveFloat = 1.0   # the speaker embedding's N(0, std) init; released: 1.0
    block_order: Literal["graph_first", "released"] = "graph_first"
    faithful: bool = False

    @model_validator(mode="after")
    def widths_fit(self):
        widths = [self.hidden] if isinstance(self.hidden, int) else list(dict(self.hidden).values())
        for width in widths:
            if width % 2 or width % self.attention_heads:
                raise ValueError(f"hidden {width} must be even (BiLSTM directions) and divisible by "
                                 f"attention_heads {self.attention_heads}")
        return self


class Train(Section):
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 3e-5
    batch_size: PositiveInt = 16
    epochs: per_dataset_type(PositiveInt) = Field(default={"iemocap": 60, "meld": 20}, validate_default=True)
    seeds: Annotated[list[NonNegativeInt], Field(min_length=1)] = [0, 1, 2, 3, 4]
    loss: per_dataset_type(Literal["weighted_nll", "focal", "ce"]) = Field(
        default={"iemocap": "weighted_nll", "meld": "focal"}, validate_default=True)
    focal_gamma: NonNegativeFloat = 2.5
    # chance that a training utterance's audio / visual input is marked missing (zeroed, flag set), so that the
    # model also learns to work from text alone; MGLRA's training only (not teachers, not references)
    modality_dropout: Rate = 0.0
    # what one draw marks: an utterance, or a whole dialogue (every utterance of it: what a text-only dialogue is)
    modality_dropout_unit: Literal["utterance", "dialogue"] = "utterance"

    @model_validator(mode="after")
    def distinct_seeds(self):
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        return self


class Teachers(Section):
    seed: NonNegativeInt = 0


class Finetune(Section):
    """The finetune_text stage (features.text: minilm-ft | mpnet-ft | ft); erc.training.finetune says what each key does."""
    # what features.text: ft fine-tunes: minilm | mpnet (the offline packages) | a Hugging Face model id (from the
    # local cache, or the hub where reachable) | a local directory in the transformers layout
    encoder: per_dataset_type(Optional[Annotated[str, Field(min_length=1)]]) = None
    epochs: per_dataset_type(PositiveInt) = Field(default={"iemocap": 4, "meld": 3}, validate_default=True)
    lr: PositiveFloat = 1e-4
    batch_size: PositiveInt = 32
    max_length: Annotated[int, Field(ge=16, le=512)] = 160
    seed: NonNegativeInt = 0
    freeze_layers: NonNegativeInt = 0   # the embeddings and this many lowest layers stay frozen (0: none)
    warmup: Rate = 0.1                  # share of the steps with a linear learning-rate warm-up
    # once or per dataset: validation chooses the recipe for each
    context: per_dataset_type(NonNegativeInt) = 0   # previous turns (with speaker tags) as a second segment
    context_future: per_dataset_type(NonNegativeInt) = 0  # following turns too, after the previous ones (EmoBERTa's)
    folds: per_dataset_type(NonNegativeInt) = 0     # cross-fitting folds over training dialogues (0: none, else >= 2)
    fold_by: per_dataset_type(Literal["dialogue", "session"]) = "dialogue"  # what a fold deals: dialogues, or
                                                                          # IEMOCAP sessions (speaker-disjoint folds)
    eval_from: per_dataset_type(Literal["full", "folds"]) = "full"  # validation / test features: the all-data
                                                                   # encoder or the folds' mean
    loss: per_dataset_type(Literal["weighted_nll", "focal", "ce"]) = Field(
        default={"iemocap": "weighted_nll", "meld": "ce"}, validate_default=True)
    # fp32 | bf16 | fp16 (autocast of the encoder's forward on CUDA, fp16 with a gradient scaler; refused on CPU)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    accumulate: PositiveInt = 1        # micro-batches a batch is run as (gradients summed, one step): less memory
    checkpointing: bool = False        # gradient checkpointing of the encoder's layers: less memory, more time

    @model_validator(mode="after")
    def folds_are_none_or_several(self):
        for name, k in (dict(self.folds).items() if isinstance(self.folds, ByDataset) else [("", self.folds)]):
            if k == 1:
                raise ValueError(f"folds{'.' + name if name else ''} must be 0 (no cross-fitting) or at least 2, got 1")
        meld = self.fold_by.meld if isinstance(self.fold_by, ByDataset) else self.fold_by
        if meld == "session":
            where = "fold_by.meld" if isinstance(self.fold_by, ByDataset) else "fold_by (once, so MELD's too)"
            raise ValueError(f"{where}: MELD has no sessions; fold by session on IEMOCAP only "
                             "({iemocap: session, meld: dialogue})")
        return self


class Mrl(Section):
    enabled: bool = True
    shared: bool = False
    nesting: list[PositiveInt] = [8, 16, 32, 64, 128]  # [] = the full block only
    weights: Optional[list[NonNegativeFloat]] = None
    reduction: Literal["sum", "mean"] = "sum"   # over nesting sizes; sum as in MRL, mean keeps λ_ce / λ_kd comparable


class Mkd(Section):
    enabled: bool = True
    lambda_ce: NonNegativeFloat = 1.0
    lambda_kd: NonNegativeFloat = 1.0
    temperature: PositiveFloat = 1.0
    placement: Literal["unimodal", "encoder", "graph"] = "unimodal"  # the paper's U_k = C_k(E_k(x_k))
    # what answers a dialogue without audio (evaluate's text-only metrics, predict.py), once or per dataset: fused
    # (the full output, audio marked missing) | student (the text student head U_text, which never sees audio;
    # unimodal placement only) | teacher (the frozen text teacher) | student+teacher (the mean of their
    # probabilities); an answer the checkpoint cannot give falls back to fused (erc.models.mglra.text_only_head)
    text_only: per_dataset_type(Literal["fused", "student", "teacher", "student+teacher"]) = "fused"


class References(Section):
    logreg_C: Annotated[list[PositiveFloat], Field(min_length=1)] = [0.01, 0.1, 1.0, 10.0]
    bclstm_hidden: PositiveInt = 128
    bclstm_lr: PositiveFloat = 1e-3


def _resolved(section: Section, dataset: str, like: str) -> Section:
    """A copy of ``section`` with each key given per dataset replaced by ``dataset``'s value (a corpus not named:
    the value of the built-in it is ``like``), section by section."""
    updates = {}
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        structural = isinstance(field.annotation, type) and issubclass(field.annotation, ByDataset)  # files, wav_dirs
        if isinstance(value, ByDataset) and not structural:
            updates[name] = value.value(dataset, like)
        elif isinstance(value, Section) and not isinstance(value, ByDataset):
            updates[name] = _resolved(value, dataset, like)
    return section.model_copy(update=updates)


def _per_dataset_values(section: Section, prefix: str = ""):
    """(dotted key, ByDataset) of every value given per dataset, sections and leaves alike."""
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, ByDataset):
            yield prefix + name, value
        elif isinstance(value, Section):
            yield from _per_dataset_values(value, f"{prefix}{name}.")


class CorpusEntry(Section):
    """A corpus of your own (docs/corpora.md): the file and its card."""
    path: str   # data/corpora/<file>.csv | .jsonl: the stages' dvc.yaml dep is that folder
    labels: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=2)]  # class index = position
    speakers: Literal["per_dialogue", "global"] = "per_dialogue"
    speaker_names: Optional[Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]] = None
    split_seed: NonNegativeInt = 0     # without a split column: dialogues dealt by this seed and these fractions
    split_fractions: Annotated[list[NonNegativeFloat], Field(min_length=3, max_length=3)] = [0.8, 0.1, 0.1]
    like: Literal["iemocap", "meld"] = "meld"  # whose values the keys given per dataset give it, unless they name it

    @model_validator(mode="after")
    def card_is_sound(self):
        if not self.path.startswith("data/corpora/") or Path(self.path).suffix not in (".csv", ".jsonl") \
                or ".." in Path(self.path).parts:
            raise ValueError(f"path must be a .csv or .jsonl file under data/corpora/ (the folder the stages "
                             f"depend on), got {self.path!r}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must list each class once, got {self.labels}")
        if self.speaker_names is not None and self.speakers != "global":
            raise ValueError("speaker_names is the global vocabulary: set speakers: global, or leave it out")
        if self.speaker_names is not None and len(set(self.speaker_names)) != len(self.speaker_names):
            raise ValueError(f"speaker_names must list each speaker once, got {self.speaker_names}")
        if abs(sum(self.split_fractions) - 1) > 1e-6 or not all(self.split_fractions):
            raise ValueError(f"split_fractions must be three shares (train, valid, test), each above 0, summing "
                             f"to 1, got {self.split_fractions}")
        return self


class Params(Section):
    datasets: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = list(BUILTIN)
    corpora: dict[str, CorpusEntry] = {}   # your own conversations, by name (docs/corpora.md)
    workers: PositiveInt = 2   # processes for independent units of work; each runs on one thread (cannot change a number)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda where PyTorch sees a GPU, else cpu (erc.runtime.device)
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
        return _resolved(self, check_dataset(dataset, self), self.like(dataset))

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
        for key, value in _per_dataset_values(self):
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


def describe(error: dict, where: str) -> str:
    """One line for the first schema error: the dotted key, what it must be, what it got."""
    path = [str(p) for p in error["loc"] if isinstance(p, str) and p not in ("one", "each") and "[" not in p]
    key = ".".join(path)
    if error["type"] == "extra_forbidden":
        near = difflib.get_close_matches(key, dotted_keys(), n=1, cutoff=0.6)
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
