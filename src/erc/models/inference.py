"""Predict the emotion of every turn of a new dialogue with a trained checkpoint (offline, on params' ``device``)."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from erc.features.audio import apply_scaling, shipped_scaling
from erc.data.batching import DialogueData
from erc.data.card import builtin_card, speaker_indices
from erc.data.feature_file import FeatureFile
from erc.data.corpus import check_text, lies_in, valid_unicode
from erc.config.params import BUILTIN
from erc.features.utterance_encoder import FINETUNED, text_features
from erc.data.graphs import dialogue_graph
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch
from erc.models.checkpoint import Checkpoint
from erc.models.mglra import MGLRA, MGLRAConfig, restore, text_only_head
from erc.data.datasets import Dialogue
from erc.features.wav import wav_descriptors


# Bounds on a dialogue predict.py reads: its graph grows with the square of the turns (5,000 took over 5 minutes on
# CPU), and the text encoders read only an utterance's first 128-160 tokens (some 600 characters) anyway
MAX_TURNS = 1000
MAX_TEXT_CHARS = 5000


def read_dialogue(path: str | Path, allow_any_path: bool = False) -> list[dict]:
    """The turns of a dialogue JSON file, checked (docs/security.md): at most ``MAX_TURNS``, each text by the corpus
    reader's rule (``check_text``) and at most ``MAX_TEXT_CHARS``; a ``wav`` is taken relative to the file and must
    lie in its folder, unless ``allow_any_path``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: dialogue file not found")
    try:
        turns = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except (UnicodeDecodeError, RecursionError) as err:
        raise InputError(f"{path}: not a UTF-8 JSON dialogue ({type(err).__name__})") from None
    except OSError as err:  # a read's error names no file
        raise InputError(f"{path}: unreadable ({err.strerror or type(err).__name__})") from None
    if not isinstance(turns, list) or not turns:
        raise InputError(f"{path}: expected a non-empty list of {{speaker, text}} turns")
    if len(turns) > MAX_TURNS:
        raise InputError(f"{path}: {len(turns)} turns, at most {MAX_TURNS} (the dialogue's graph grows with the "
                         "square of its turns): split it")
    for i, turn in enumerate(turns):
        where = f"{path}: turn {i}"
        if not isinstance(turn, dict) or "text" not in turn \
                or not isinstance(turn.get("speaker"), (str, int)) or isinstance(turn.get("speaker"), bool):
            raise InputError(f"{where} needs a 'speaker' (a name) and a 'text' string")
        check_text(turn["text"], where, max_chars=MAX_TEXT_CHARS)
        if isinstance(turn["speaker"], str):
            valid_unicode(turn["speaker"], where, "speaker")
        if "wav" in turn:
            if not isinstance(turn["wav"], str) or not turn["wav"]:
                raise InputError(f"{where} 'wav' must be the path of a wav file")
            if "audio" in turn:
                raise InputError(f"{where} gives both 'wav' and 'audio'; give one")
            wav = path.parent / valid_unicode(turn["wav"], where, "wav")  # relative to the dialogue file
            if not allow_any_path and not lies_in(wav, path.parent):
                raise InputError(f"{where}: wav {turn['wav']!r} lies outside the dialogue's folder "
                                 f"{path.parent.resolve()} (--allow-any-path reads it)")
            turn["wav"] = str(wav)
    return turns


def wav_audio(path: str, dataset: str, source: str, scaling: dict, where: str) -> list[float]:
    """A turn's wav measured as the model's training audio was, scaled with its training statistics
    (``scaling``: a dict filled on first use, so that a dialogue without wavs never reads them)."""
    if source not in ("praat", "praat-wav"):
        raise InputError(f"{where}: the model's audio features came from {source!r}; a 'wav' can be measured "
                         "only for models trained on the praat descriptors (praat, praat-wav)")
    raw = wav_descriptors(path, dataset, where)
    if not scaling:
        scaling.update(shipped_scaling(dataset) if source == "praat" else stored_scaling(dataset))
    row = apply_scaling(raw[None], scaling)[0]
    far = [c for c, z in zip(scaling["columns"], row) if abs(z) >= 4]
    if far:  # still predicted, but the reader should know the audio sits outside what the model was trained on
        print(f"warning: {where}: {', '.join(far)} at least 4 training stds from the training mean "
              "(clipped at 5): this recording is unlike the dataset's", file=sys.stderr)
    return row.tolist()


