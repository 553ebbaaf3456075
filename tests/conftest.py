"""Shared fixtures: a small random-feature dataset (inputs are noise, never derived from labels); a tiny random
BERT in the transformers layout (what the fine-tuning tests train instead of the real MiniLM); and ``pipeline``, the
one end-to-end ``dvc repro`` of the run, shared by tests/test_pipeline.py and tests/test_own_corpus.py
(docs/testing.md)."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from scipy.io import wavfile

from erc.data.graphs import build_graphs
from erc.runtime.project import copy_project

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"


def random_feats(lengths, splits, n_classes=3, n_speakers=2, text=(2, 12), audio=5, seed=0):
    from erc.data.feature_file import FeatureFile
    g = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    feats = {"text": torch.randn(n, *text, generator=g)}
    if audio:
        feats["audio"] = torch.randn(n, audio, generator=g)
    return FeatureFile(
        dataset="toy", classes=[f"c{i}" for i in range(n_classes)], n_speakers=n_speakers,
        sources={"text": "random", "audio": "random", "visual": "none"},
        dialogue_ids=[str(i) for i in range(len(lengths))], splits=list(splits),
        lengths=torch.tensor(lengths), speakers=torch.randint(0, n_speakers, (n,), generator=g),
        labels=torch.randint(0, n_classes, (n,), generator=g), sentences=[""] * n, features=feats)


def shapes_only(features: dict, n_speakers: int, classes):
    """A one-utterance feature file with ``features``' shapes: what ``model_config`` reads of a real one."""
    from erc.data.feature_file import FeatureFile
    zero = torch.zeros(1, dtype=torch.long)
    return FeatureFile("toy", list(classes), n_speakers, ["d"], ["train"], torch.tensor([1]), zero, zero, features)


@pytest.fixture
def toy():
    lengths = [5, 3, 7, 4, 6, 2, 5, 4, 3, 6]
    splits = ["train"] * 6 + ["valid"] * 2 + ["test"] * 2
    feats = random_feats(lengths, splits)
    graphs = build_graphs(lengths, len(feats.features))
    return feats, graphs


def small_model_kwargs(feats, **overrides):
    kwargs = dict(input_dims={m: tuple(t.shape[1:]) for m, t in feats.features.items()},
                  n_speakers=feats.n_speakers, n_classes=len(feats.classes), hidden=16, graph_hidden=8,
                  graph_layers=2, attention_heads=2, dropout=0.5, mask_ratio=0.5)
    kwargs.update(overrides)
    return kwargs


def small_config(feats, **overrides):
    """A tiny ``MGLRAConfig`` for ``feats`` (``small_model_kwargs``)."""
    from erc.models.mglra import MGLRAConfig
    return MGLRAConfig(**small_model_kwargs(feats, **overrides))


# ---------------------------------------------------------------- tiny random encoders (no download)
SIZE = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64)
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
DEBERTA_SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]  # GPT-2 byte-level BPE with BERT's specials


def wordpiece_vocab():
    """MiniLM's BERT WordPiece vocabulary (a file of the offline package): real subwords, no download."""
    from erc.features.text import minilm_dir
    return str(minilm_dir() / "vocab.txt")


def bytelevel_bpe(tmp_path, sentences, specials=ROBERTA_SPECIALS):
    """A byte-level BPE vocabulary (RoBERTa's and DeBERTa's kind) trained here on the transcripts."""
    from tokenizers import ByteLevelBPETokenizer
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences, vocab_size=400, min_frequency=1, special_tokens=specials)
    folder = tmp_path / "bpe"
    folder.mkdir()
    bpe.save_model(str(folder))
    return str(folder / "vocab.json"), str(folder / "merges.txt")


