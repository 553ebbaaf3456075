"""Stage extract_features' work: the canonical feature file (``erc.data.feature_file``) from the raw data and the sources
that ``params.yaml`` chooses (text encoders, Praat / openSMILE audio, the standard public feature pickles)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from erc.features import audio as audio_lib
from erc.features import wav as wav_lib
from erc.data.card import builtin_card
from erc.data.corpus import Corpus, load_corpus
from erc.data.datasets import Dialogue
from erc.data.feature_file import FeatureFile
from erc.data.feature_pickles import read_feature_file
from erc.runtime.device import stage_device
from erc.features.utterance_encoder import FINETUNED, finetune_summary, text_features
from erc.runtime.errors import InputError
from erc.config.params import BUILTIN, Params

MODALITIES = ("text", "audio", "visual")


def align_file_features(per_dialogue: dict[str, np.ndarray], file_labels: dict[str, list[int]],
                        dialogues: list[Dialogue], path) -> np.ndarray:
    """Stack a file's per-dialogue arrays in our dialogue order; refuse the first dialogue that disagrees.

    The file's labels must equal the metadata's, so a different utterance order or id scheme is refused.
    """
    rows = []
    for d in dialogues:
        array = per_dialogue.get(d.id)
        if array is None:
            raise InputError(f"{path}: dialogue {d.id} is missing")
        labels = file_labels[d.id]
        if labels != list(d.labels):
            if len(labels) != len(d):
                detail = f"the file has {len(labels)} labels, the metadata {len(d)}"
            else:
                i = next(i for i, (a, b) in enumerate(zip(labels, d.labels)) if a != b)
                detail = f"first at utterance {i}: file {labels[i]}, metadata {d.labels[i]}"
            raise InputError(f"{path}: dialogue {d.id}: labels differ from the metadata ({detail})")
        if len(array) != len(d):
            raise InputError(f"{path}: dialogue {d.id} has {len(array)} utterances, the metadata has {len(d)}")
        if rows and array.shape[1:] != rows[0].shape[1:]:
            raise InputError(f"{path}: dialogue {d.id} features have shape {array.shape[1:]}, expected {rows[0].shape[1:]}")
        rows.append(array)
    return np.concatenate(rows).astype(np.float32)


def check_finite(name: str, array: np.ndarray, dialogues: list[Dialogue], where) -> None:
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        ends = np.cumsum([len(d) for d in dialogues])
        dialogue = dialogues[int(np.searchsorted(ends, first, side="right"))]
        raise InputError(f"{where}: {name} features hold NaN or inf (first in dialogue {dialogue.id})")


def extract(dataset: str, params: Params, raw_dir: str | Path = "data/raw", dialogues=None, progress=True,
            finetuned_dir: str | Path = "models/finetuned") -> FeatureFile:
    """Build the canonical feature file for ``dataset`` (a built-in or a registered corpus) from the sources chosen
    in ``params['features']``; ``dialogues`` replace a built-in's (tests). A corpus's audio is measured from its
    wav column (Praat), or is absent."""
    raw_dir = Path(raw_dir)
    p = params.for_dataset(dataset)
    sources = {m: getattr(p.features, m) for m in MODALITIES}  # checked by the params schema
    own = dataset not in BUILTIN
    if dialogues is not None and own:
        raise InputError(f"{dataset}: dialogues can replace a built-in dataset's only; a corpus is read from its file")
    corpus = load_corpus(dataset, params, raw_dir) if dialogues is None else \
        Corpus(builtin_card(dataset), dialogues, "given", {})
    dialogues = corpus.dialogues
    if own:  # a corpus: audio from its wavs when it has any, else none; no visual
        sources["audio"] = "praat-wav" if corpus.audio and sources["audio"] != "none" else "none"
        sources["visual"] = "none"
        if all(s == "none" for s in sources.values()):
            raise InputError(f"corpus {dataset}: no modality to extract (features.text is none and it has no wav)")
    for d in dialogues:
        if len(d) == 0:
            raise InputError(f"{dataset}: dialogue {d.id} has no utterances")
    train_rows = np.concatenate([[d.split == "train"] * len(d) for d in dialogues])
    device = stage_device(params)
    features, audio_scaling, devices = {}, None, {"extract": device.type}
    for modality, source in sources.items():
        if source == "none":
            continue
        if source == "file":
            path = getattr(getattr(p.features.files, dataset), modality)  # the schema made sure it is set
            per_dialogue, file_labels = read_feature_file(path, modality, dataset, [d.id for d in dialogues])
            array = align_file_features(per_dialogue, file_labels, dialogues, path)
            where = path
        elif modality == "text":
            array = text_features(source, dataset, dialogues, finetuned_dir, p.finetune.eval_from,
                                  p.features.text_batch_size, progress, device)
            if source in FINETUNED:
                devices["finetune"] = finetune_summary(Path(finetuned_dir) / dataset).get("device", "cpu")
            where = f"{source} text encoder"
        else:
            wav_dir = getattr(p.features.wav_dirs, dataset) if not own else None
            if own:
                values, missing, columns = wav_lib.corpus_wav_descriptors(corpus, progress)
                if missing[train_rows].all():
                    raise InputError(f"corpus {dataset}: no training utterance has a wav, so its audio cannot be "
                                     "scaled (give training dialogues wavs, or set features.audio: none)")
            elif source == "praat":
                values, missing, columns = audio_lib.shipped_descriptors(dataset, dialogues, raw_dir / "found")
            elif source == "praat-wav":
                values, missing, columns = wav_lib.wav_folder_descriptors(dataset, dialogues, wav_dir, progress)
            else:
                values, missing, columns = audio_lib.opensmile_features(dataset, dialogues, wav_dir)
            scaling = audio_lib.fit_scaling(values, train_rows, columns)
            if source == "praat-wav":  # what predict.py scales a new wav with (the shipped ones it can recompute)
                audio_scaling = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in scaling.items()}
            array = np.concatenate([audio_lib.apply_scaling(values, scaling), missing[:, None].astype(np.float32)],
                                   axis=1)
            where = f"{source} audio"
        if modality == "text" and array.ndim == 2:
            array = array[:, None, :]  # a single text vector is one "layer"
        check_finite(modality, array, dialogues, where)
        features[modality] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return FeatureFile(
        dataset=dataset,
        classes=corpus.classes,
        n_speakers=corpus.n_speakers,
        sources=sources,
        dialogue_ids=[d.id for d in dialogues],
        splits=[d.split for d in dialogues],
        lengths=torch.tensor([len(d) for d in dialogues]),
        speakers=torch.tensor([s for d in dialogues for s in d.speakers]),
        labels=torch.tensor([y for d in dialogues for y in d.labels]),
        sentences=[s for d in dialogues for s in d.sentences],
        features=features,
        devices=devices,  # where the text encoders ran (fine-tuning, extraction): recorded in the metrics
        audio_scaling=audio_scaling,
        corpus=corpus_record(corpus, params) if own else None,
    )


def corpus_record(corpus: Corpus, params: Params) -> dict:
    """What a corpus's feature file keeps of its card and split (the built-ins' files hold none of it)."""
    entry = params.corpora[corpus.card.name]
    return {"path": entry.path, "labels": corpus.classes, "speakers": corpus.card.speakers,
            "speaker_vocabulary": corpus.speaker_vocabulary, "like": entry.like, "split": corpus.split_source,
            "n_dialogues": {s: sum(d.split == s for d in corpus.dialogues) for s in ("train", "valid", "test")}}
