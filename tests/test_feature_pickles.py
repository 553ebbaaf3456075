"""The public feature pickles, written here the way their public scripts write them (not from our reader's table).

Fixtures start from the real metadata pickles, as COSMIC's roberta_feature_extract_{iemocap,meld}.py do, and
lay the fields out in the order the public loaders unpack them (declare-lab/conv-emotion DialogueGCN,
bc-LSTM-pytorch and COSMIC, hujingwen6666/MMGCN, butterfliesss/SDT). Feature values encode where they
belong: dialogue j, slot s (text layer 1..4, audio 5, visual 6), utterance i -> 100 j + s + i / 1000.
"""
import pickle

import numpy as np
import pytest
import yaml

from erc.data.datasets import load_dialogues
from erc.data.feature_pickles import detect_layout, load_pickle, read_feature_file
from erc.features.extract import align_file_features, extract
from erc.runtime.errors import InputError
from erc.config.params import validate_params

from conftest import RAW, ROOT

AUDIO, VISUAL = 5, 6


@pytest.fixture(scope="module")
def few():
    """Two train, one valid and one test dialogue of each dataset."""
    out = {}
    for dataset in ("iemocap", "meld"):
        dialogues = load_dialogues(dataset, RAW)
        out[dataset] = [d for d in dialogues if d.split == "train"][:2] + \
            [next(d for d in dialogues if d.split == s) for s in ("valid", "test")]
    return out


def file_key(dataset, d):
    return d.id if dataset == "iemocap" else int(d.id)  # meld.pkl and the MELD feature files use int ids


def rows(n, width, value):
    return (value + np.arange(n, dtype=np.float32)[:, None] / 1000 + np.zeros((n, width), np.float32))


def parts(dataset, dialogues, width):
    """Named fields for ``dialogues``: metadata copied from iemocap.pkl / meld.pkl, features by position."""
    with open(RAW / f"{dataset}.pkl", "rb") as f:
        meta = pickle.load(f)
    if dataset == "iemocap":
        speakers, labels, sentences, train, test, valid = meta
        sentiment = None
    else:
        speakers, labels, sentiment, sentences, train, test, valid = meta
    keys = [file_key(dataset, d) for d in dialogues]
    p = {"speakers": {k: speakers[k] for k in keys}, "labels": {k: labels[k] for k in keys},
         "sentences": {k: sentences[k] for k in keys},
         "ids": {k: d.utterance_keys if dataset == "iemocap" else list(range(len(d))) for k, d in zip(keys, dialogues)},
         "train": [k for k in train if k in keys], "test": [k for k in test if k in keys],
         "valid": [k for k in valid if k in keys]}
    if sentiment is not None:
        p["sentiment"] = {k: sentiment[k] for k in keys}
    for slot, name in [(1, "roberta1"), (2, "roberta2"), (3, "roberta3"), (4, "roberta4"), (AUDIO, "audio"),
                       (VISUAL, "visual")]:
        w = width[name] if isinstance(width, dict) else width
        p[name] = {k: rows(len(labels[k]), w, 100 * j + slot) for j, k in enumerate(keys)}
    return p


def as_row_lists(feature):  # COSMIC: [row for row in feat.numpy()], a list of 1-D float32 arrays
    return {k: list(v) for k, v in feature.items()}


def as_nested_lists(feature):
    return {k: v.tolist() for k, v in feature.items()}