def tiny_encoder(family, tmp_path, sentences):
    """A folder in the transformers layout: a random ``family`` encoder (3 layers of width 32) and its tokenizer."""
    from transformers import (AutoModel, BertConfig, BertTokenizerFast, DebertaConfig, DebertaTokenizerFast,
                              MPNetConfig, MPNetTokenizerFast, RobertaConfig, RobertaTokenizerFast)
    if family == "bert":
        tokenizer = BertTokenizerFast(wordpiece_vocab())
        config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=128, **SIZE)
    elif family == "roberta":
        tokenizer = RobertaTokenizerFast(*bytelevel_bpe(tmp_path, sentences))
        config = RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=130, pad_token_id=1, **SIZE)
    elif family == "deberta":
        tokenizer = DebertaTokenizerFast(*bytelevel_bpe(tmp_path, sentences, DEBERTA_SPECIALS))
        config = DebertaConfig(vocab_size=len(tokenizer), max_position_embeddings=128,
                               pad_token_id=tokenizer.pad_token_id, **SIZE)
    else:
        tokenizer = MPNetTokenizerFast(wordpiece_vocab())
        config = MPNetConfig(vocab_size=len(tokenizer), max_position_embeddings=130,
                             pad_token_id=tokenizer.pad_token_id, **SIZE)
    torch.manual_seed(0)
    folder = tmp_path / f"tiny-{family}"
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A random BERT with MiniLM's tokenizer, built once: ``finetune.encoder`` for tests whose subject is the
    fine-tuning code, not MiniLM's weights (tests/test_finetune.py keeps one real-MiniLM test)."""
    return tiny_encoder("bert", tmp_path_factory.mktemp("encoders"), [])


# ---------------------------------------------------------------- commands
def run(cmd, cwd):
    """A shell command in ``cwd`` that must succeed (DVC without analytics, git with an identity): its output."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", PYTHONWARNINGS="ignore")
    result = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def stages_run(output):
    """The stages a ``dvc repro`` / ``dvc exp run`` output says it ran (or, with --dry, would run)."""
    return sorted({line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")})


# ---------------------------------------------------------------- your own conversations, made here
LABELS = ["calm", "happy", "angry", "sad"]
WORDS = {"calm": "that is fine, we can talk it over slowly", "happy": "great news, I love it, wonderful",
         "angry": "this is outrageous, stop it right now", "sad": "I miss them, it hurts, so lonely"}
RATE = 16000


def speech(f0, seconds=0.8, humps=3):
    """A voice-like sound: harmonics of ``f0`` under syllable-like intensity humps."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / RATE
    source = sum(np.sin(k * phase) / k for k in range(1, 15))
    return 0.3 * source * np.sin(np.pi * humps * t / seconds) ** 2 / np.abs(source).max()


def make_corpus(folder, n_dialogues=24, split=True, audio=True, speakers=("Ann", "Bob", "Cy")):
    """Rows of ``n_dialogues`` short dialogues: two or three speakers, four labels (a few turns unlabelled); with
    ``audio``, the first dialogues' turns as spans of one wav each and one turn with a wav of its own."""
    rng = np.random.default_rng(0)
    rows = []
    for d in range(n_dialogues):
        part = "train" if d % 6 < 4 else ("valid" if d % 6 == 4 else "test")
        who = list(speakers[:2 + d % 2])
        turns = [(who[t % len(who)], LABELS[int(rng.integers(4))]) for t in range(4 + d % 3)]
        wav_name, clock, sounds = f"wav/d{d}.wav", 0.0, []
        for t, (speaker, label) in enumerate(turns):
            row = {"dialogue": f"d{d}", "speaker": speaker, "text": f"{WORDS[label]} ({t})",
                   "label": "" if (d, t) in {(0, 1), (5, 0)} else label}
            if split:
                row["split"] = part
            if audio and d < 9:
                sound = speech(110 + 40 * LABELS.index(label) + 10 * who.index(speaker))
                row.update(wav=wav_name, start=round(clock, 4), end=round(clock + len(sound) / RATE, 4))
                sounds.append(sound)
                clock += len(sound) / RATE
            rows.append(row)
        if sounds:
            (folder / "wav").mkdir(parents=True, exist_ok=True)
            wavfile.write(folder / wav_name, RATE, (np.concatenate(sounds) * 32767).astype(np.int16))
    if audio:  # a turn with a wav of its own (no span)
        wavfile.write(folder / "wav" / "own.wav", RATE, (speech(150) * 32767).astype(np.int16))
        rows[-1].update(wav="wav/own.wav", start="", end="")
    return rows


def write_rows(path, rows, columns):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({c: r[c] for c in columns if c in r}) + "\n" for r in rows))
    else:
        import csv
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return path