def stored_scaling(dataset: str) -> dict:
    """``praat-wav`` models: the statistics extraction measured on the training wavs, kept in the feature file."""
    path = f"data/features/{dataset}.pt"
    scaling = load_torch(path, "feature file (run dvc repro first)").get("audio_scaling")
    if not isinstance(scaling, dict):
        raise InputError(f"{path}: holds no audio_scaling (its audio is not praat-wav); rerun dvc repro")
    return {k: np.asarray(v) if k != "columns" else v for k, v in scaling.items()}


def dialogue_features(turns: list[dict], dims: dict, sources: dict, where, dataset: str = "iemocap",
                      speakers: list[int] | None = None, device="cpu") -> dict:
    """modality -> (n_turns, *dims[modality]) features of a new dialogue, made as the stages made the model's
    (``dims``: the model config's ``input_dims``; ``sources``: the checkpoint's feature sources)."""
    n, features = len(turns), {}  # audio first: its checks are cheap, the text encoder is not
    if "audio" in dims:
        width = dims["audio"][0]
        audio = torch.zeros(n, width)
        audio[:, -1] = 1.0  # "audio missing" unless the turn gives a wav or its standardised descriptors
        scaling = {}
        for i, turn in enumerate(turns):
            values = turn.get("audio")
            if "wav" in turn:
                values = wav_audio(turn["wav"], dataset, sources.get("audio"), scaling, f"{where}: turn {i}")
            if values is not None:
                if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                           for v in values):
                    raise InputError(f"{where}: turn {i} 'audio' must be a list of numbers")
                if len(values) != width - 1:
                    raise InputError(f"{where}: turn {i} 'audio' has {len(values)} values, expected {width - 1}")
                row = torch.tensor(values, dtype=torch.float32)
                if not torch.isfinite(row).all():  # JSON's NaN / Infinity (Python reads them) would poison the dialogue
                    raise InputError(f"{where}: turn {i} 'audio' holds NaN or infinite values")
                audio[i, :-1], audio[i, -1] = row, 0.0
        features["audio"] = audio
    if "text" in dims:
        source = sources.get("text")
        if source not in FINETUNED and source not in ("minilm", "mpnet"):
            raise InputError(f"{where}: the model's text features came from {source!r}; only minilm / mpnet "
                             "(and their fine-tuned versions) can be computed on the fly")
        # read as extraction reads a test dialogue (the fine-tuned encoders: with the context they were trained with)
        dialogue = Dialogue("new", "test", list(speakers or [0] * n), [-1] * n, [t["text"] for t in turns])
        text = text_features(source, dataset, [dialogue], progress=False, device=device)
        features["text"] = torch.from_numpy(text)
    if "visual" in dims:
        raise InputError(f"{where}: the model uses visual features, which cannot be computed from a JSON dialogue")
    return {m: features[m] for m in ("text", "audio") if m in features}  # the feature file's modality order


@dataclass(frozen=True)
class Serving:
    """How a dataset's pipeline answers a new dialogue (``predict.py`` fills it from params.yaml once): the graph's
    ``window`` (graphs.window_past, graphs.window_future); ``text_only`` (``mkd.text_only``): what answers a dialogue
    with no audio on any turn, where the checkpoint can give it (``text_only_head``): the text student head, the
    frozen text ``teacher`` (``{"config", "state"}`` of the teacher file's text entry, or a function that loads it:
    called only when a text-only dialogue needs it), or the mean of the two; the ``device`` the models run on;
    ``coding``: (card, speaker vocabulary) of the dataset (``erc.data.card.speaker_coding``; default: a built-in's)."""
    window: tuple = (-1, -1)
    text_only: str = "fused"
    teacher: Any = None
    device: str = "cpu"
    coding: tuple | None = None