def write(path, layout, p):
    """Dump ``p`` in the public order of ``layout`` (container and protocol as the public code leaves them)."""
    r = [p["roberta1"], p["roberta2"], p["roberta3"], p["roberta4"]]
    if layout == "cosmic_iemocap":  # roberta_feature_extract_iemocap.py: a list, default protocol
        fields = [p["speakers"], p["labels"], *map(as_row_lists, r), p["sentences"], p["train"], p["test"], p["valid"]]
    elif layout == "cosmic_meld":  # roberta_feature_extract_meld.py
        fields = [p["speakers"], p["labels"], p["sentiment"], *map(as_row_lists, r), p["sentences"], p["train"],
                  p["test"], p["valid"]]
    elif layout == "dialoguegcn_iemocap":  # DialogueGCN/dataloader.py; Python 2 wrote it (protocol 2)
        fields = (p["ids"], p["speakers"], p["labels"], as_row_lists(r[0]), as_row_lists(p["audio"]),
                  as_row_lists(p["visual"]), p["sentences"], p["train"] + p["valid"], p["test"])
    elif layout == "bclstm_meld":  # bc-LSTM-pytorch/dataloader.py MELDDataset: no visual, sentiment last
        fields = (p["ids"], p["speakers"], p["labels"], r[0], p["audio"], p["sentences"], p["train"] + p["valid"],
                  p["test"], p["sentiment"])
    elif layout == "mmgcn_meld":  # MMGCN dataloader.py MELDDataset; its loader discards the tenth field
        fields = (p["ids"], p["speakers"], p["labels"], r[0], p["audio"], p["visual"], p["sentences"],
                  p["train"] + p["valid"], p["test"], p["sentiment"])
    elif layout in ("sdt_iemocap", "sdt_meld"):  # SDT dataloader.py: videoText is roberta1; MELD has a 13th field
        fields = (p["ids"], p["speakers"], p["labels"], *map(as_nested_lists, r), as_nested_lists(p["audio"]),
                  as_nested_lists(p["visual"]), p["sentences"], p["train"] + p["valid"], p["test"])
        fields += (p["sentiment"],) if layout == "sdt_meld" else ()
    with open(path, "wb") as f:
        pickle.dump(fields, f, protocol=2 if layout == "dialoguegcn_iemocap" else pickle.DEFAULT_PROTOCOL)


def params(dataset, path, **features):
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["features"].update(text="none", audio="none", visual="none")
    p["features"].update(features)
    p["features"]["files"] = {"iemocap": {}, "meld": {}, dataset: {m: str(path) for m in ("text", "audio", "visual")}}
    return validate_params({**p, "datasets": [dataset]})


def expected(dialogues, slot):
    return np.concatenate([100 * j + slot + np.arange(len(d)) / 1000 for j, d in enumerate(dialogues)])


@pytest.mark.parametrize("dataset", ["iemocap", "meld"])
def test_cosmic_files_read_as_four_roberta_layers_in_order(tmp_path, few, dataset):
    path, dialogues = tmp_path / f"{dataset}_features_roberta.pkl", few[dataset]
    write(path, f"cosmic_{dataset}", parts(dataset, dialogues, 1024))
    assert detect_layout(load_pickle(path), path) == f"cosmic_{dataset}"
    text = extract(dataset, params(dataset, path, text="file"), RAW, dialogues=dialogues).features["text"].numpy()
    assert text.shape == (sum(len(d) for d in dialogues), 4, 1024)
    for layer in range(4):  # roberta1..4 in order, every utterance in its own row
        np.testing.assert_allclose(text[:, layer, :], np.repeat(expected(dialogues, layer + 1)[:, None], 1024, 1),
                                   atol=1e-3)
    with pytest.raises(InputError, match=f"cosmic_{dataset} .* has no audio features"):
        extract(dataset, params(dataset, path, audio="file"), RAW, dialogues=dialogues)


@pytest.mark.parametrize("layout,dataset,layers,modalities", [
    ("dialoguegcn_iemocap", "iemocap", 1, ("text", "audio", "visual")),
    ("sdt_iemocap", "iemocap", 4, ("text", "audio", "visual")),
    ("bclstm_meld", "meld", 1, ("text", "audio")),
    ("mmgcn_meld", "meld", 1, ("text", "audio", "visual")),
    ("sdt_meld", "meld", 4, ("text", "audio", "visual")),
])
def test_multimodal_files_put_each_field_in_its_modality(tmp_path, few, layout, dataset, layers, modalities):
    path, dialogues = tmp_path / f"{layout}.pkl", few[dataset]
    write(path, layout, parts(dataset, dialogues, {"roberta1": 7, "roberta2": 7, "roberta3": 7, "roberta4": 7,
                                                   "audio": 5, "visual": 3}))
    assert detect_layout(load_pickle(path), path) == layout
    feats = extract(dataset, params(dataset, path, **{m: "file" for m in modalities}), RAW,
                    dialogues=dialogues).features
    n = sum(len(d) for d in dialogues)
    assert feats["text"].shape == (n, layers, 7)
    for layer in range(layers):
        np.testing.assert_allclose(feats["text"][:, layer, 0], expected(dialogues, layer + 1), atol=1e-3)
    assert feats["audio"].shape == (n, 5)
    np.testing.assert_allclose(feats["audio"][:, 4], expected(dialogues, AUDIO), atol=1e-3)
    if "visual" in modalities:
        assert feats["visual"].shape == (n, 3)
        np.testing.assert_allclose(feats["visual"][:, 2], expected(dialogues, VISUAL), atol=1e-3)
    else:
        with pytest.raises(InputError, match="has no visual features"):
            read_feature_file(path, "visual", dataset)