# ---------------------------------------------------------------- the end-to-end project, run once
KEEP = {"train": 3, "valid": 2, "test": 2}  # IEMOCAP's and MELD's dialogues kept in each split
CSV_COLUMNS = ["dialogue", "speaker", "text", "label", "split", "wav", "start", "end"]
CORPORA = {  # mine: a split column, wav spans, one speaker vocabulary; talk: no split, no audio, dealt by seed
    "mine": {"path": "data/corpora/mine.csv", "labels": LABELS, "speakers": "global"},
    "talk": {"path": "data/corpora/talk.jsonl", "labels": LABELS, "split_seed": 3, "split_fractions": [0.6, 0.2, 0.2]},
}


def trim_metadata(raw):
    """Keep the first few dialogues of each split in the metadata pickles (the other raw files stay whole)."""
    with open(raw / "iemocap.pkl", "rb") as f:
        speakers, labels, sentences, train, test, valid = pickle.load(f)
    train, valid, test = train[:KEEP["train"]], valid[:KEEP["valid"]], test[:KEEP["test"]]
    keep = set(train + valid + test)
    pick = lambda d: {k: v for k, v in d.items() if k in keep}  # noqa: E731
    with open(raw / "iemocap.pkl", "wb") as f:
        pickle.dump([pick(speakers), pick(labels), pick(sentences), train, test, valid], f)
    with open(raw / "meld.pkl", "rb") as f:
        speakers, labels, sentiment, sentences, train, test, valid = pickle.load(f)
    train, valid, test = train[:KEEP["train"]], valid[:KEEP["valid"]], test[:KEEP["test"]]
    keep = set(train + valid + test)
    with open(raw / "meld.pkl", "wb") as f:
        pickle.dump([pick(speakers), pick(labels), pick(sentiment), pick(sentences), train, test, valid], f)


def tiny_params(path):
    """The working tree's params on a tiny model, both built-in datasets and both corpora; the default MRL + MKD
    setup whatever the working tree's params say; ``workers: 1`` (their count is tests/test_parallel.py's subject)."""
    from erc.config.params import validate_params
    p = yaml.safe_load(path.read_text())
    p["datasets"] = ["iemocap", "meld", *CORPORA]
    p["corpora"] = CORPORA
    text = p["features"]["text"]
    text = dict(text) if isinstance(text, dict) else {"iemocap": text, "meld": text}
    p["features"]["text"] = {**text, "mine": "minilm-ft", "talk": "minilm"}  # talk: frozen MiniLM, not fine-tuned
    p["workers"] = 1
    p["model"].update(hidden={"iemocap": 16, "meld": 16}, graph_hidden=8, graph_layers=2)
    p["train"].update(epochs={"iemocap": 2, "meld": 2, "mine": 3}, seeds=[0, 1])  # a per-dataset key naming a corpus
    p["mrl"].update(enabled=True, shared=False, nesting=[2, 4, 8])
    p["mkd"].update(enabled=True, lambda_kd=1.0)
    p["references"].update(logreg_C=[1.0], bclstm_hidden=8)
    p["finetune"].update(epochs=1, max_length=48)  # with a fine-tuned text default: its folds, one short epoch
    validate_params(p)  # the test's own params are sound
    path.write_text(yaml.safe_dump(p, sort_keys=False))


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """A throwaway copy of the project, run once with ``dvc repro`` and committed, shared by every test that needs
    a whole run: IEMOCAP and MELD cut to a few real dialogues (``KEEP``), and two corpora made here (``CORPORA``;
    their rows in ``rows``); ``first``: what that repro printed, ``stages``: the stages it ran. A test that changes the project puts it back."""
    repo = tmp_path_factory.mktemp("pipeline") / "project"
    copy_project(ROOT, repo)
    trim_metadata(repo / "data" / "raw")
    corpora = repo / "data" / "corpora"
    rows = {"mine": make_corpus(corpora),
            "talk": make_corpus(corpora, n_dialogues=30, split=False, audio=False,
                                speakers=("host", "guest", "caller"))}
    write_rows(corpora / "mine.csv", rows["mine"], CSV_COLUMNS)
    write_rows(corpora / "talk.jsonl", rows["talk"], ["dialogue", "speaker", "text", "label"])
    tiny_params(repo / "params.yaml")
    run("git init -q && git add -A && git commit -qm tiny", repo)
    first = run("dvc repro", repo)
    run("git add -A && git commit -qm 'tiny run'", repo)
    return SimpleNamespace(repo=repo, first=first, stages=stages_run(first), rows=rows)
