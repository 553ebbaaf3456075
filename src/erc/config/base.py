"""The params schema's building blocks: a ``Section`` (strict, unknown keys refused), values given once or per
dataset (``per_dataset_type``, ``ByDataset``), and the ranges several sections share."""
from __future__ import annotations

from functools import cache
from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

BUILTIN = ("iemocap", "meld")
DATASETS = BUILTIN   # the built-in datasets (a corpus is registered in params.yaml)
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


def per_dataset_values(section: Section, prefix: str = ""):
    """(dotted key, ByDataset) of every value given per dataset, sections and leaves alike."""
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, ByDataset):
            yield prefix + name, value
        elif isinstance(value, Section):
            yield from per_dataset_values(value, f"{prefix}{name}.")


def resolved(section: Section, dataset: str, like: str) -> Section:
    """A copy of ``section`` with each key given per dataset replaced by ``dataset``'s value (a corpus not named:
    the value of the built-in it is ``like``), section by section."""
    updates = {}
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        structural = isinstance(field.annotation, type) and issubclass(field.annotation, ByDataset)  # files, wav_dirs
        if isinstance(value, ByDataset) and not structural:
            updates[name] = value.value(dataset, like)
        elif isinstance(value, Section) and not isinstance(value, ByDataset):
            updates[name] = resolved(value, dataset, like)
    return section.model_copy(update=updates)