@pytest.mark.parametrize("a,b", [("cosmic_iemocap", "mmgcn_meld"), ("dialoguegcn_iemocap", "bclstm_meld")])
def test_files_of_equal_length_are_told_apart_by_content(tmp_path, few, a, b):
    for layout in (a, b):
        dataset = layout.split("_")[1]
        path = tmp_path / f"{layout}.pkl"
        write(path, layout, parts(dataset, few[dataset], 4))
        assert detect_layout(load_pickle(path), path) == layout
        other = "meld" if dataset == "iemocap" else "iemocap"
        with pytest.raises(InputError, match=f"holds {dataset} dialogues, not {other}"):
            read_feature_file(path, "text", other)
    # ten fields with COSMIC's positions but DailyDialog-style '0'/'1' speakers fit neither layout
    p = parts("iemocap", few["iemocap"], 4)
    p["speakers"] = {k: ["0"] * len(v) for k, v in p["speakers"].items()}
    write(tmp_path / "other.pkl", "cosmic_iemocap", p)
    message = one_line_error(tmp_path / "other.pkl")
    assert "10 fields, but the content fits none of" in message
    assert "cosmic_iemocap" in message and "mmgcn_meld" in message


@pytest.mark.parametrize("layout,dataset", [("cosmic_meld", "meld"), ("dialoguegcn_iemocap", "iemocap")])
def test_labels_that_differ_from_the_metadata_are_refused_naming_the_dialogue(tmp_path, few, layout, dataset):
    dialogues = few[dataset]
    d = dialogues[2]
    p = parts(dataset, dialogues, 4)
    labels = p["labels"][file_key(dataset, d)]
    labels[-1] = (labels[-1] + 1) % 6
    write(tmp_path / "f.pkl", layout, p)
    with pytest.raises(InputError, match=f"dialogue {d.id}: labels differ from the metadata "
                                         f"\\(first at utterance {len(d) - 1}: "):
        extract(dataset, params(dataset, tmp_path / "f.pkl", text="file"), RAW, dialogues=dialogues)


def test_another_utterance_order_is_refused(tmp_path, few):
    dialogues = few["iemocap"]
    d = next(d for d in dialogues if d.labels != d.labels[::-1])
    p = parts("iemocap", dialogues, 4)
    for name in ("speakers", "labels", "sentences", "ids", "roberta1", "roberta2", "roberta3", "roberta4"):
        p[name][d.id] = p[name][d.id][::-1]  # the whole dialogue reversed, features consistent with labels
    write(tmp_path / "f.pkl", "cosmic_iemocap", p)
    with pytest.raises(InputError, match=f"dialogue {d.id}: labels differ from the metadata"):
        extract("iemocap", params("iemocap", tmp_path / "f.pkl", text="file"), RAW, dialogues=dialogues)


def test_file_source_refuses_misalignment(tmp_path, few):
    dialogues = few["iemocap"]
    second = dialogues[1]
    p = parts("iemocap", dialogues, 4)
    p["audio"][second.id] = p["audio"][second.id][:-1]
    write(tmp_path / "short.pkl", "sdt_iemocap", p)
    with pytest.raises(InputError, match=f"dialogue {second.id} has {len(second) - 1} utterances"):
        extract("iemocap", params("iemocap", tmp_path / "short.pkl", audio="file"), RAW, dialogues=dialogues)
    p = parts("iemocap", dialogues[:-1], 4)
    write(tmp_path / "fewer.pkl", "sdt_iemocap", p)
    with pytest.raises(InputError, match=f"dialogue {dialogues[-1].id} is missing"):
        extract("iemocap", params("iemocap", tmp_path / "fewer.pkl", audio="file"), RAW, dialogues=dialogues)


