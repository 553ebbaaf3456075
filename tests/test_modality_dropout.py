"""Modality dropout in training and the text-only evaluation (audio marked missing as extraction marks it)."""
import pytest
import torch

from erc.data.batching import DialogueData, drop_modalities
from erc.evaluation.evaluate import evaluate_model
from erc.data.feature_file import mark_missing, text_only, utterance_split
from erc.data.graphs import build_graphs
from erc.runtime.errors import InputError
from erc.evaluation.metrics import classification_metrics
from erc.models.mglra import MGLRA
from erc.config.params import validate_params
from erc.models.checkpoint import Checkpoint
from erc.training.loop import Schedule, build_objective, fit, model_config
from erc.models.predict import predict

from conftest import random_feats


def flagged_feats():
    lengths = [6, 5, 7, 4, 6, 5, 6, 5, 4, 6]
    feats = random_feats(lengths, ["train"] * 6 + ["valid"] * 2 + ["test"] * 2)
    feats.sources["audio"] = "praat"
    feats.features["audio"][:, -1] = 0.0  # the flag column: every utterance has audio
    return feats, build_graphs(lengths, 2)


def test_mark_missing_zeroes_the_descriptors_and_sets_the_flag_only_where_asked():
    x = torch.randn(4, 5)
    rows = torch.tensor([True, False, True, False])
    flagged = mark_missing(x, rows, flagged=True)
    assert torch.equal(flagged[rows, :-1], torch.zeros(2, 4)) and torch.equal(flagged[rows, -1], torch.ones(2))
    assert torch.equal(flagged[~rows], x[~rows])
    plain = mark_missing(x, rows, flagged=False)  # a `file` source has no flag column: all zero
    assert torch.equal(plain[rows], torch.zeros(2, 5)) and torch.equal(plain[~rows], x[~rows])
    assert not torch.equal(x[rows], torch.zeros(2, 5))  # the input is left alone


def test_text_only_marks_every_utterance_and_keeps_the_text():
    feats, _ = flagged_feats()
    only = text_only(feats)
    assert torch.equal(only.features["text"], feats.features["text"])
    assert (only.features["audio"][:, -1] == 1).all() and (only.features["audio"][:, :-1] == 0).all()


def test_modality_dropout_marks_about_the_rate_of_audio_rows_and_never_the_text():
    feats, graphs = flagged_feats()
    data = DialogueData(feats, graphs["multimodal"])
    batch = data.make_batch(list(range(10)))
    dropped = drop_modalities(batch, 0.3, torch.Generator().manual_seed(0), data.flagged)
    marked = dropped.features["audio"][:, -1] == 1
    assert 0.15 < marked.float().mean() < 0.45
    assert torch.equal(dropped.features["text"], batch.features["text"])
    assert torch.equal(dropped.features["audio"][~marked], batch.features["audio"][~marked])
    assert (dropped.features["audio"][marked, :-1] == 0).all()
    again = drop_modalities(batch, 0.3, torch.Generator().manual_seed(0), data.flagged)
    assert torch.equal(again.features["audio"], dropped.features["audio"])  # deterministic by generator


def test_dialogue_unit_marks_whole_dialogues_at_about_the_rate():
    feats, graphs = flagged_feats()
    data = DialogueData(feats, graphs["multimodal"])
    batch = data.make_batch(list(range(len(feats.lengths))))
    marked_share = []
    for seed in range(20):
        dropped = drop_modalities(batch, 0.3, torch.Generator().manual_seed(seed), data.flagged, unit="dialogue")
        marked = dropped.features["audio"][:, -1] == 1
        per_dialogue = torch.split(marked, batch.lengths.tolist())
        assert all(d.all() or not d.any() for d in per_dialogue)  # a dialogue is marked whole or not at all
        marked_share.append(sum(bool(d.all()) for d in per_dialogue) / len(per_dialogue))
        assert torch.equal(dropped.features["text"], batch.features["text"])
    assert 0.15 < sum(marked_share) / len(marked_share) < 0.45


def test_modality_dropout_changes_training_only_through_the_inputs():
    """Same seed: the initial weights are the same with and without dropout (its draws do not touch the global
    stream), and the trained weights differ (the dropout did something)."""
    feats, graphs = flagged_feats()
    params = validate_params({"model": {"hidden": 16, "graph_hidden": 8, "graph_layers": 1},
                              "mrl": {"enabled": False, "nesting": [4]}, "mkd": {"enabled": False}})
    config = model_config(feats, params, "iemocap")
    data = DialogueData(feats, graphs["multimodal"])
    states = []
    for rate in (0.0, 0.5):
        torch.manual_seed(0)
        model = MGLRA(config)
        first = {k: v.clone() for k, v in model.state_dict().items()}
        objective = build_objective(params, "iemocap", feats, 1)
        fit(model, data, objective, Schedule(epochs=2, lr=1e-2, weight_decay=0.0, batch_size=3, seed=0,
                                             progress=False, modality_dropout=rate), "cpu")
        states.append((first, model.state_dict()))
    assert all(torch.equal(states[0][0][k], states[1][0][k]) for k in states[0][0])
    assert not all(torch.equal(states[0][1][k], states[1][1][k]) for k in states[0][1])


