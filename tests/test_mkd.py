"""Modality-wise distillation (METHOD_NOTES §4.3)."""
import math

import torch
import torch.nn.functional as F

from erc.data.batching import DialogueData
from erc.training.losses import CrossEntropy, distillation_loss
from erc.models.mglra import MGLRA, MGLRAConfig
from erc.training.loop import Objective, Schedule, fit, validation_score
from erc.models.predict import predict_all

from conftest import small_config, small_model_kwargs


def test_kd_is_kl_plus_teacher_entropy_and_vanishes_when_equal():
    torch.manual_seed(0)
    t, s = torch.randn(6, 4), torch.randn(6, 4)
    for T in (1.0, 2.0, 4.0):
        p, q = F.softmax(t / T, -1), F.softmax(s / T, -1)
        kl = (p * (p.log() - q.log())).sum(-1).mean()
        entropy = -(p * p.log()).sum(-1).mean()
        assert torch.allclose(distillation_loss(s, t, T), T ** 2 * (kl + entropy), atol=1e-5)
        assert torch.allclose(distillation_loss(t, t, T), T ** 2 * entropy, atol=1e-5)  # KL part is 0


def test_temperature_squared_scaling():
    t, s = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    # with a uniform student, H(p, q) = log 2 whatever p is: the loss is exactly T² log 2
    for T in (1.0, 3.0):
        assert math.isclose(distillation_loss(s, t, T).item(), T ** 2 * math.log(2), rel_tol=1e-6)


def test_no_gradient_reaches_a_teacher(toy):
    feats, graphs = toy
    torch.manual_seed(0)
    kwargs = small_model_kwargs(feats)
    teacher = MGLRA(MGLRAConfig(**dict(kwargs, input_dims={"audio": kwargs["input_dims"]["audio"]})))
    teacher_logits = teacher(DialogueData(feats, graphs["unimodal"], ["audio"]).make_batch(range(10)))["logits"][-1]
    student = MGLRA(small_config(feats, student_placement="encoder"))
    batch = DialogueData(feats, graphs["multimodal"]).make_batch([0, 1, 2])
    objective = Objective(CrossEntropy(), teacher_logits={"text": teacher_logits, "audio": teacher_logits})
    objective(student(batch), batch).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.student_heads["audio"].weight.grad.abs().sum() > 0
    # cached teacher logits are plain tensors, computed in eval mode without a graph
    cached = predict_all(teacher, DialogueData(feats, graphs["unimodal"], ["audio"]), "cpu")
    assert not cached.requires_grad and cached.shape == (int(feats.lengths.sum()), 3)


def test_loss_with_mkd_adds_student_terms_and_disabled_is_the_task_loss(toy):
    feats, graphs = toy
    torch.manual_seed(0)
    model = MGLRA(small_config(feats, nesting=[4, 16], student_placement="graph")).eval()
    batch = DialogueData(feats, graphs["multimodal"]).make_batch([0, 1])
    out = model(batch)
    y = batch.labels
    teachers = {m: torch.randn(int(feats.lengths.sum()), 3) for m in ("text", "audio")}
    task = CrossEntropy()
    mrl = sum(F.cross_entropy(z, y) for z in out["logits"])
    assert torch.allclose(Objective(task)(out, batch), mrl)  # mkd.enabled false: exactly the MRL loss
    by_hand = mrl + sum(0.5 * F.cross_entropy(out["student_logits"][m], y)
                        + 2.0 * distillation_loss(out["student_logits"][m], teachers[m][batch.utterances], 2.0)
                        for m in ("text", "audio"))
    objective = Objective(task, teacher_logits=teachers, lambda_ce=0.5, lambda_kd=2.0, temperature=2.0)
    assert torch.allclose(objective(out, batch), by_hand, atol=1e-6)


def test_student_heads_sit_where_placement_says(toy):
    feats, graphs = toy
    # widths that tell the placements apart: hidden 16, graph_hidden 4 (a post-graph block is 2 * 4 = 8 wide)
    enc = MGLRA(small_config(feats, hidden=16, graph_hidden=4, student_placement="encoder"))
    post = MGLRA(small_config(feats, hidden=16, graph_hidden=4, student_placement="graph"))
    assert enc.student_heads["text"].in_features == 16      # encoder width (hidden)
    assert post.student_heads["text"].in_features == 8      # [h^K | h^0] = 2 * graph_hidden
    assert post.student_heads["audio"].in_features == 8


