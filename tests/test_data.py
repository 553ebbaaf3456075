"""The real metadata, splits and audio descriptors shipped in data/raw."""
import numpy as np
import pandas as pd
import pytest

from erc.features import audio
from erc.data.datasets import CLASSES, load_dialogues, split_ids
from erc.runtime.errors import InputError
from erc.data.datasets import repair_cp1252

from conftest import RAW


@pytest.fixture(scope="module")
def iemocap():
    return load_dialogues("iemocap", RAW)


@pytest.fixture(scope="module")
def meld():
    return load_dialogues("meld", RAW)


def count(dialogues, split):
    chosen = [d for d in dialogues if d.split == split]
    return len(chosen), sum(len(d) for d in chosen)


def test_iemocap_splits(iemocap):
    assert [count(iemocap, s) for s in ("train", "valid", "test")] == [(108, 5163), (12, 647), (31, 1623)]
    assert all(d.id.startswith("Ses05") for d in iemocap if d.split == "test")
    assert not any(d.id.startswith("Ses05") for d in iemocap if d.split != "test")


def test_meld_splits_skip_the_empty_dialogue(meld):
    assert [count(meld, s) for s in ("train", "valid", "test")] == [(1038, 9989), (114, 1109), (280, 2610)]
    assert "60" not in {d.id for d in meld}
    assert len(split_ids("meld", RAW)["train"]) == 1038


def test_labels_and_speakers_in_range(iemocap, meld):
    for dialogues, name, n_spk in [(iemocap, "iemocap", 2), (meld, "meld", 9)]:
        labels = np.concatenate([d.labels for d in dialogues])
        speakers = np.concatenate([d.speakers for d in dialogues])
        assert labels.min() == 0 and labels.max() == len(CLASSES[name]) - 1
        assert speakers.min() == 0 and speakers.max() < n_spk


def test_iemocap_first_utterance_is_neutral(iemocap):
    first = next(d for d in iemocap if d.id == "Ses01F_impro01")
    assert first.sentences[0] == "Excuse me." and CLASSES["iemocap"][first.labels[0]] == "neu"


def test_meld_order_matches_csv(meld):
    table = pd.read_csv(RAW / "MELD" / "test_sent_emo.csv")
    dialogue = next(d for d in meld if d.split == "test" and d.utterance_keys[0][0] == 3)
    rows = table[table.Dialogue_ID == 3].sort_values("Utterance_ID")
    assert [CLASSES["meld"][y] for y in dialogue.labels] == list(rows.Emotion)


def test_cp1252_repair():
    assert repair_cp1252("company\x92s") == "company\u2019s"
    assert repair_cp1252("\x93hi\x94 \x85") == "\u201chi\u201d \u2026"
    assert repair_cp1252("caf\u00e9 \u2019") == "caf\u00e9 \u2019"  # real Unicode is left alone
    assert repair_cp1252("a\x81b") == "a\x81b"  # undefined in cp1252: kept


def seconds(stamp: str) -> float:
    h, m, rest = stamp.split(":")
    s, ms = rest.split(",")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_meld_praat_duration_agrees_with_csv_times():
    tables = audio.meld_praat_tables(RAW / "found")
    agree = total = 0
    for split, csv in [("train", "train_sent_emo.csv"), ("valid", "dev_sent_emo.csv"), ("test", "test_sent_emo.csv")]:
        meta = pd.read_csv(RAW / "MELD" / csv)
        joined = meta.merge(tables[split], left_on=["Dialogue_ID", "Utterance_ID"], right_on=["dialogue", "utterance"])
        span = joined.EndTime.map(seconds) - joined.StartTime.map(seconds)
        agree += int(((joined.duration - span).abs() <= 0.1).sum())
        total += len(joined)
    assert total == 13706
    assert agree / total >= 0.99


def test_praat_alignment_flags_exactly_the_missing_utterances(iemocap, meld):
    values, missing, columns = audio.praat_meld(meld, RAW / "found")
    keys = [(d.split, k) for d in meld for k in d.utterance_keys]
    assert values.shape == (13708, 8)
    assert sorted(k for k, m in zip(keys, missing) if m) == [("train", (125, 3)), ("valid", (110, 7))]
    values, missing, columns = audio.praat_iemocap(iemocap, RAW / "found")
    ids = [k for d in iemocap for k in d.utterance_keys]
    assert values.shape == (7433, 16) and "label" not in columns
    assert sorted(k for k, m in zip(ids, missing) if m) == [
        "Ses05M_script01_1b_F037", "Ses05M_script01_1b_M039", "Ses05M_script01_1b_M040", "Ses05M_script01_1b_M041"]
    # the known pitch gap: the second utterance of Ses01F_script02_1 is breathing, no pitch
    assert np.isnan(values[ids.index("Ses01F_script02_1_F001"), columns.index("avg_pitch")])


def test_audio_scaling_uses_training_rows_only():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(20, 3))
    values[3, 1] = np.nan
    train = np.arange(20) < 12
    a = audio.apply_scaling(values, audio.fit_scaling(values, train, ["x", "y", "z"]))
    shifted = values.copy()
    shifted[~train] += 100.0  # change only non-training rows
    b = audio.apply_scaling(shifted, audio.fit_scaling(shifted, train, ["x", "y", "z"]))
    assert np.allclose(a[train], b[train])
    assert np.isfinite(a).all() and abs(a[train].mean()) < 1e-5


def test_missing_raw_file_is_named(tmp_path):
    with pytest.raises(InputError, match="iemocap.pkl"):
        load_dialogues("iemocap", tmp_path)
    with pytest.raises(InputError, match="unknown dataset"):
        split_ids("nope", RAW)