def one_line_error(path, modality="text", dataset=None):
    with pytest.raises(InputError) as err:
        read_feature_file(path, modality, dataset)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_broken_files_are_one_line_naming_file_and_dialogue(tmp_path, few):
    dialogues = few["meld"]
    d = dialogues[1]
    key = file_key("meld", d)
    good = tmp_path / "good.pkl"
    write(good, "mmgcn_meld", parts("meld", dialogues, 4))
    blob = good.read_bytes()
    for cut in range(1, len(blob), len(blob) // 7):  # truncation fails differently at different points
        (tmp_path / "cut.pkl").write_bytes(blob[:cut])
        assert "not a readable pickle" in one_line_error(tmp_path / "cut.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    assert "not a readable pickle" in one_line_error(tmp_path / "junk.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"cno_such_module\nThing\n.")  # a class outside the allow-list: never imported
    assert "names no_such_module.Thing, which its layout never uses; refused" in one_line_error(tmp_path / "junk.pkl")
    assert "feature file not found" in one_line_error(tmp_path / "absent.pkl")
    with open(tmp_path / "odd.pkl", "wb") as f:
        pickle.dump(({}, {}, {}), f)
    assert "3 fields match no known layout" in one_line_error(tmp_path / "odd.pkl")

    cases = {
        "ragged": ("roberta1", "text", lambda a: [r[:-1] if i == 1 else r for i, r in enumerate(a)],
                   "text field 3 is not a numeric"),
        "strings": ("audio", "audio", lambda a: [["x"] * len(r) for r in a], "audio field 4 is not a numeric"),
        "flat": ("visual", "visual", lambda a: a[:, 0], "visual field 5 has shape"),
    }
    for name, (part, modality, edit, expect) in cases.items():
        p = parts("meld", dialogues, 4)
        p[part][key] = edit(p[part][key])
        write(tmp_path / f"{name}.pkl", "mmgcn_meld", p)
        assert f"dialogue {d.id}: {expect}" in one_line_error(tmp_path / f"{name}.pkl", modality, "meld")
    p = parts("iemocap", few["iemocap"], 4)
    p["roberta3"][few["iemocap"][0].id] = rows(len(few["iemocap"][0]), 5, 0)
    write(tmp_path / "layers.pkl", "sdt_iemocap", p)
    assert f"dialogue {few['iemocap'][0].id}: text layers have shapes" in one_line_error(tmp_path / "layers.pkl")


def test_nan_and_width_changes_are_refused_naming_the_dialogue(tmp_path, few):
    dialogues = few["iemocap"]
    p = parts("iemocap", dialogues, 4)
    p["audio"][dialogues[2].id][1, 3] = np.inf
    p["visual"][dialogues[1].id] = rows(len(dialogues[1]), 3, 0)
    write(tmp_path / "f.pkl", "dialoguegcn_iemocap", p)
    with pytest.raises(InputError, match=f"NaN or inf.*{dialogues[2].id}"):
        extract("iemocap", params("iemocap", tmp_path / "f.pkl", audio="file"), RAW, dialogues=dialogues)
    with pytest.raises(InputError, match=f"dialogue {dialogues[1].id} features have shape"):
        extract("iemocap", params("iemocap", tmp_path / "f.pkl", visual="file"), RAW, dialogues=dialogues)


def test_align_checks_labels_before_lengths(few):
    d = few["iemocap"][0]
    with pytest.raises(InputError, match=f"dialogue {d.id}: labels differ .*the file has {len(d) - 1} labels"):
        align_file_features({d.id: np.zeros((len(d), 2))}, {d.id: d.labels[:-1]}, [d], "f.pkl")


def test_meld_file_keyed_by_csv_dialogue_ids_is_refused(tmp_path, few):
    """Our MELD ids are meld.pkl's (dev = CSV id + 1039); a file keyed by the dev CSV id must not pass."""
    dialogues = few["meld"]
    valid = next(d for d in dialogues if d.split == "valid")
    p = parts("meld", dialogues, 4)
    for name in ("ids", "speakers", "labels", "sentiment", "sentences", "roberta1", "audio", "visual"):
        p[name][int(valid.id) - 1039] = p[name].pop(int(valid.id))
    write(tmp_path / "csv_ids.pkl", "mmgcn_meld", p)
    assert int(valid.id) - 1039 == int(dialogues[0].id) == 0  # so the dev dialogue lands on train dialogue 0
    with pytest.raises(InputError, match="dialogue 0: labels differ from the metadata"):
        extract("meld", params("meld", tmp_path / "csv_ids.pkl", text="file"), RAW, dialogues=dialogues)
