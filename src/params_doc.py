"""docs/params.md from the params schema: python src/params_doc.py [--check]

Every key of ``erc.config.params.Params``: its type and range (read off the pydantic schema), its default (what a key left
out of params.yaml means), its value in params.yaml, the stages that list it in dvc.yaml (a change reruns those),
and one line of meaning. ``--check`` exits non-zero when docs/params.md is not what this script writes (a test runs
it), so the page cannot drift from the schema."""
from __future__ import annotations

import typing
from pathlib import Path

import annotated_types
import yaml
from pydantic import BaseModel

from erc.reporting.pages import markdown_table, write_or_check
from erc.config.params import ByDataset, Params, Section

MEANING = {
    "datasets": "the datasets every stage runs on: iemocap, meld and the corpora registered under `corpora`",
    "corpora": "your own conversations by name: the file under data/corpora/, its label list (class index = "
               "position), speaker encoding, the split rule for a file without a split column, and which built-in's "
               "per-dataset values it takes (docs/corpora.md)",
    "workers": "processes for independent units (encoders, seeds, teachers); each runs on one thread, so it changes "
               "the wall time, never a number; no stage lists it",
    "device": "where every computing stage runs: auto = cuda where PyTorch sees a GPU, else cpu; recorded in metrics "
              "and checkpoints",
    "features.text": "text features: frozen sentence encoders, their fine-tuned forms (stage finetune_text), a "
                     "standard feature file, or none",
    "features.audio": "audio features: shipped Praat descriptors, the same measured from wavs, openSMILE eGeMAPS, a "
                      "feature file, or none",
    "features.visual": "visual features: a feature file or none (no video here)",
    "features.text_batch_size": "utterances per batch when a frozen encoder reads the text",
    "features.files": "standard public feature pickles per dataset and modality, for the `file` sources "
                      "(docs/features.md)",
    "features.wav_dirs": "raw wav folders per dataset, for audio `praat-wav` / `opensmile`",
    "graphs.window_past": "past utterances an utterance's graph node connects to (-1: the whole dialogue)",
    "graphs.window_future": "future utterances it connects to (-1: the whole dialogue)",
    "model.hidden": "D_g, the width of each modality's encoder",
    "model.graph_hidden": "H, the graph layers' width; a modality block of the fused vector is 2H wide",
    "model.graph_layers": "masked gated graph convolution layers",
    "model.attention_heads": "heads of the cross-modal attention from text",
    "model.dropout": "dropout inside the model (BiLSTMs, before the classifier and the student heads)",
    "model.input_dropout": "dropout on each modality's input features",
    "model.mask_ratio": "share of the graph layers' input features masked in training",
    "model.av_lstm": "audio and visual get a BiLSTM like text's (released: a Linear only)",
    "model.speaker": "where the speaker embedding is added: text nodes (released), every modality's nodes, or "
                     "before each BiLSTM",
    "model.speaker_init_std": "std of the speaker embedding's normal init (released: 1.0)",
    "model.block_order": "layout of a modality block: [graph output | projection] or the released order",
    "model.faithful": "reproduce the released code's quirks (attention across a batch's dialogues, mask at test time)",
    "train.lr": "Adam learning rate of the model and the teachers (the bc-LSTM has references.bclstm_lr)",
    "train.weight_decay": "Adam weight decay",
    "train.batch_size": "dialogues per batch",
    "train.epochs": "epochs; the kept epoch is the best on validation weighted F1",
    "train.seeds": "one run per seed; metrics are mean ± std over them",
    "train.loss": "task loss: class-weighted NLL (IEMOCAP), the released focal variant (MELD), or cross-entropy",
    "train.focal_gamma": "γ of the focal loss",
    "train.modality_dropout": "chance a training utterance's audio / visual is marked missing (robust to text only)",
    "train.modality_dropout_unit": "one draw per utterance, or per dialogue",
    "teachers.seed": "seed of the unimodal teachers",
    "finetune.epochs": "fine-tuning epochs of the text encoder; the kept epoch is the best on validation",
    "finetune.lr": "AdamW learning rate (linear warm-up, then linear decay)",
    "finetune.batch_size": "utterances per fine-tuning batch",
    "finetune.max_length": "tokens of utterance plus context; the context is cut from its oldest side",
    "finetune.seed": "seed of the fine-tuning (and of the fold assignment)",
    "finetune.freeze_layers": "the embeddings and this many lowest encoder layers stay frozen",
    "finetune.warmup": "share of the steps with a linear learning-rate warm-up",
    "finetune.context": "previous turns, with speaker tags, as a second input segment",
    "finetune.folds": "cross-fitting: training utterances' features from an encoder fine-tuned without their fold",
    "finetune.fold_by": "what a fold deals: dialogues, or IEMOCAP sessions (speaker-disjoint folds)",
    "finetune.eval_from": "validation / test features from the encoder on all training dialogues, or the folds' mean",
    "finetune.loss": "the fine-tuning classifier's loss",
    "finetune.precision": "fp32, or bf16 / fp16 autocast of the encoder on CUDA (fp16 with a gradient scaler; "
                          "refused on a CPU)",
    "finetune.encoder": "what `features.text: ft` fine-tunes: minilm, mpnet, a Hugging Face model id or a local folder",
    "finetune.context_future": "following turns, with speaker tags, after the previous ones (EmoBERTa's context)",
    "finetune.accumulate": "micro-batches a batch runs as (gradients summed, one step): the same update, less memory",
    "finetune.checkpointing": "gradient checkpointing of the encoder: less activation memory, more time",
    "mrl.enabled": "Matryoshka heads: nested prefixes of each modality block classify too",
    "mrl.shared": "MRL-E: one classifier whose columns serve every nesting size",
    "mrl.nesting": "prefix sizes per modality block below its full width (always added)",
    "mrl.weights": "loss weight per nesting size, full width included (null: all 1)",
    "mrl.reduction": "sum the size losses (MRL), or divide by the summed weights",
    "mkd.enabled": "modality-wise distillation from frozen unimodal teachers",
    "mkd.lambda_ce": "weight of each student head's own task loss",
    "mkd.lambda_kd": "weight of each student's distillation term",
    "mkd.temperature": "distillation temperature T (the term is scaled by T²)",
    "mkd.placement": "where a student head reads: the modality's own encoder (the paper's U_k), after attention, or "
                     "its post-graph block",
    "mkd.text_only": "what answers a dialogue without audio (evaluate's text-only figures, predict.py)",
    "references.logreg_C": "the logistic regression's C grid, chosen on validation",
    "references.bclstm_hidden": "the bc-LSTM's hidden width",
    "references.bclstm_lr": "the bc-LSTM's learning rate",
}


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
        if key not in MEANING:
            raise KeyError(f"src/params_doc.py: no meaning written for '{key}'")
        sections.setdefault(key.split(".")[0] if "." in key else "top level", []).append(
            [f"`{key}`", describe_type(field.annotation, field.metadata), show(value_of(defaults, key)),
             show(value_of(current, key)), ", ".join(readers(key, stages)) or "—", MEANING[key]])
    for section, rows in sections.items():
        lines += [f"## {section}", "",
                  markdown_table(["key", "type, range", "default", "params.yaml", "read by", "meaning"], rows), ""]
    unused = set(MEANING) - {k for k, _ in leaves()}
    if unused:
        raise KeyError(f"src/params_doc.py: meaning for keys the schema does not have: {sorted(unused)}")
    return "\n".join(lines)


def main() -> None:
    write_or_check(render(), "docs/params.md", "python src/params_doc.py")


if __name__ == "__main__":
    main()
