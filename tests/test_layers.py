"""erc.models.layers: the unpacked bidirectional LSTM gives the packed one's outputs and gradients; dropout's law."""
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from erc.models.layers import Dropout, bidirectional_lstm, dropout, reversal_index


def test_reversal_index_reverses_within_each_length_and_is_its_own_inverse():
    index = reversal_index(torch.tensor([3, 1, 4]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    assert torch.equal(index.gather(1, index), torch.arange(4).expand(3, 4))


@pytest.mark.parametrize("layers", [1, 2])
def test_unpacked_bidirectional_lstm_equals_the_packed_one(layers):
    torch.manual_seed(0)
    lstm = nn.LSTM(6, 5, num_layers=layers, bidirectional=True, batch_first=True)  # dropout 0: comparable in train
    lengths = torch.tensor([7, 2, 1, 5])
    mask = torch.arange(7) < lengths[:, None]
    x = (torch.randn(4, 7, 6) * mask[..., None]).requires_grad_(True)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    reference = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=7)[0][mask]
    ours = bidirectional_lstm(lstm, x, lengths)[mask]
    assert torch.allclose(ours, reference, atol=1e-6)
    weights = torch.randn_like(ours)  # any loss: the gradients too
    expected = torch.autograd.grad((reference * weights).sum(), [x, *lstm.parameters()])
    got = torch.autograd.grad((ours * weights).sum(), [x, *lstm.parameters()])
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, atol=1e-5)
    # padding never reaches a real utterance: changing it changes nothing real
    noisy = x.detach() + torch.randn_like(x) * ~mask[..., None]
    assert torch.allclose(bidirectional_lstm(lstm, noisy, lengths)[mask], ours.detach(), atol=1e-6)


def test_bidirectional_lstm_refuses_what_it_does_not_implement():
    with pytest.raises(ValueError, match="bidirectional"):
        bidirectional_lstm(nn.LSTM(3, 2, batch_first=True), torch.zeros(1, 2, 3), torch.tensor([2]))


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