def untrained_checkpoint(feats, mkd: dict, n_seeds: int = 1) -> Checkpoint:
    """A small model's checkpoint with ``n_seeds`` untrained seeds (different initial weights)."""
    params = validate_params({"model": {"hidden": 16, "graph_hidden": 8, "graph_layers": 1},
                              "mrl": {"enabled": False, "nesting": [4]}, "mkd": mkd})
    config = model_config(feats, params, "iemocap")
    torch.manual_seed(0)
    runs = {s: {"state": MGLRA(config).state_dict(), "epoch": 1} for s in range(n_seeds)}
    return Checkpoint(config, runs, {}, "cpu", {}, {})


def test_evaluate_reports_text_only_metrics():
    feats, graphs = flagged_feats()
    checkpoint = untrained_checkpoint(feats, {"enabled": False})
    metrics, _ = evaluate_model(checkpoint, feats, graphs)
    assert set(metrics["text_only"]) == {"valid", "test"}
    # on features whose audio is already missing everywhere, text only is the same input: the same numbers
    missing, _ = evaluate_model(checkpoint, text_only(feats), graphs)
    assert missing["text_only"]["test"] == missing["test"] and missing["text_only"]["valid"] == missing["valid"]
    assert missing["text_only"]["test"] == metrics["text_only"]["test"]


@pytest.mark.parametrize("placement", ["unimodal", "encoder"])
def test_text_only_metrics_come_from_the_head_mkd_text_only_names(placement):
    feats, graphs = flagged_feats()
    checkpoint = untrained_checkpoint(feats, {"enabled": True, "placement": placement})
    fused, _ = evaluate_model(checkpoint, feats, graphs, "fused")
    student, _ = evaluate_model(checkpoint, feats, graphs, "student")
    assert fused["text_only_head"] == "fused"
    if placement == "unimodal":
        assert student["text_only_head"] == "student"
        assert student["text_only"] == student["text_only_student"] == fused["text_only_student"]
        assert fused["text_only"] == fused["text_only_fused"]
        # the unimodal text student never sees audio: text-only input scores it exactly as the full input does
        assert student["text_only"]["test"] == student["students"]["text"]["test"]
    else:  # a text student after attention from audio cannot answer without audio: the fused output does
        assert student["text_only_head"] == "fused" and student["text_only"] == fused["text_only"]
        assert "text_only_student" not in student


def test_the_text_teacher_and_the_student_teacher_mean_answer_text_only_dialogues_when_asked():
    feats, graphs = flagged_feats()
    checkpoint = untrained_checkpoint(feats, {"enabled": True}, n_seeds=2)
    config = checkpoint.config
    n = len(feats.labels)
    teacher = torch.randn(n, len(feats.classes))
    teacher[:, 0] += 0.5  # a teacher that differs from the student
    metrics = {a: evaluate_model(checkpoint, feats, graphs, a, teacher)[0]
               for a in ("fused", "student", "teacher", "student+teacher")}
    for answer, m in metrics.items():
        assert m["text_only_head"] == answer and m["text_only"] == m[f"text_only_{answer}"]
        assert all(m[f"text_only_{a}"] == metrics["fused"][f"text_only_{a}"] for a in metrics)  # all reported
    # the teacher answers from its own logits: the same for every seed, whatever the model's states are
    rows = utterance_split(feats) == 2  # the test utterances
    by_hand = classification_metrics(feats.labels[rows], teacher[rows].argmax(-1), feats.classes)
    assert metrics["teacher"]["text_only"]["test"]["weighted_f1"] == {"mean": by_hand["weighted_f1"], "std": 0.0}
    # the mean answer: argmax of the mean of the student's and the teacher's softmax, seed by seed
    data = DialogueData(text_only(feats), graphs["multimodal"])
    per_seed = []
    for run in checkpoint.runs.values():
        model = MGLRA(config)
        model.load_state_dict(run["state"])
        out = predict(model, data, "test", "cpu")
        p = torch.softmax(out["student_logits"]["text"], -1) + torch.softmax(teacher[out["utterances"]], -1)
        per_seed.append(classification_metrics(out["labels"], p.argmax(-1), feats.classes)["weighted_f1"])
    assert abs(metrics["student+teacher"]["text_only"]["test"]["weighted_f1"]["mean"] - sum(per_seed) / 2) < 1e-9
    # without the teacher's logits evaluate cannot give a teacher answer and says so
    with pytest.raises(InputError, match="mkd.text_only: teacher needs the text teacher"):
        evaluate_model(checkpoint, feats, graphs, "teacher")
