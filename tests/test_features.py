"""Feature sources: MiniLM on a few real dialogues, bad input, atomic writes (feature pickles: test_feature_pickles)."""
import pytest
import torch
import yaml

from erc.data.datasets import load_dialogues
from erc.features.extract import extract
from erc.data.feature_file import load_features, save_features
from erc.runtime.errors import InputError
from erc.runtime.files import atomic_path
from erc.config.params import validate_params
from erc.features.text import assemble_split_zip

from conftest import RAW, ROOT, random_feats


@pytest.fixture(scope="module")
def few_dialogues():
    dialogues = load_dialogues("iemocap", RAW)
    return [d for d in dialogues if d.split == "train"][:2] + [d for d in dialogues if d.split == "valid"][:1] + \
        [d for d in dialogues if d.split == "test"][:1]


def params(**features):
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["features"].update(features)
    return validate_params(p)


def test_empty_dialogue_is_refused(few_dialogues):
    import copy
    empty = copy.deepcopy(few_dialogues[0])
    empty.labels, empty.speakers, empty.sentences, empty.utterance_keys = [], [], [], []
    with pytest.raises(InputError, match=f"dialogue {empty.id} has no utterances"):
        extract("iemocap", params(text="none"), RAW, dialogues=[empty] + few_dialogues)


def test_minilm_and_praat_on_real_dialogues(tmp_path, few_dialogues):
    feats = extract("iemocap", params(text="minilm"), RAW, dialogues=few_dialogues, progress=False)
    n = sum(len(d) for d in few_dialogues)
    text, audio = feats.features["text"], feats.features["audio"]
    assert text.shape == (n, 4, 384) and audio.shape == (n, 17)
    assert torch.isfinite(text).all() and torch.isfinite(audio).all()
    # a known answer: the last layer's token mean, normalised, is what sentence-transformers' all-MiniLM-L6-v2 gives
    from sentence_transformers import SentenceTransformer
    from erc.features.text import minilm_dir
    from erc.data.datasets import repair_cp1252
    sentences = [repair_cp1252(s) for d in few_dialogues for s in d.sentences]
    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(sentences, convert_to_tensor=True)
    torch.testing.assert_close(torch.nn.functional.normalize(text[:, -1], dim=-1), reference, atol=1e-4, rtol=1e-3)
    # an utterance's embedding does not depend on which sentences share its batch
    again = extract("iemocap", params(text="minilm", audio="none"), RAW, dialogues=few_dialogues[:1], progress=False)
    assert torch.allclose(again.features["text"], text[:len(few_dialogues[0])], atol=1e-4)
    assert feats.splits == ["train", "train", "valid", "test"]
    path = tmp_path / "f.pt"
    save_features(feats, path)
    loaded = load_features(path)
    test_rows = slice(n - len(few_dialogues[-1]), n)
    assert (loaded.labels[test_rows] == -1).all() and (loaded.labels[: n - len(few_dialogues[-1])] >= 0).all()
    assert (load_features(path, hide_test_labels=False).labels == feats.labels).all()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []
    bad = random_feats([2, 1], ["train", "test"]).but(labels=torch.zeros(1, dtype=torch.long))
    with pytest.raises(InputError, match="'labels' has 1 rows, the dialogues hold 3 utterances"):
        save_features(bad, tmp_path / "bad.pt")
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


def test_a_per_dataset_text_source_is_read_for_its_dataset(few_dialogues):
    per_dataset = params(text={"iemocap": "none", "meld": "minilm"})
    feats = extract("iemocap", per_dataset, RAW, dialogues=few_dialogues, progress=False)
    assert feats.sources["text"] == "none" and "text" not in feats.features and "audio" in feats.features
