"""The validation-only probe: the held-out-session split, in-split teachers, one probe run of the full model."""
import torch
from sklearn.metrics import f1_score

from erc.data.feature_file import text_only, utterance_split
from erc.data.graphs import build_graphs
from erc.config.params import validate_params
from erc.training.probes import Probe, heldout_split, probe_run, split_teacher_logits

from conftest import random_feats


def session_feats():
    """Two 'training sessions' (Ses01, Ses02), each with train and valid dialogues, and a test session."""
    ids = ["Ses01_a", "Ses01_b", "Ses01_c", "Ses02_a", "Ses02_b", "Ses02_c", "Ses01_v", "Ses02_v", "Ses05_t"]
    splits = ["train"] * 6 + ["valid", "valid", "test"]
    lengths = [5, 4, 6, 5, 3, 6, 4, 5, 4]
    feats = random_feats(lengths, splits)
    feats.dialogue_ids = ids
    return feats, build_graphs(lengths, len(feats.features))


def small_params(**extra):
    raw = {"workers": 1,  # their count is tests/test_parallel.py's subject, not this file's
           "model": {"hidden": 16, "graph_hidden": 8, "graph_layers": 1, "attention_heads": 2},
           "train": {"epochs": 2, "batch_size": 2, "seeds": [0]}, "mrl": {"nesting": [4]}}
    for key, value in extra.items():
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value
    return validate_params(raw)


def test_heldout_split_moves_the_session_out_of_training_and_hides_its_validation_labels():
    feats, _ = session_feats()
    split = heldout_split(feats, "Ses02")
    assert split.splits == ["train"] * 3 + ["test"] * 3 + ["valid", "test", "test"]
    starts = torch.cat([torch.zeros(1, dtype=torch.long), feats.lengths.cumsum(0)])
    for d, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        hidden = d == 7  # Ses02's validation dialogue joins test without labels
        assert (split.labels[a:b] == -1).all().item() is hidden
        if not hidden:
            assert torch.equal(split.labels[a:b], feats.labels[a:b])
    assert torch.equal(feats.labels, session_feats()[0].labels)  # the input is left alone


def test_in_split_teachers_never_see_the_heldout_labels_and_are_cached(tmp_path):
    feats, graphs = session_feats()
    params = small_params()
    split = heldout_split(feats, "Ses02")
    logits = split_teacher_logits("iemocap", split, graphs, params)
    assert set(logits) == {"text", "audio"} and logits["text"].shape == (len(feats.labels), 3)
    # other labels on the held-out session (filed under test) leave the teachers bit-identical
    relabelled = split.but(labels=split.labels.clone())
    held = torch.tensor([s == "test" for s in split.splits]).repeat_interleave(split.lengths)
    relabelled.labels[held & (split.labels >= 0)] = 2 - relabelled.labels[held & (split.labels >= 0)]
    again = split_teacher_logits("iemocap", relabelled, graphs, params)
    assert all(torch.equal(logits[m], again[m]) for m in logits)
    # whereas teachers trained on the whole training split (the held-out session included) are other models
    assert not torch.equal(split_teacher_logits("iemocap", feats, graphs, params)["text"], logits["text"])
    # the cache returns the same logits, and a parameter the teachers read makes a new entry
    first = split_teacher_logits("iemocap", split, graphs, params, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    assert all(torch.equal(first[m], split_teacher_logits("iemocap", split, graphs, params, tmp_path)[m]) for m in first)
    split_teacher_logits("iemocap", split, graphs, small_params(**{"teachers.seed": 1}), tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    # the student's modality dropout is not a teacher's param: the entry is reused
    split_teacher_logits("iemocap", split, graphs, small_params(**{"train.modality_dropout": 0.3}), tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_probe_run_trains_the_full_model_and_reports_the_selected_heldout_score():
    feats, graphs = session_feats()
    params = small_params(**{"mkd.placement": "unimodal"})
    split = heldout_split(feats, "Ses01")
    teachers = split_teacher_logits("iemocap", split, graphs, params)
    report = probe_run(Probe("iemocap", split, graphs, params, 0, "cpu", heldout=True, teacher_logits=teachers))
    assert report["epochs"] == 2 and 1 <= report["epoch"] <= 2 and 1 <= report["peak_epoch"] <= 2
    assert 0 <= report["selected"] <= report["best"] <= 100
    # the same seed gives the same run (timing aside); MKD without teachers is refused
    again = probe_run(Probe("iemocap", split, graphs, params, 0, "cpu", heldout=True, teacher_logits=teachers))
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in report.items() if k != "seconds"}
    # text-only: with every audio already marked missing it is the selected score itself; the text teacher is
    # scored on the held-out utterances only
    only = probe_run(Probe("iemocap", text_only(split), graphs, params, 0, "cpu", heldout=True, teacher_logits=teachers))
    assert only["text_only"] == only["selected"] and 0 <= report["text_only"] <= 100
    held = (utterance_split(split) == 2) & (split.labels >= 0)
    expected = f1_score(split.labels[held], teachers["text"][held].argmax(-1), average="weighted") * 100
    assert abs(report["text_teacher"] - expected) < 1e-9
    try:
        probe_run(Probe("iemocap", split, graphs, params, 0, "cpu", heldout=True))
    except ValueError as err:
        assert "teacher" in str(err)
    else:
        raise AssertionError("MKD without teacher logits was accepted")
