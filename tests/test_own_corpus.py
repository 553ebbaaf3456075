"""Your own conversations end to end: a corpus made here, registered in params.yaml, through every stage with
``dvc repro`` and then ``predict.py --dataset <it>``; and the built-in path and the corpus path giving the same
features for the same dialogues."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
import yaml
from scipy.io import wavfile

from erc.corpus import builtin_card, load_corpus, write_corpus
from erc.datasets import CLASSES, load_dialogues
from erc.extraction import extract
from erc.features import load_features
from erc.params import validate_params

from conftest import RAW, ROOT
from test_pipeline import run, stages_run

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


def project(tmp_path, corpus_file, corpus_entry, datasets, text="minilm-ft"):
    """A throwaway copy of the project whose params run ``datasets`` on a tiny model."""
    repo = tmp_path / "project"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("metrics/", "plots/")) or name == "dvc.lock":
            continue
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    corpus_dir = repo / "data" / "corpora"
    shutil.copytree(corpus_file.parent, corpus_dir, dirs_exist_ok=True)
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["datasets"] = datasets
    p["corpora"] = {"mine": corpus_entry}
    p["features"]["text"] = text
    p["model"].update(hidden={"iemocap": 16, "meld": 16}, graph_hidden=8, graph_layers=2)
    p["train"].update(seeds=[0, 1])
    p["train"]["epochs"] = {"iemocap": 2, "meld": 2, "mine": 3}  # a per-dataset key naming the corpus
    p["mrl"].update(enabled=True, shared=False, nesting=[2, 4, 8])
    p["mkd"].update(enabled=True)
    p["references"].update(logreg_C=[1.0], bclstm_hidden=8)
    p["finetune"].update(epochs=1, max_length=48)
    validate_params(p)  # the test's own params are sound
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    run("git init -q && git add -A && git commit -qm corpus", repo)
    return repo


def predict(repo, dialogue):
    """predict.py's JSON answer (stdout only: the progress bars go to stderr)."""
    result = subprocess.run(["python", "src/predict.py", dialogue, "--dataset", "mine"], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


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


def test_a_corpus_with_splits_and_wavs_runs_every_stage_and_predicts(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    rows = make_corpus(source)
    write_rows(source / "mine.csv", rows, ["dialogue", "speaker", "text", "label", "split", "wav", "start", "end"])
    repo = project(tmp_path, source / "mine.csv", {"path": "data/corpora/mine.csv", "labels": LABELS,
                                                    "speakers": "global"}, ["mine"])
    out = run("dvc repro", repo)
    assert {"finetune_text", "extract_features@mine", "train_teachers@mine", "train@mine", "evaluate@mine"} <= \
        set(stages_run(out))
    feats = load_features(repo / "data" / "features" / "mine.pt", hide_test_labels=False)
    assert feats["classes"] == LABELS and feats["n_speakers"] == 3 and feats["sources"]["audio"] == "praat-wav"
    assert len(feats["dialogue_ids"]) == 24 and sorted(set(feats["splits"])) == ["test", "train", "valid"]
    labels = feats["labels"]
    assert int((labels == -1).sum()) == 2  # the unlabelled turns are kept, as context
    audio = feats["features"]["audio"]
    measured = audio[:, -1] == 0
    n_with_wav = sum(1 for r in rows if r.get("wav"))
    assert audio.shape[1] == 9 and int(measured.sum()) == n_with_wav  # 8 Praat descriptors + the missing flag
    assert torch.isfinite(audio).all() and audio[measured, :-1].std(0).gt(0).all()
    assert feats["corpus"]["speaker_vocabulary"] == ["Ann", "Bob", "Cy"] and feats["corpus"]["split"] == "column"
    metrics = json.loads((repo / "metrics" / "mine.json").read_text())
    assert 0 <= metrics["test"]["weighted_f1"]["mean"] <= 100
    details = json.loads((repo / "metrics" / "details" / "mine.json").read_text())
    assert len(details["per_seed"]) == 2 and set(details["per_seed"][0]["test"]["per_class_f1"]) == set(LABELS)
    scored = (repo / "plots" / "mine" / "test_predictions.csv").read_text().splitlines()
    n_test_labelled = sum(1 for r in rows if r["split"] == "test" and r["label"])
    assert len(scored) - 1 == 2 * n_test_labelled  # both seeds, labelled test turns only
    assert "Data and pipelines are up to date" in run("dvc repro", repo)

    (repo / "turn.wav").write_bytes((source / "wav" / "own.wav").read_bytes())
    (repo / "d.json").write_text(json.dumps([{"speaker": "Ann", "text": "great news, I love it", "wav": "turn.wav"},
                                             {"speaker": "Bob", "text": "this is outrageous, stop it"}]))
    answer = predict(repo, "d.json")
    assert [t["speaker"] for t in answer] == ["Ann", "Bob"]
    for turn in answer:
        assert turn["emotion"] in LABELS and set(turn["probabilities"]) == set(LABELS)
        assert turn["emotion"] == max(turn["probabilities"], key=turn["probabilities"].get)
    # a speaker the global vocabulary does not hold is refused in one line
    (repo / "d.json").write_text(json.dumps([{"speaker": "Zed", "text": "hello"}]))
    result = subprocess.run("python src/predict.py d.json --dataset mine", cwd=repo, shell=True,
                            capture_output=True, text=True)
    assert result.returncode != 0 and result.stderr.strip().startswith("error:") and "'Zed'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_corpus_without_split_or_audio_is_dealt_by_seed_and_runs_on_text(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    rows = make_corpus(source, n_dialogues=30, split=False, audio=False, speakers=("host", "guest", "caller"))
    write_rows(source / "mine.jsonl", rows, ["dialogue", "speaker", "text", "label"])
    entry = {"path": "data/corpora/mine.jsonl", "labels": LABELS, "split_seed": 3,
             "split_fractions": [0.6, 0.2, 0.2]}
    repo = project(tmp_path, source / "mine.jsonl", entry, ["mine"], text="minilm")  # frozen: fine-tuning is
    # the first test's
    run("dvc repro", repo)
    feats = load_features(repo / "data" / "features" / "mine.pt", hide_test_labels=False)
    assert set(feats["features"]) == {"text"} and feats["sources"]["audio"] == "none"
    assert [feats["splits"].count(s) for s in ("train", "valid", "test")] == [18, 6, 6]
    assert feats["corpus"]["split"] == "seed 3, fractions [0.6, 0.2, 0.2]"
    # per-dialogue speakers: first appearance in each dialogue, at most three
    assert feats["n_speakers"] == 3 and feats["speakers"][:2].tolist() == [0, 1]
    assert json.loads((repo / "metrics" / "mine.json").read_text())["test"]["weighted_f1"]["mean"] >= 0
    (repo / "d.json").write_text(json.dumps([{"speaker": "x", "text": "so lonely"}, {"speaker": "y", "text": "fine"}]))
    answer = predict(repo, "d.json")
    assert all(t["emotion"] in LABELS for t in answer)


def test_the_built_in_path_and_the_corpus_path_give_the_same_features(tmp_path, monkeypatch):
    """A few IEMOCAP dialogues through the built-in reader, and exported, registered as a corpus and read back:
    the same dialogues, labels, speakers, splits and text features (frozen MiniLM: no fine-tuning)."""
    dialogues = [d for split in ("train", "valid", "test")
                 for d in [d for d in load_dialogues("iemocap", RAW) if d.split == split][:2]]
    (tmp_path / "data" / "corpora").mkdir(parents=True)
    write_corpus(dialogues, CLASSES["iemocap"], lambda d, s: "MF"[s], tmp_path / "data" / "corpora" / "iem.csv")
    base = {"features": {"text": "minilm", "audio": "none"}}
    params = validate_params({**base, "datasets": ["iem"], "corpora": {"iem": {
        "path": "data/corpora/iem.csv", "labels": CLASSES["iemocap"], "speakers": "global",
        "speaker_names": ["M", "F"], "like": "iemocap"}}})
    monkeypatch.chdir(tmp_path)
    corpus = load_corpus("iem", params)
    assert [(d.id, d.split, d.speakers, d.labels, d.sentences) for d in corpus.dialogues] == \
        [(d.id, d.split, d.speakers, d.labels, d.sentences) for d in dialogues]
    built_in = extract("iemocap", validate_params(base), RAW, dialogues=dialogues, progress=False)
    own = extract("iem", params, RAW, progress=False)
    for key in ("classes", "dialogue_ids", "splits", "sentences"):
        assert own[key] == built_in[key], key
    for key in ("lengths", "speakers", "labels"):
        assert torch.equal(own[key], built_in[key]), key
    assert own["n_speakers"] == built_in["n_speakers"] == 2
    assert torch.equal(own["features"]["text"], built_in["features"]["text"])
    assert builtin_card("iemocap").labels == own["classes"]


@pytest.mark.parametrize("entry, message", [
    ({"path": "elsewhere/mine.csv"}, "path must be a .csv or .jsonl file under data/corpora/"),
    ({"labels": ["a", "a"]}, "labels must list each class once"),
    ({"speaker_names": ["A"]}, "speaker_names is the global vocabulary"),
    ({"split_fractions": [0.5, 0.5, 0.5]}, "split_fractions must be three shares"),
    ({"like": "cmu"}, "'corpora.mine.like'"),
    ({"name": "meld"}, "'corpora.meld' clashes with the built-in dataset meld"),
    ({"name": "train"}, "'corpora.train': train names a folder of the pipeline's outputs"),
    ({"name": "other"}, "'datasets' lists 'mine', neither a built-in dataset nor a corpus"),
])
def test_a_bad_corpus_entry_is_one_line(entry, message):
    from erc.io import InputError
    name = entry.pop("name", "mine")
    raw = {"datasets": ["mine"], "corpora": {name: {"path": "data/corpora/mine.csv", "labels": LABELS, **entry}}}
    with pytest.raises(InputError) as err:
        validate_params(raw)
    assert message in str(err.value) and "\n" not in str(err.value)


# every bad row is named by the reader (tests/test_corpus.py); here the stage's view: one line, nothing written
@pytest.mark.parametrize("damage, fragments", [
    (lambda rows: rows[3].update(label="bored"), ["mine.csv: row 5", "label 'bored' is not in the card's labels"]),
    (lambda rows: rows[0].update(wav="wav/noise.wav", start="", end=""), ["dialogue d0 utterance 0",
                                                                         "is not readable audio"]),
])
def test_a_bad_corpus_stops_the_stage_in_one_line_with_nothing_written(tmp_path, damage, fragments):
    from test_bad_input import assert_one_line_error, run_script
    corpora = tmp_path / "data" / "corpora"
    corpora.mkdir(parents=True)
    rows = make_corpus(corpora, n_dialogues=12)
    (corpora / "wav" / "noise.wav").write_bytes(b"RIFF not really a wav")
    damage(rows)
    write_rows(corpora / "mine.csv", rows, ["dialogue", "speaker", "text", "label", "split", "wav", "start", "end"])
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p.update(datasets=["mine"], corpora={"mine": {"path": "data/corpora/mine.csv", "labels": LABELS}})
    p["features"]["text"] = "minilm"  # frozen: the corpus's rows are read before any encoder
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    assert_one_line_error(run_script("extract_features.py", "mine", cwd=tmp_path), *fragments)
    assert not (tmp_path / "data" / "features").exists()


def test_a_corpus_too_small_to_cross_fit_is_refused_before_fine_tuning(tmp_path):
    from test_bad_input import assert_one_line_error, run_script
    corpora = tmp_path / "data" / "corpora"
    corpora.mkdir(parents=True)
    write_rows(corpora / "mine.csv", make_corpus(corpora, n_dialogues=6, audio=False),
               ["dialogue", "speaker", "text", "label", "split"])
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p.update(datasets=["mine"], corpora={"mine": {"path": "data/corpora/mine.csv", "labels": LABELS}})
    p["finetune"]["folds"] = {"iemocap": 2, "meld": 0, "mine": 5}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    assert_one_line_error(run_script("finetune_text.py", cwd=tmp_path), "corpus mine: 4 training dialogues cannot "
                                                                          "make 5 cross-fitting folds")
    assert not (tmp_path / "models").exists()


def test_wav_spans_that_cannot_be_measured_and_wavs_outside_the_folder_are_one_line(tmp_path, monkeypatch):
    from erc.corpus import Card, read_corpus
    from erc.io import InputError
    from erc.wav import corpus_wav_descriptors
    corpora = tmp_path / "data" / "corpora"
    corpora.mkdir(parents=True)
    rows = make_corpus(corpora, n_dialogues=12)
    columns = ["dialogue", "speaker", "text", "label", "split", "wav", "start", "end"]
    for change, message in (({"start": 0.0, "end": 0.05}, "shorter than 0.1 s"),
                            ({"start": 99.0, "end": ""}, "past the end of"),
                            ({"start": -1.0, "end": ""}, "not negative")):
        changed = [dict(r) for r in rows]
        changed[0].update(change)
        write_rows(corpora / "mine.csv", changed, columns)
        with pytest.raises(InputError, match=message) as err:
            corpus_wav_descriptors(read_corpus(corpora / "mine.csv", Card("mine", LABELS)), progress=False)
        assert "\n" not in str(err.value) and "mine" in str(err.value)
    outside = [dict(r) for r in rows]
    outside[0].update(wav="../elsewhere.wav", start="", end="")
    (tmp_path / "data" / "elsewhere.wav").write_bytes((corpora / "wav" / "own.wav").read_bytes())
    write_rows(corpora / "mine.csv", outside, columns)
    monkeypatch.chdir(tmp_path)
    params = validate_params({"datasets": ["mine"], "corpora": {"mine": {"path": "data/corpora/mine.csv",
                                                                         "labels": LABELS}}})
    with pytest.raises(InputError, match="lies outside"):
        load_corpus("mine", params)
