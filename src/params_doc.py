"""docs/params.md from the params schema: python src/params_doc.py [--check]

Every key of ``erc.config.params.Params``: its type and range (read off the pydantic schema), its default (what a key
left out of params.yaml means), its value in params.yaml, the stages that list it in dvc.yaml (a change reruns those),
and its meaning: the field's ``description``, written once beside the key in the schema (``src/erc/config/``), the
only place this script reads a meaning from. ``--check`` exits non-zero when docs/params.md is not what this script
writes (a test runs it), so the page cannot drift from the schema."""
from __future__ import annotations

import typing
from pathlib import Path

import annotated_types
import yaml
from pydantic import BaseModel

from erc.config.base import ByDataset, Section
from erc.config.params import Params
from erc.reporting.pages import markdown_table, write_or_check


def bounds_of(metadata) -> list[str]:
    out = []
    for item in metadata:
        for name, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                out.append(f"{sign} {getattr(item, name)}")
        if isinstance(item, annotated_types.MinLen):
            out.append(f"(at least {item.min_length})")
        out += bounds_of(getattr(item, "metadata", []) if not isinstance(item, annotated_types.BaseMetadata) else [])
    return out


def describe_type(kind, metadata=()) -> str:
    """A short reading of an annotation: ``int > 0``, ``a, b or c``, ``… once or per dataset``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Annotated:
        return describe_type(args[0], list(args[1:]) + list(metadata))
    if isinstance(kind, type) and issubclass(kind, ByDataset):
        inner = kind.model_fields["iemocap"].annotation
        if isinstance(inner, type) and issubclass(inner, Section):
            inner_text = "{" + ", ".join(f"{k}: {describe_type(f.annotation)}" for k, f in inner.model_fields.items()) + "}"
        else:
            inner_text = describe_type(inner)
        return f"per dataset: {inner_text}"
    bounds = ", ".join(bounds_of(metadata))
    suffix = f" {bounds}" if bounds else ""
    if origin is typing.Union:
        plain = [a for a in args if a is not type(None)]
        per_dataset = [a for a in plain if "ByDataset" in str(a)]
        if per_dataset:  # per_dataset_type: the value once, or one per dataset
            return describe_type(plain[0], metadata) + ", once or per dataset"
        return " or ".join(describe_type(a) for a in plain) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {describe_type(args[0])}{suffix}"
    if origin is dict and isinstance(args[1], type) and issubclass(args[1], Section):  # corpora: name -> entry
        return "name -> {" + ", ".join(args[1].model_fields) + "}"
    if isinstance(kind, type):
        return kind.__name__ + suffix
    return str(kind) + suffix


def leaves(model: type[BaseModel] = Params, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, pydantic field) of every documented key; a per-dataset mapping of sections (files, wav_dirs) is one key."""
    out = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, Section) and not issubclass(kind, ByDataset):
            out += leaves(kind, f"{prefix}{name}.")
        else:
            out.append((prefix + name, field))
    return out


def readers(key: str, stages: dict) -> list[str]:
    """dvc.yaml stages whose ``params`` list ``key`` or a section above it."""
    found = []
    for name, stage in stages.items():
        listed = [p if isinstance(p, str) else next(iter(p)) for p in stage.get("do", stage).get("params", [])]
        if any(key == p or key.startswith(p + ".") for p in listed):
            found.append(name)
    return found


def value_of(nested: dict, key: str):
    node = nested
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def render(params_path="params.yaml", dvc_path="dvc.yaml") -> str:
    defaults = Params().model_dump()
    current = yaml.safe_load(Path(params_path).read_text())
    stages = yaml.safe_load(Path(dvc_path).read_text())["stages"]
    def show(value) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
        return f"`{text}`"
    lines = ["# params.yaml, every key", "",
             "Generated from the schema in `src/erc/config/params.py` by `python src/params_doc.py` (a test fails when this "
             "page is out of date). *Default* is what a key left out of params.yaml means (mostly the released "
             "MGLRA's behaviour); *params.yaml* is the committed value. *Read by*: the dvc.yaml stages that list the "
             "key, which a change reruns (`predict.py` reads the model's keys too). Unknown keys, wrong types and "
             "out-of-range values are refused with one `error:` line naming the key.", ""]
    sections = {}  # section -> its rows, in the schema's order
    for key, field in leaves():
        if not field.description:
            raise KeyError(f"no meaning written for '{key}': give its field a description (src/erc/config/)")
        sections.setdefault(key.split(".")[0] if "." in key else "top level", []).append(
            [f"`{key}`", describe_type(field.annotation, field.metadata), show(value_of(defaults, key)),
             show(value_of(current, key)), ", ".join(readers(key, stages)) or "—", field.description])
    for section, rows in sections.items():
        lines += [f"## {section}", "",
                  markdown_table(["key", "type, range", "default", "params.yaml", "read by", "meaning"], rows), ""]
    return "\n".join(lines)


def main() -> None:
    write_or_check(render(), "docs/params.md", "python src/params_doc.py")


if __name__ == "__main__":
    main()
