"""Your own conversations end to end: corpora made here, registered in params.yaml, through every stage with
``dvc repro`` (the shared project of tests/conftest.py, ``pipeline``: ``mine`` with a split column and wavs, ``talk``
without either) and then ``predict.py --dataset <it>``; and the built-in path and the corpus path giving the same
features for the same dialogues."""
import json
import subprocess
import sys

import pytest
import torch
import yaml

from erc.data.card import builtin_card, builtin_speaker_name
from erc.data.corpus import load_corpus
from erc.data.corpus_writers import write_corpus
from erc.data.datasets import CLASSES, load_dialogues
from erc.features.extract import extract
from erc.data.feature_file import load_features
from erc.config.params import validate_params

from conftest import CSV_COLUMNS, LABELS, RAW, ROOT, make_corpus, write_rows
from test_bad_input import assert_one_line_error, run_script


def predict(repo, dialogue, dataset, in_process=False):
    """predict.py's JSON answer (stdout only: the progress bars go to stderr), as a command or in this process."""
    if in_process:
        result = run_script("predict.py", str(dialogue), "--dataset", dataset, cwd=repo)
    else:
        result = subprocess.run([sys.executable, "src/predict.py", str(dialogue), "--dataset", dataset], cwd=repo,
                                capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.xdist_group("pipeline")
def test_a_corpus_with_splits_and_wavs_runs_every_stage_and_predicts(pipeline, tmp_path):
    repo, rows = pipeline.repo, pipeline.rows["mine"]
    assert {"finetune_text", "extract_features@mine", "train_teachers@mine", "train@mine", "evaluate@mine"} <= \
        set(pipeline.stages)
    feats = load_features(repo / "data" / "features" / "mine.pt", hide_test_labels=False)
    assert feats.classes == LABELS and feats.n_speakers == 3 and feats.sources["audio"] == "praat-wav"
    assert feats.sources["text"] == "minilm-ft"
    assert len(feats.dialogue_ids) == 24 and sorted(set(feats.splits)) == ["test", "train", "valid"]
    labels = feats.labels
    assert int((labels == -1).sum()) == 2  # the unlabelled turns are kept, as context
    audio = feats.features["audio"]
    measured = audio[:, -1] == 0
    n_with_wav = sum(1 for r in rows if r.get("wav"))
    assert audio.shape[1] == 9 and int(measured.sum()) == n_with_wav  # 8 Praat descriptors + the missing flag
    assert torch.isfinite(audio).all() and audio[measured, :-1].std(0).gt(0).all()
    assert feats.corpus["speaker_vocabulary"] == ["Ann", "Bob", "Cy"] and feats.corpus["split"] == "column"
    metrics = json.loads((repo / "metrics" / "mine.json").read_text())
    assert 0 <= metrics["test"]["weighted_f1"]["mean"] <= 100
    details = json.loads((repo / "metrics" / "details" / "mine.json").read_text())
    assert len(details["per_seed"]) == 2 and set(details["per_seed"][0]["test"]["per_class_f1"]) == set(LABELS)
    scored = (repo / "plots" / "mine" / "test_predictions.csv").read_text().splitlines()
    n_test_labelled = sum(1 for r in rows if r["split"] == "test" and r["label"])
    assert len(scored) - 1 == 2 * n_test_labelled  # both seeds, labelled test turns only

    (tmp_path / "turn.wav").write_bytes((repo / "data" / "corpora" / "wav" / "own.wav").read_bytes())
    dialogue = tmp_path / "d.json"
    dialogue.write_text(json.dumps([{"speaker": "Ann", "text": "great news, I love it", "wav": "turn.wav"},
                                    {"speaker": "Bob", "text": "this is outrageous, stop it"}]))
    answer = predict(repo, dialogue, "mine")  # the command a user types, once
    assert [t["speaker"] for t in answer] == ["Ann", "Bob"]
    for turn in answer:
        assert turn["emotion"] in LABELS and set(turn["probabilities"]) == set(LABELS)
        assert turn["emotion"] == max(turn["probabilities"], key=turn["probabilities"].get)
    # a speaker the global vocabulary does not hold is refused in one line
    dialogue.write_text(json.dumps([{"speaker": "Zed", "text": "hello"}]))
    result = run_script("predict.py", str(dialogue), "--dataset", "mine", cwd=repo)
    assert_one_line_error(result, "'Zed'")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.xdist_group("pipeline")
def test_a_corpus_without_split_or_audio_is_dealt_by_seed_and_runs_on_text(pipeline, tmp_path):
    repo = pipeline.repo
    feats = load_features(repo / "data" / "features" / "talk.pt", hide_test_labels=False)
    assert set(feats.features) == {"text"} and feats.sources["audio"] == "none"
    assert feats.sources["text"] == "minilm"  # frozen: the fine-tuning is mine's
    assert (repo / "models" / "finetuned" / "talk" / "NOT_USED.txt").read_text().startswith("features.text is minilm")
    assert [feats.splits.count(s) for s in ("train", "valid", "test")] == [18, 6, 6]
    assert feats.corpus["split"] == "seed 3, fractions [0.6, 0.2, 0.2]"
    # per-dialogue speakers: first appearance in each dialogue, at most three
    assert feats.n_speakers == 3 and feats.speakers[:2].tolist() == [0, 1]
    assert json.loads((repo / "metrics" / "talk.json").read_text())["test"]["weighted_f1"]["mean"] >= 0
    dialogue = tmp_path / "d.json"
    dialogue.write_text(json.dumps([{"speaker": "x", "text": "so lonely"}, {"speaker": "y", "text": "fine"}]))
    answer = predict(repo, dialogue, "talk", in_process=True)
    assert len(answer) == 2 and all(t["emotion"] in LABELS for t in answer)


def test_the_built_in_path_and_the_corpus_path_give_the_same_features(tmp_path, monkeypatch):
    """A few IEMOCAP dialogues through the built-in reader, and exported, registered as a corpus and read back:
    the same dialogues, labels, speakers, splits and text features (frozen MiniLM: no fine-tuning)."""
    dialogues = [d for split in ("train", "valid", "test")
                 for d in [d for d in load_dialogues("iemocap", RAW) if d.split == split][:2]]
    (tmp_path / "data" / "corpora").mkdir(parents=True)
    write_corpus(dialogues, CLASSES["iemocap"], builtin_speaker_name("iemocap"),
                 tmp_path / "data" / "corpora" / "iem.csv")
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
        assert getattr(own, key) == getattr(built_in, key), key
    for key in ("lengths", "speakers", "labels"):
        assert torch.equal(getattr(own, key), getattr(built_in, key)), key
    assert own.n_speakers == built_in.n_speakers == 2
    assert torch.equal(own.features["text"], built_in.features["text"])
    assert builtin_card("iemocap").labels == own.classes


@pytest.mark.parametrize("entry, message", [
    ({"path": "elsewhere/mine.csv"}, "'corpora.mine.path' must be a .csv or .jsonl file under data/corpora/"),
    ({"labels": ["a", "a"]}, "'corpora.mine.labels' must list each class once"),
    ({"labels": ["a"]}, "'corpora.mine.labels' list should have at least 2 items"),
    ({"speaker_names": ["A"]}, "'corpora.mine.speaker_names' is the global vocabulary"),
    ({"split_fractions": [0.5, 0.5, 0.5]}, "'corpora.mine.split_fractions' must be three shares"),
    ({"like": "cmu"}, "'corpora.mine.like'"),
    ({"name": "meld"}, "'corpora.meld' clashes with the built-in dataset meld"),
    ({"name": "train"}, "'corpora.train': train names a folder of the pipeline's outputs"),
    ({"name": "other"}, "'datasets' lists 'mine', neither a built-in dataset nor a corpus"),
])
def test_a_bad_corpus_entry_is_one_line(entry, message):
    from erc.runtime.errors import InputError
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
    corpora = tmp_path / "data" / "corpora"
    corpora.mkdir(parents=True)
    rows = make_corpus(corpora, n_dialogues=12)
    (corpora / "wav" / "noise.wav").write_bytes(b"RIFF not really a wav")
    damage(rows)
    write_rows(corpora / "mine.csv", rows, CSV_COLUMNS)
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p.update(datasets=["mine"], corpora={"mine": {"path": "data/corpora/mine.csv", "labels": LABELS}})
    p["features"]["text"] = "minilm"  # frozen: the corpus's rows are read before any encoder
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    assert_one_line_error(run_script("extract_features.py", "mine", cwd=tmp_path), *fragments)
    assert not (tmp_path / "data" / "features").exists()


def test_a_corpus_too_small_to_cross_fit_is_refused_before_fine_tuning(tmp_path):
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
    from erc.data.card import Card
    from erc.data.corpus import read_corpus
    from erc.runtime.errors import InputError
    from erc.features.wav import corpus_wav_descriptors
    corpora = tmp_path / "data" / "corpora"
    corpora.mkdir(parents=True)
    rows = make_corpus(corpora, n_dialogues=12)
    columns = CSV_COLUMNS
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
