"""Your own conversations in one file format (erc.data.corpus): the built-in datasets round-trip through it, the split
and speaker rules, bad rows named by file and row, bad cards named by key (one model for a card and a params.yaml
corpora entry, erc.data.card), and importers for CoMPM's TSVs and MELD's official CSVs (erc.data.corpus_writers)."""
import json
import subprocess
import sys

import pytest
import yaml

from erc.config.params import validate_params
from erc.data.card import Card, builtin_card, builtin_speaker_name, card_of
from erc.data.corpus import check_cross_fitting, read_corpus
from erc.data.corpus_writers import import_compm, import_meld_csv
from erc.data.datasets import CLASSES, MELD_CSV, MELD_ID_OFFSET, load_dialogues
from erc.runtime.errors import InputError

from conftest import RAW, ROOT
from test_bad_input import assert_one_line_error, run_script

LABELS = ["calm", "happy", "angry", "sad"]  # deliberately not in order of first appearance below


def write_csv(path, rows, header="dialogue,speaker,text,label,split"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def small(tmp_path, split=True):
    rows = []
    for d in range(10):
        for turn, (speaker, label) in enumerate([("Ann", "angry"), ("Bob", "calm"), ("Ann", "sad"), ("Cy", "happy")]):
            part = ",train" if d < 6 else (",valid" if d < 8 else ",test")
            rows.append(f"d{d},{speaker},turn {turn} of dialogue {d},{label}" + (part if split else ""))
    return write_csv(tmp_path / "mine.csv", rows, "dialogue,speaker,text,label" + (",split" if split else ""))


@pytest.mark.parametrize("dataset", ["iemocap", "meld"])
def test_a_built_in_dataset_exported_reads_back_as_itself(dataset, tmp_path):
    out = tmp_path / f"{dataset}.csv"
    result = subprocess.run([sys.executable, str(ROOT / "src" / "export_corpus.py"), dataset, str(out)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    corpus = read_corpus(out, builtin_card(dataset))
    built_in = load_dialogues(dataset, RAW)
    assert [(d.id, d.split, d.speakers, d.labels, d.sentences) for d in corpus.dialogues] == \
        [(d.id, d.split, d.speakers, d.labels, d.sentences) for d in built_in]
    assert corpus.classes == CLASSES[dataset] and corpus.split_source == "column"


def test_labels_follow_the_card_and_speakers_its_encoding(tmp_path):
    path = small(tmp_path)
    corpus = read_corpus(path, Card("mine", LABELS))
    first = corpus.dialogues[0]
    assert first.labels == [2, 0, 3, 1]  # positions in the card's list, not order of appearance
    assert first.speakers == [0, 1, 0, 2] and corpus.n_speakers == 3
    fixed = read_corpus(path, Card("mine", LABELS, speakers="global", speaker_names=["Cy", "Bob", "Ann"]))
    assert fixed.dialogues[0].speakers == [2, 1, 2, 0]
    assert [d.split for d in corpus.dialogues] == ["train"] * 6 + ["valid"] * 2 + ["test"] * 2
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("\n".join(json.dumps({"dialogue": d.id, "speaker": s, "text": t, "label": LABELS[y],
                                           "split": d.split})
                               for d in corpus.dialogues
                               for s, t, y in zip(["Ann", "Bob", "Ann", "Cy"], d.sentences, d.labels)) + "\n")
    again = read_corpus(jsonl, Card("mine", LABELS))
    assert [(d.id, d.split, d.speakers, d.labels, d.sentences) for d in again.dialogues] == \
        [(d.id, d.split, d.speakers, d.labels, d.sentences) for d in corpus.dialogues]


def test_without_a_split_column_dialogues_are_dealt_by_seed(tmp_path):
    path = small(tmp_path, split=False)
    corpus = read_corpus(path, Card("mine", LABELS, split_fractions=[0.6, 0.2, 0.2]))
    splits = {d.id: d.split for d in corpus.dialogues}
    assert sorted(splits.values()).count("train") == 6 and list(splits.values()).count("valid") == 2
    again = read_corpus(path, Card("mine", LABELS, split_fractions=[0.6, 0.2, 0.2]))
    assert splits == {d.id: d.split for d in again.dialogues}
    other = read_corpus(path, Card("mine", LABELS, split_seed=1, split_fractions=[0.6, 0.2, 0.2]))
    assert {d.id: d.split for d in other.dialogues} != splits
    assert corpus.split_source == "seed 0, fractions [0.6, 0.2, 0.2]"


def test_an_unlabelled_row_is_kept_with_label_minus_one(tmp_path):
    path = write_csv(tmp_path / "c.csv", ["a,X,hi,calm,train", "a,Y,ho,,train", "b,X,hey,sad,valid",
                                          "c,X,yo,angry,test"])
    assert read_corpus(path, Card("c", LABELS)).dialogues[0].labels == [0, -1]


@pytest.mark.parametrize("rows, header, message", [
    (["a,X,hi,calm"], "dialogue,speaker,text", "missing column 'label'"),
    (["a,X,hi,bored,train"], None, "row 2: label 'bored' is not in the card's labels"),
    (["a,X,,calm,train"], None, "row 2: empty text"),
    (["a,X,hi,calm,train", "a,Y,ho,sad,test"], None, "row 3: dialogue 'a' is split across train and test"),
    (["a,X,hi,calm,train", "b,X,ho,sad,train", "a,Y,again,sad,train"], None,
     "row 4: dialogue 'a' continues after another dialogue began"),
    (["a,X,hi,calm,training"], None, "row 2: split 'training' is not one of"),
    (["a,X,hi,calm,train", "b,X,ho,,valid", "c,X,yo,sad,test"], None, "no labelled dialogue in the valid split"),
    (["a,X,hi,calm,train,missing.wav"], "dialogue,speaker,text,label,split,wav", "row 2: wav 'missing.wav' not found"),
    (["a,X,hi,calm,train,,1.0,2.0"], "dialogue,speaker,text,label,split,wav,start,end", "row 2: start / end without a wav"),
])
def test_bad_rows_are_one_line_naming_the_file_and_row(tmp_path, rows, header, message):
    path = write_csv(tmp_path / "bad.csv", rows, header or "dialogue,speaker,text,label,split")
    with pytest.raises(InputError, match="bad.csv: .*" + message.replace("(", r"\(").replace(".", r"\.")):
        read_corpus(path, Card("bad", LABELS))


# one model checks a corpus's card (erc.config.corpora.CorpusCard): the card a reader is given and a corpora entry
BAD_CARDS = [
    ({"labels": ["a", "a"]}, "'labels' must list each class once"),
    ({"labels": ["a"]}, "'labels' list should have at least 2 items"),
    ({"labels": ["a", ""]}, "'labels' string should have at least 1 character"),
    ({"speakers": "each"}, "'speakers' should be 'per_dialogue' or 'global'"),
    ({"speaker_names": ["A"]}, "'speaker_names' is the global vocabulary: set speakers: global"),
    ({"speakers": "global", "speaker_names": ["A", "A"]}, "'speaker_names' must list each speaker once"),
    ({"split_fractions": [0.5, 0.5, 0.5]}, "'split_fractions' must be three shares"),
    ({"split_fractions": [1.0, 0.0, 0.0]}, "'split_fractions' must be three shares (train, valid, test), each above 0"),
    ({"split_fractions": [0.5, 0.5]}, "'split_fractions' list should have at least 3 items"),
    ({"split_seed": -1}, "'split_seed' should be greater than or equal to 0"),
]


@pytest.mark.parametrize("card, message", BAD_CARDS)
def test_a_bad_card_is_one_line_naming_the_key_by_the_same_rules_in_params(card, message):
    keys = {"labels": LABELS, **card}
    with pytest.raises(InputError) as err:
        Card("mine", **keys)
    assert str(err.value).startswith("corpus mine: ") and message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError) as err:
        validate_params({"datasets": ["mine"], "corpora": {"mine": {"path": "data/corpora/mine.csv", **keys}}})
    assert message.replace("'", "'corpora.mine.", 1) in str(err.value) and "\n" not in str(err.value)


def test_a_bad_corpus_entry_stops_a_stage_in_one_error_line_naming_the_key(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"datasets": ["mine"], "corpora": {"mine": {
        "path": "data/corpora/mine.csv", "labels": ["calm", "calm"]}}}))
    assert_one_line_error(run_script("build_graphs.py", "mine", cwd=tmp_path),
                          "error: params.yaml: 'corpora.mine.labels' must list each class once")