def test_unimodal_student_sees_only_its_own_modality(toy):
    feats, graphs = toy
    changed = feats.but(features=dict(feats.features, text=feats.features["text"] + 3.0))
    batch, other = (DialogueData(f, graphs["multimodal"]).make_batch([0, 1, 2]) for f in (feats, changed))
    for placement, audio_sees_text in (("unimodal", False), ("encoder", True)):
        torch.manual_seed(0)
        model = MGLRA(small_config(feats, student_placement=placement)).eval()
        with torch.no_grad():
            before, after = model(batch)["student_logits"], model(other)["student_logits"]
        assert torch.equal(before["audio"], after["audio"]) != audio_sees_text  # encoder: after attention from text
        assert not torch.equal(before["text"], after["text"])
    assert model.student_heads["audio"].in_features == 16  # the encoder width, like `encoder`


def test_the_text_student_keeps_its_own_validation_epoch_and_the_fused_selection_is_unchanged(toy):
    feats, graphs = toy
    data = DialogueData(feats, graphs["multimodal"])
    teachers = {m: torch.randn(int(feats.lengths.sum()), 3, generator=torch.Generator().manual_seed(1))
                for m in ("text", "audio")}
    schedule = Schedule(epochs=8, lr=1e-2, weight_decay=0.0, batch_size=2, seed=0, progress=False)

    def run(student):
        torch.manual_seed(0)
        model = MGLRA(small_config(feats, nesting=[4, 16], student_placement="unimodal"))
        return fit(model, data, Objective(CrossEntropy(), teacher_logits=teachers), schedule.but(student=student),
                   "cpu")
    plain, both = run(None), run("text")
    key = "valid_text_student_weighted_f1"
    scores = [row[key] for row in both["history"]]
    assert both["history"][both["student_epoch"] - 1][key] == max(scores)
    assert plain["epoch"] == both["epoch"] and all(torch.equal(plain["state"][k], both["state"][k]) for k in plain["state"])
    # the kept state is that epoch's: its text head scores what the history says
    model = MGLRA(small_config(feats, nesting=[4, 16], student_placement="unimodal")).eval()
    model.load_state_dict(both["student_state"])
    _, (own, _) = validation_score(model, data, Objective(CrossEntropy()), "cpu", feats.classes, 2, student="text")
    assert own["weighted_f1"] == max(scores)


def test_a_unimodal_text_student_keeps_its_epoch_whatever_mkd_text_only_says(toy):
    """Training does not read mkd.text_only (train does not list it in dvc.yaml): the checkpoint keeps the text
    student's own epoch for every answer evaluate and predict.py may be asked for, and no trace of the setting."""
    from erc.config.params import validate_params
    from erc.training.train import train_model
    feats, graphs = toy
    checkpoints = []
    for answer in ("fused", "teacher"):
        params = validate_params({"model": {"hidden": 8, "graph_hidden": 8, "graph_layers": 1},
                                  "train": {"epochs": 2, "seeds": [0]}, "workers": 1,
                                  "mrl": {"nesting": [4]}, "mkd": {"placement": "unimodal", "text_only": answer}})
        teachers = {m: torch.randn(int(feats.lengths.sum()), 3, generator=torch.Generator().manual_seed(1))
                    for m in ("text", "audio")}
        checkpoints.append(train_model("iemocap", feats, graphs, params, teachers, progress=False))
    first, second = checkpoints
    assert {"text_only_state", "text_only_epoch"} <= set(first.runs[0]) and "text_only" not in first.mkd
    assert first.mkd == second.mkd and first.runs[0]["text_only_epoch"] == second.runs[0]["text_only_epoch"]
    assert all(torch.equal(first.runs[0]["text_only_state"][k], second.runs[0]["text_only_state"][k])
               for k in first.runs[0]["text_only_state"])
