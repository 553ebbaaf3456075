"""erc.models.layers: the unpacked bidirectional LSTM gives the packed one's outputs and gradients; dropout's law."""
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from erc.data.batching import Padding
from erc.models.layers import Dropout, bidirectional_lstm, dropout


def test_padding_reverses_within_each_length_and_is_its_own_inverse():
    padding = Padding(torch.tensor([3, 1, 4]))
    steps = torch.arange(4.).expand(3, 4).unsqueeze(-1).requires_grad_(True)  # (B, L, 1): each place's own step
    reversed_ = padding.reverse(steps)
    assert reversed_.squeeze(-1).tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    assert torch.equal(padding.reverse(reversed_), steps)
    weights = torch.randn(3, 4, 1)  # the gradient is the same permutation of the weights
    grad, = torch.autograd.grad((reversed_ * weights).sum(), steps)
    assert torch.equal(grad, padding.reverse(weights))


def test_padding_moves_rows_between_layouts_as_a_mask_does():
    lengths = torch.tensor([2, 3, 1])
    padding = Padding(lengths)
    flat = torch.arange(12.).view(6, 2).requires_grad_(True)
    padded = padding.pad(flat)
    mask = torch.arange(3) < lengths[:, None]
    assert padded.shape == (3, 3, 2) and torch.equal(padded[mask], flat) and not padded[~mask].any()
    assert torch.equal(padding.unpad(padded), flat)
    grad, = torch.autograd.grad((padding.unpad(padded * 2) ** 2).sum(), flat)
    assert torch.equal(grad, 8 * flat)


@pytest.mark.parametrize("layers", [1, 2])
def test_unpacked_bidirectional_lstm_equals_the_packed_one(layers):
    torch.manual_seed(0)
    lstm = nn.LSTM(6, 5, num_layers=layers, bidirectional=True, batch_first=True)  # dropout 0: comparable in train
    lengths = torch.tensor([7, 2, 1, 5])
    mask = torch.arange(7) < lengths[:, None]
    x = (torch.randn(4, 7, 6) * mask[..., None]).requires_grad_(True)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    reference = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=7)[0][mask]
    ours = bidirectional_lstm(lstm, x, Padding(lengths))[mask]
    assert torch.allclose(ours, reference, atol=1e-6)
    weights = torch.randn_like(ours)  # any loss: the gradients too
    expected = torch.autograd.grad((reference * weights).sum(), [x, *lstm.parameters()])
    got = torch.autograd.grad((ours * weights).sum(), [x, *lstm.parameters()])
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, atol=1e-5)
    # padding never reaches a real utterance: changing it changes nothing real
    noisy = x.detach() + torch.randn_like(x) * ~mask[..., None]
    assert torch.allclose(bidirectional_lstm(lstm, noisy, Padding(lengths))[mask], ours.detach(), atol=1e-6)


def test_bidirectional_lstm_refuses_what_it_does_not_implement():
    with pytest.raises(ValueError, match="bidirectional"):
        bidirectional_lstm(nn.LSTM(3, 2, batch_first=True), torch.zeros(1, 2, 3), Padding(torch.tensor([2])))


def test_dropout_keeps_with_chance_one_minus_p_and_rescales():
    torch.manual_seed(0)
    x = torch.ones(100_000)
    out = dropout(x, 0.3)
    kept = out[out > 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.7)) and (out >= 0).all()
    assert abs((out > 0).float().mean().item() - 0.7) < 0.01
    assert torch.equal(dropout(x, 0.3, training=False), x) and torch.equal(dropout(x, 0.0), x)
    assert dropout(x, 1.0).abs().sum() == 0
    module = Dropout(0.5).eval()
    assert torch.equal(module(x), x) and isinstance(module, nn.Dropout)