@torch.no_grad()
def predict_dialogue(turns: list[dict], checkpoint: Checkpoint, dataset: str, serving: Serving = Serving(), seed=None,
                     where="dialogue") -> list[dict]:
    """Per-turn emotion and class probabilities: the mean of the probabilities of every seed the checkpoint
    holds (an ensemble), or of one ``seed``; ``serving`` says how (its window, the text-only answer, the device,
    the speaker coding). ``where`` names the dialogue in error lines."""
    window, text_only, teacher, device = serving.window, serving.text_only, serving.teacher, serving.device
    coding = serving.coding
    config, runs = checkpoint.config, checkpoint.runs
    if seed is not None and seed not in runs:
        raise InputError(f"--seed {seed}: the checkpoint holds seeds {list(runs)}")
    seeds = [seed] if seed is not None else list(runs)
    n = len(turns)
    if coding is None:
        if dataset not in BUILTIN:
            raise InputError(f"{dataset}: a corpus's speaker coding must be given (erc.data.corpus.speaker_coding)")
        coding = builtin_card(dataset), builtin_card(dataset).speaker_names
    card, vocabulary = coding
    speakers = speaker_indices([t["speaker"] for t in turns], card, vocabulary, config.n_speakers, where)
    feats = FeatureFile(dataset, card.labels, config.n_speakers, [where], ["test"], torch.tensor([n]),
                        torch.tensor(speakers), torch.full((n,), -1),
                        dialogue_features(turns, config.input_dims, checkpoint.sources, where, dataset, speakers, device),
                        checkpoint.sources)
    modalities = [m for m in ("text", "audio", "visual") if m in config.input_dims]
    batch = DialogueData(feats, [dialogue_graph(n, len(modalities), *window)], modalities).make_batch([0]).to(device)
    # a model without audio input is its own text-only answer (what evaluate scored); one with audio answers a
    # dialogue without any as mkd.text_only says
    no_audio = "audio" in feats.features and bool((feats.features["audio"][:, -1] == 1).all())
    answer = text_only_head(config, text_only) if no_audio else "fused"
    teacher_p = None
    if "teacher" in answer:
        if teacher is None:
            raise InputError(f"mkd.text_only: {text_only} needs the text teacher (models/teachers/{dataset}.pt)")
        teacher = teacher() if callable(teacher) else teacher
        model = restore(MGLRAConfig.from_dict(teacher["config"], "the text teacher"), teacher["state"], device)
        text_batch = DialogueData(feats, [dialogue_graph(n, 1, *window)], ["text"]).make_batch([0]).to(device)
        teacher_p = torch.softmax(model(text_batch)["logits"][-1], -1).cpu()
    student = answer in ("student", "student+teacher")
    model = MGLRA(config).to(device).eval()
    probabilities = torch.zeros(n, config.n_classes)  # (n_turns, n_classes), averaged over seeds
    if teacher_p is not None and not torch.isfinite(teacher_p).all():
        raise InputError(f"{where}: the text teacher gives non-finite probabilities")
    for s in seeds if answer != "teacher" else []:  # one frozen teacher: no seeds to average
        # the text student head answers from its own validation-selected epoch, where the checkpoint keeps it
        model.load_state_dict(runs[s].get("text_only_state", runs[s]["state"]) if student else runs[s]["state"])
        out = model(batch)
        p = torch.softmax(out["student_logits"]["text"] if student else out["logits"][-1], -1).cpu()
        if not torch.isfinite(p).all():  # a diverged checkpoint: say so instead of printing NaN
            raise InputError(f"{where}: the checkpoint (seed {s}) gives non-finite probabilities")
        probabilities += (p if answer != "student+teacher" else (p + teacher_p) / 2) / len(seeds)
    if answer == "teacher":
        probabilities = teacher_p
    classes = card.labels
    return [{"speaker": t["speaker"], "text": t["text"], "emotion": classes[int(p.argmax())],
             "probabilities": {c: round(float(v), 4) for c, v in zip(classes, p)}} for t, p in zip(turns, probabilities)]


def format_table(predictions: list[dict], width: int = 60) -> str:
    """A per-turn table for people: turn, speaker, emotion, its probability, the text (shortened to ``width``)."""
    rows = [("turn", "speaker", "emotion", "confidence", "text")]
    for i, p in enumerate(predictions):
        text = p["text"] if len(p["text"]) <= width else p["text"][:width - 1] + "…"
        rows.append((str(i), str(p["speaker"]), p["emotion"], f"{p['probabilities'][p['emotion']]:.2f}", text))
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row[:4], widths)), row[4]]).rstrip()
                     for row in rows)
