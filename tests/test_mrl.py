"""MRL and MRL-E heads and loss (METHOD_NOTES §3)."""
import torch
import torch.nn.functional as F

from erc.data.batching import DialogueData
from erc.models.mglra import MGLRA
from erc.models.mrl import NestedClassifier, matryoshka_loss, nesting_sizes, prefix_columns

from conftest import small_config


def test_nesting_sizes_always_end_with_the_block():
    assert nesting_sizes([8, 16, 4096, 16], 32) == [8, 16, 32]
    assert nesting_sizes(None, 32) == [32]
    assert prefix_columns(2, 5, 3).tolist() == [0, 1, 5, 6, 10, 11]


def test_mrl_e_has_one_weight_and_one_bias_and_slices_it():
    head = NestedClassifier(block_width=6, n_blocks=3, sizes=[2, 4, 6], n_classes=4, shared=True)
    params = dict(head.named_parameters())
    assert list(params) == ["head.weight", "head.bias"] and params["head.weight"].shape == (4, 18)
    z = torch.randn(5, 18)
    logits = head(z)
    W, b = head.head.weight, head.head.bias
    cols = [0, 1, 6, 7, 12, 13]  # first 2 of each block
    assert torch.allclose(logits[0], z[:, cols] @ W[:, cols].T + b, atol=1e-6)
    assert torch.allclose(logits[-1], z @ W.T + b, atol=1e-6)


def test_mrl_heads_are_separate_and_read_block_prefixes():
    head = NestedClassifier(block_width=6, n_blocks=2, sizes=[3, 6], n_classes=4, shared=False)
    assert [h.weight.shape for h in head.heads] == [(4, 6), (4, 12)]
    z = torch.randn(5, 12)
    small = head(z)[0]
    expected = z[:, [0, 1, 2, 6, 7, 8]] @ head.heads[0].weight.T + head.heads[0].bias
    assert torch.allclose(small, expected, atol=1e-6)


def test_mrl_loss_is_the_weighted_sum_of_per_size_losses():
    torch.manual_seed(0)
    logits = [torch.randn(7, 3) for _ in range(3)]
    y = torch.randint(0, 3, (7,))
    by_hand = F.cross_entropy(logits[0], y) + F.cross_entropy(logits[1], y) + F.cross_entropy(logits[2], y)
    assert torch.allclose(matryoshka_loss(F.cross_entropy, logits, y), by_hand)
    weighted = 0.5 * F.cross_entropy(logits[0], y) + 2 * F.cross_entropy(logits[2], y)
    assert torch.allclose(matryoshka_loss(F.cross_entropy, logits, y, [0.5, 0.0, 2.0]), weighted)


def test_mrl_disabled_is_plain_mglra(toy):
    feats, graphs = toy
    torch.manual_seed(0)
    model = MGLRA(small_config(feats)).eval()
    classifier = dict(model.classifier.named_parameters())
    assert {k: v.shape for k, v in classifier.items()} == {"heads.0.weight": (3, 32), "heads.0.bias": (3,)}
    batch = DialogueData(feats, graphs["multimodal"]).make_batch([0, 1])
    captured = {}
    model.classifier.register_forward_hook(lambda m, inp, out: captured.update(fused=inp[0]))
    out = model(batch)["logits"]
    assert len(out) == 1
    assert torch.allclose(out[0], captured["fused"] @ classifier["heads.0.weight"].T + classifier["heads.0.bias"])
    # enabling MRL adds only heads: the rest of the network is the same
    with_mrl = MGLRA(small_config(feats, nesting=[2, 4, 16]))
    rest = lambda m: {k: v.shape for k, v in m.state_dict().items() if not k.startswith("classifier")}  # noqa: E731
    assert rest(with_mrl) == rest(model)


def test_graph_first_puts_gcn_output_in_small_prefixes(toy):
    feats, graphs = toy
    batch = DialogueData(feats, graphs["multimodal"]).make_batch([0])
    outputs = {}
    for order in ("graph_first", "released"):
        torch.manual_seed(0)
        model = MGLRA(small_config(feats, block_order=order)).eval()
        model.classifier.register_forward_hook(lambda m, inp, out, o=order: outputs.update({o: inp[0]}))
        model(batch)
    first, released = outputs["graph_first"], outputs["released"]  # blocks of 2 * graph_hidden = 16
    assert torch.allclose(first[:, :8], released[:, 8:16]) and torch.allclose(first[:, 8:16], released[:, :8])
    assert not torch.allclose(first[:, :8], first[:, 8:16])  # h^K differs from h^0: the GCN did something


def test_mrl_reduction_mean_divides_by_the_weights():
    torch.manual_seed(0)
    logits, y = [torch.randn(5, 3) for _ in range(3)], torch.tensor([0, 1, 2, 1, 0])
    losses = [torch.nn.functional.cross_entropy(z, y) for z in logits]
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(matryoshka_loss(ce, logits, y), sum(losses))
    assert torch.allclose(matryoshka_loss(ce, logits, y, reduction="mean"), sum(losses) / 3)
    weighted = (1.0 * losses[0] + 2.0 * losses[1] + 1.0 * losses[2]) / 4.0
    assert torch.allclose(matryoshka_loss(ce, logits, y, [1.0, 2.0, 1.0], "mean"), weighted)
    # a single size (plain MGLRA): sum and mean are the same loss
    assert torch.equal(matryoshka_loss(ce, logits[:1], y, reduction="mean"), matryoshka_loss(ce, logits[:1], y))


def test_every_loss_scores_all_sizes_at_once_as_it_scores_each():
    from erc.training.losses import CrossEntropy, ReleasedFocal, WeightedNLL
    torch.manual_seed(0)
    logits = torch.randn(4, 9, 5)
    y = torch.randint(0, 5, (9,))
    for loss in (WeightedNLL(torch.tensor([0.5, 1.0, 2.0, 1.5, 0.0])), ReleasedFocal(2.5), CrossEntropy()):
        each = torch.stack([loss(z, y) for z in logits])
        assert torch.allclose(loss.per_size(logits, y), each, atol=1e-6), type(loss).__name__
    # class-weighted NLL by hand for size 0: Σ w_y · (−log p_y) / Σ w_y
    w = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.0])[y]
    by_hand = -(F.log_softmax(logits[0], -1)[torch.arange(9), y] * w).sum() / w.sum()
    loss = WeightedNLL(torch.tensor([0.5, 1.0, 2.0, 1.5, 0.0]))
    assert torch.allclose(loss.per_size(logits, y)[0], by_hand, atol=1e-6)
    weights = [0.5, 0.0, 2.0, 1.0]
    assert torch.allclose(matryoshka_loss(loss, logits, y, weights),
                          sum(c * loss(z, y) for c, z in zip(weights, logits)), atol=1e-6)


def test_each_mrl_head_gets_the_gradient_of_its_own_columns_only():
    head = NestedClassifier(block_width=4, n_blocks=2, sizes=[1, 4], n_classes=3, shared=False)
    z = torch.randn(6, 8)
    head(z)[0].sum().backward()  # only the smallest size's logits
    assert head.heads[0].weight.grad.abs().sum() > 0 and head.heads[1].weight.grad is None or \
        head.heads[1].weight.grad.abs().sum() == 0
    expected = torch.ones(6, 3).T @ z[:, [0, 4]]  # d(sum of logits)/dW = 1ᵀ z on the size's columns
    assert torch.allclose(head.heads[0].weight.grad, expected, atol=1e-5)