def test_the_built_in_cards_and_a_registered_corpus_card(tmp_path):
    iemocap, meld = builtin_card("iemocap"), builtin_card("meld")
    assert (iemocap.speakers, iemocap.speaker_names, iemocap.n_speakers) == ("global", ["M", "F"], 2)
    assert (meld.speakers, meld.speaker_names, meld.n_speakers) == ("per_dialogue", None, 9)
    assert [builtin_speaker_name("meld")(None, s) for s in range(3)] == ["P0", "P1", "P2"]
    params = validate_params({"corpora": {"mine": {"path": "data/corpora/mine.csv", "labels": LABELS,
                                                   "speakers": "global", "split_fractions": [0.6, 0.2, 0.2]}}})
    assert card_of("mine", params) == Card("mine", LABELS, speakers="global", split_fractions=[0.6, 0.2, 0.2])


def test_too_small_corpora_are_one_line(tmp_path):
    corpus = read_corpus(small(tmp_path), Card("mine", LABELS))
    check_cross_fitting(corpus, 2)
    with pytest.raises(InputError, match="6 training dialogues cannot make 8 cross-fitting folds"):
        check_cross_fitting(corpus, 8)


def test_wav_paths_are_relative_to_the_file_with_their_spans(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.wav").write_bytes(b"RIFF")
    path = write_csv(tmp_path / "w.csv", ["a,X,hi,calm,train,clips/a.wav,0.5,1.5", "a,Y,ho,sad,train,,,",
                                          "b,X,hey,sad,valid,,,", "c,X,yo,angry,test,,,"],
                     "dialogue,speaker,text,label,split,wav,start,end")
    corpus = read_corpus(path, Card("w", LABELS))
    assert corpus.audio == {"a": [(str(tmp_path / "clips" / "a.wav"), 0.5, 1.5), (None, None, None)]}


def compm_file(path, dialogues, header):
    """Written as CoMPM's dataset files are: an optional header line, a blank line before each dialogue (MELD's
    files) or between dialogues (IEMOCAP's), tab-separated Speaker, Utterance, Emotion[, Sentiment]."""
    lines = ["Speaker\tUtterance\tEmotion\tSentiment", ""] if header else []
    for k, turns in enumerate(dialogues):
        if k and not header:
            lines.append("")
        lines += ["\t".join(t) for t in turns] + ([""] if header else [])
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compm_tsvs_import_as_one_corpus(tmp_path):
    meld_style = [[("Phoebe", "Oh my God, he’s lost it.", "sadness", "negative"), ("Monica", "What?", "surprise",
                                                                                   "negative")],
                  [("Ross", "Or! Or, we could go to the bank.", "neutral", "neutral")]]
    files = {split: compm_file(tmp_path / f"MELD_{split}.txt", meld_style, header=True) for split in ("train", "valid")}
    files["test"] = compm_file(tmp_path / "iemocap_test.txt", [[("F", "Excuse me.", "neutral")],
                                                               [("M", "Do you have your forms?", "anger")]], header=False)
    import_compm(files, tmp_path / "c.csv")
    corpus = read_corpus(tmp_path / "c.csv", Card("c", CLASSES["meld"]))
    assert [d.id for d in corpus.dialogues] == ["train-0", "train-1", "valid-0", "valid-1", "test-0", "test-1"]
    assert corpus.dialogues[0].sentences == ["Oh my God, he’s lost it.", "What?"]
    assert corpus.dialogues[0].labels == [3, 1] and corpus.dialogues[5].labels == [6]
    (tmp_path / "broken.txt").write_text("Speaker\tUtterance\tEmotion\tSentiment\n\nPhoebe only\n")
    with pytest.raises(InputError, match=r"broken.txt: line 3 has 1 tab-separated fields"):
        import_compm({"train": tmp_path / "broken.txt"}, tmp_path / "d.csv")
    assert not (tmp_path / "d.csv").exists()


def test_meld_official_csvs_import_with_the_built_in_labels():
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "meld.csv"
        import_meld_csv({split: RAW / "MELD" / name for split, name in MELD_CSV.items()}, out)
        corpus = read_corpus(out, builtin_card("meld"))
    built_in = load_dialogues("meld", RAW)
    imported = {d.id: d for d in corpus.dialogues}
    for d in built_in:  # the official CSVs' emotions are the metadata's labels, dialogue by dialogue
        twin = imported[f"{d.split}-{int(d.id) - MELD_ID_OFFSET[d.split]}"]
        assert twin.labels == d.labels and len(twin.speakers) == len(d.speakers)
    assert sum(len(d) for d in corpus.dialogues) >= sum(len(d) for d in built_in)
