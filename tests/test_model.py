"""MGLRA: the sparse gated layer, the fixed released bugs, padding, and that it learns."""
import copy
from pathlib import Path

import pytest
import torch

from erc.data.batching import DialogueData
from erc.runtime.errors import InputError
from erc.training.losses import WeightedNLL, class_weights
from erc.models.mglra import MGLRA, MGLRAConfig, MaskedGatedConv
from erc.config.params import load_params, validate_params
from erc.training.loop import Objective, Schedule, fit, model_config
from erc.models.predict import predict

from conftest import small_config, small_model_kwargs


def test_dense_layer_equals_per_edge_messages_and_a_hand_sum():
    from erc.data.batching import dense_adjacency
    from erc.data.graphs import dialogue_graph
    torch.manual_seed(0)
    conv = MaskedGatedConv(8, mask_ratio=0.0, faithful=False).eval()
    lengths = torch.tensor([5, 3])
    graphs = [dialogue_graph(5, 3, window_past=2), dialogue_graph(3, 3)]
    h = [torch.randn(15, 8), torch.randn(9, 8)]
    padded = torch.zeros(2, 15, 8)  # node k*5 + u of the batch's layout (longest dialogue 5)
    for b, (x, n) in enumerate(zip(h, lengths.tolist())):
        for node in range(3 * n):
            padded[b, node // n * 5 + node % n] = x[node]
    dense = conv(padded, dense_adjacency(graphs, lengths, 3))
    for b, (x, g, n) in enumerate(zip(h, graphs, lengths.tolist())):
        per_edge = conv.forward_per_edge(x, g.edge_index, g.edge_weight)
        for node in range(3 * n):
            assert torch.allclose(dense[b, node // n * 5 + node % n], per_edge[node], atol=1e-6)
    assert dense[1, 3:5].abs().sum() == 0  # padding receives nothing
    w, bias = conv.gate.weight[0], conv.gate.bias  # by hand, node 0 of dialogue 0
    g = graphs[0]
    into0 = g.edge_index[1] == 0
    manual = sum(wt * torch.tanh(w[:8] @ h[0][0] + w[8:] @ h[0][j] + bias) * h[0][j]
                 for j, wt in zip(g.edge_index[0][into0], g.edge_weight[into0]))
    assert torch.allclose(dense[0, 0], manual, atol=1e-5)


def test_gradients_flow_through_the_dense_layer_and_not_into_padding():
    from erc.data.batching import dense_adjacency
    from erc.data.graphs import dialogue_graph
    conv = MaskedGatedConv(4, mask_ratio=0.0, faithful=False)
    adjacency = dense_adjacency([dialogue_graph(3, 2), dialogue_graph(1, 2)], torch.tensor([3, 1]), 2)
    h = torch.randn(2, 6, 4, requires_grad=True)
    conv(h, adjacency).sum().backward()
    assert conv.gate.weight.grad.abs().sum() > 0 and h.grad[0].abs().sum() > 0
    assert h.grad[1, [1, 2, 4, 5]].abs().sum() == 0  # dialogue 1's padded slots feed nothing


def eval_outputs(model, data, order, batch_size):
    """Full-size logits per utterance when the dialogues are batched in ``order``."""
    out = {}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = data.make_batch(order[start:start + batch_size])
            logits = model(batch)["logits"][-1]
            for u, z in zip(batch.utterances.tolist(), logits):
                out[u] = z
    return torch.stack([out[u] for u in sorted(out)])


def test_batch_composition_does_not_change_eval_outputs(toy):
    feats, graphs = toy
    torch.manual_seed(0)
    model = MGLRA(small_config(feats))
    data = DialogueData(feats, graphs["multimodal"])
    dialogues = list(range(len(feats.lengths)))
    a = eval_outputs(model, data, dialogues, batch_size=4)
    b = eval_outputs(model, data, dialogues[::-1], batch_size=3)
    c = eval_outputs(model, data, dialogues, batch_size=1)  # every dialogue alone: padding never leaks
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)


def test_faithful_mode_reproduces_the_released_quirks(toy):
    feats, graphs = toy
    torch.manual_seed(0)
    model = MGLRA(small_config(feats, faithful=True))
    data = DialogueData(feats, graphs["multimodal"])
    dialogues = list(range(len(feats.lengths)))
    torch.manual_seed(1)
    a = eval_outputs(model, data, dialogues, batch_size=4)
    torch.manual_seed(1)
    b = eval_outputs(model, data, dialogues[::-1], batch_size=3)
    torch.manual_seed(2)
    c = eval_outputs(model, data, dialogues, batch_size=4)
    assert not torch.allclose(a, b, atol=1e-4)   # attention mixes dialogues of a batch
    assert not torch.allclose(a, c, atol=1e-4)   # the mask stays on in eval


def test_mask_is_off_in_eval_and_rescaled_in_training():
    conv = MaskedGatedConv(64, mask_ratio=0.5, faithful=False)
    h = torch.ones(200, 64)
    conv.eval()
    assert torch.equal(conv.mask(h), h)
    conv.train()
    masked = conv.mask(h)
    assert set(masked.unique().tolist()) == {0.0, 2.0}
    assert abs(masked.mean().item() - 1.0) < 0.05


def test_two_eval_passes_agree(toy):
    feats, graphs = toy
    model = MGLRA(small_config(feats))
    data = DialogueData(feats, graphs["multimodal"])
    first = predict(model, data, "valid", "cpu")["logits"]
    second = predict(model, data, "valid", "cpu")["logits"]
    assert torch.equal(first, second)


def test_each_dataset_reads_its_own_input_dropout(toy):
    raw = load_params(Path(__file__).resolve().parents[1] / "params.yaml").model_dump()
    raw["model"]["input_dropout"] = {"iemocap": 0.125, "meld": 0.375}
    params = validate_params(raw)
    assert model_config(toy[0], params, "iemocap").input_dropout == 0.125
    assert model_config(toy[0], params, "meld").input_dropout == 0.375
    # and the model built from it drops at that rate
    assert MGLRA(model_config(toy[0], params, "meld")).input_dropout.p == 0.375
    with pytest.raises(InputError, match="model.input_dropout"):
        validate_params({**raw, "model": {**raw["model"], "input_dropout": {"iemocap": 0.1}}})


def test_input_dropout_acts_only_in_training(toy):
    feats, graphs = toy
    model = MGLRA(small_config(feats, dropout=0.0, mask_ratio=0.0, input_dropout=0.5))
    batch = DialogueData(feats, graphs["multimodal"]).make_batch([0, 1])
    torch.manual_seed(0)
    train_outs = [model(batch)["logits"][-1] for _ in range(2)]  # BatchNorm uses batch statistics: same input
    assert not torch.allclose(*train_outs)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(batch)["logits"][-1], model(batch)["logits"][-1])


@pytest.mark.parametrize("key, value", [("dropout", 1.5), ("input_dropout", -0.1), ("input_dropout", {"iemocap": 0.1,
                                        "meld": 1.0}), ("mask_ratio", True)])
def test_nonsense_rates_are_named(toy, key, value):
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml").model_dump()
    params["model"][key] = 0.25
    assert getattr(model_config(toy[0], validate_params(params), "iemocap"), key) == 0.25
    bad = copy.deepcopy(params)
    bad["model"][key] = value
    with pytest.raises(InputError, match=rf"'model.{key}(\.meld)?' should be"):
        validate_params(bad)


def test_padding_does_not_change_a_real_utterance(toy):
    feats, graphs = toy
    model = MGLRA(small_config(feats, av_lstm=True)).eval()
    data = DialogueData(feats, graphs["multimodal"])
    with torch.no_grad():
        alone = model(data.make_batch([5]))["logits"][-1]           # 2 utterances
        padded = model(data.make_batch([5, 2]))["logits"][-1][:2]   # next to a 7-utterance dialogue
    assert torch.allclose(alone, padded, atol=1e-5)


def test_single_modality_model_is_a_teacher(toy):
    feats, graphs = toy
    kwargs = small_model_kwargs(feats)
    kwargs["input_dims"] = {"audio": kwargs["input_dims"]["audio"]}
    model = MGLRA(MGLRAConfig(**kwargs))
    assert model.cross_attention is None and not hasattr(model, "speaker_embedding")
    out = model(DialogueData(feats, graphs["unimodal"], ["audio"]).make_batch([0, 1]))
    assert out["logits"][-1].shape == (8, 3)


def test_loss_falls_on_a_tiny_dataset(toy):
    feats, graphs = toy
    torch.manual_seed(0)
    model = MGLRA(small_config(feats, dropout=0.0, mask_ratio=0.0))
    data = DialogueData(feats, graphs["multimodal"])
    train_labels = feats.labels[:sum(feats.lengths[:6])]
    objective = Objective(WeightedNLL(class_weights(train_labels, 3)))
    result = fit(model, data, objective, Schedule(epochs=40, lr=1e-2, weight_decay=0.0, batch_size=3, seed=0,
                                                  progress=False), "cpu")
    losses = [row["train_loss"] for row in result["history"]]
    assert losses[-1] < 0.3 * losses[0]


def test_test_labels_cannot_change_the_selected_checkpoint(toy):
    feats, graphs = toy
    runs = []
    for flip in (False, True):
        labels = feats.labels.clone()
        test_rows = torch.arange(len(labels)) >= int(feats.lengths[:8].sum())
        if flip:
            labels[test_rows] = (labels[test_rows] + 1) % 3
        changed = feats.but(labels=labels)
        torch.manual_seed(0)
        model = MGLRA(small_config(changed))
        data = DialogueData(changed, graphs["multimodal"])
        objective = Objective(WeightedNLL(torch.ones(3)))
        runs.append(fit(model, data, objective, Schedule(epochs=6, lr=1e-2, weight_decay=0.0, batch_size=3, seed=0,
                                                         progress=False), "cpu"))
    assert runs[0]["epoch"] == runs[1]["epoch"]
    assert all(torch.equal(runs[0]["state"][k], runs[1]["state"][k]) for k in runs[0]["state"])


def test_on_epoch_hook_sees_eval_mode_and_leaves_training_unchanged(toy):
    feats, graphs = toy
    runs, calls = [], []

    def hook(model, epoch):
        calls.append((epoch, model.training))
        with torch.no_grad():  # an eval pass, like benchmarks/probe.py's held-out scoring
            model(DialogueData(feats, graphs["multimodal"]).make_batch([8, 9]))

    for on_epoch in (None, hook):
        torch.manual_seed(0)
        model = MGLRA(small_config(feats))
        data = DialogueData(feats, graphs["multimodal"])
        schedule = Schedule(epochs=4, lr=1e-2, weight_decay=0.0, batch_size=3, seed=0, progress=False)
        runs.append(fit(model, data, Objective(WeightedNLL(torch.ones(3))), schedule, "cpu", on_epoch=on_epoch))
    assert calls == [(1, False), (2, False), (3, False), (4, False)]
    assert [r["valid_weighted_f1"] for r in runs[0]["history"]] == [r["valid_weighted_f1"] for r in runs[1]["history"]]
    assert all(torch.equal(runs[0]["state"][k], runs[1]["state"][k]) for k in runs[0]["state"])


def test_speaker_all_or_encoder_reaches_audio_nodes(toy):
    feats, graphs = toy
    data = DialogueData(feats, graphs["unimodal"], ["audio"])
    batch = data.make_batch([0, 1])
    swapped = data.make_batch([0, 1])
    swapped.speakers = 1 - swapped.speakers
    kwargs = small_model_kwargs(feats)
    kwargs["input_dims"] = {"audio": kwargs["input_dims"]["audio"]}
    outputs = {}
    for where in ("text", "all", "encoder"):
        torch.manual_seed(0)
        model = MGLRA(MGLRAConfig(**kwargs, speaker=where)).eval()
        with torch.no_grad():
            outputs[where] = (model(batch)["logits"][-1], model(swapped)["logits"][-1])
    assert torch.equal(*outputs["text"])          # released: an audio teacher never sees the speaker
    assert not torch.allclose(*outputs["all"])    # every modality's nodes carry it
    assert not torch.allclose(*outputs["encoder"])


def test_speaker_init_std_scales_only_when_asked(toy):
    feats, _ = toy
    torch.manual_seed(0)
    released = MGLRA(small_config(feats, hidden=512)).state_dict()
    torch.manual_seed(0)
    explicit = MGLRA(small_config(feats, hidden=512, speaker_init_std=1.0)).state_dict()
    assert all(torch.equal(released[k], explicit[k]) for k in released)  # the released init, bit for bit
    torch.manual_seed(0)
    small = MGLRA(small_config(feats, hidden=512, speaker_init_std=0.05)).speaker_embedding.weight
    assert 0.04 < small.std().item() < 0.06 and 0.9 < released["speaker_embedding.weight"].std().item() < 1.1


def test_model_config_passes_the_new_options(toy):
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml").model_dump()
    params["model"]["speaker_init_std"], params["mkd"]["placement"] = 0.1, "unimodal"
    config = model_config(toy[0], validate_params(params), "iemocap")
    assert config.speaker_init_std == 0.1 and config.student_placement == "unimodal"
    MGLRA(config)


def test_eval_passes_batch_many_dialogues_only_where_answers_do_not_depend_on_the_batch(toy):
    from erc.training.references import BcLSTM
    from erc.models.predict import EVAL_BATCH, eval_batch_size
    feats, _ = toy
    assert eval_batch_size(MGLRA(small_config(feats)), 16) == EVAL_BATCH
    assert eval_batch_size(MGLRA(small_config(feats, faithful=True)), 16) == 16  # released: as trained
    assert eval_batch_size(BcLSTM(4, 2, 3), 16) == EVAL_BATCH
    assert eval_batch_size(MGLRA(small_config(feats)), 128) == 128
