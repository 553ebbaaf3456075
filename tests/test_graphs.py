import pytest
import torch

from erc.data.batching import dense_adjacency
from erc.data.graphs import dialogue_graph
from erc.runtime.errors import InputError


@pytest.mark.parametrize("n,m", [(1, 1), (2, 3), (5, 2), (9, 3), (4, 1)])
def test_edge_count_whole_dialogue(n, m):
    g = dialogue_graph(n, m)
    assert g.num_edges == m * n * (n - 1) + n * m * (m - 1)
    assert g.num_nodes == n * m
    assert not (g.edge_index[0] == g.edge_index[1]).any()  # no self-loops
    assert len(set(map(tuple, g.edge_index.T.tolist()))) == g.num_edges  # no duplicates


def test_edges_join_the_right_nodes():
    n, m = 4, 3
    edges = set(map(tuple, dialogue_graph(n, m).edge_index.T.tolist()))
    assert (0 * n + 1, 0 * n + 3) in edges          # text 1 -> text 3 (intra)
    assert (1 * n + 2, 2 * n + 2) in edges          # audio 2 -> visual 2 (cross, same utterance)
    assert (1 * n + 2, 2 * n + 3) not in edges      # no cross-modal edge between different utterances


def test_normalisation_is_inverse_degree_in_a_full_dialogue():
    n, m = 6, 3
    g = dialogue_graph(n, m)
    assert torch.allclose(g.edge_weight, torch.full_like(g.edge_weight, 1 / (n - 1 + m - 1)))


def test_window_limits_past_and_future():
    g = dialogue_graph(6, 1, window_past=1, window_future=0)
    edges = set(map(tuple, g.edge_index.T.tolist()))
    assert edges == {(i - 1, i) for i in range(1, 6)}  # source j = i - 1 only
    assert dialogue_graph(6, 1, 2, 2).num_edges == sum(min(i, 2) + min(5 - i, 2) for i in range(6))


def test_empty_dialogue_is_refused():
    with pytest.raises(InputError, match="empty dialogue"):
        dialogue_graph(0, 2)


def test_dense_adjacency_places_every_edge_of_every_dialogue():
    lengths = torch.tensor([3, 1, 4])
    graphs = [dialogue_graph(int(n), 2, window_past=1) for n in lengths]
    adjacency = dense_adjacency(graphs, lengths, 2)
    assert adjacency.shape == (3, 8, 8)  # 2 modalities x the longest dialogue (4)
    slot = lambda node, n: node // n * 4 + node % n  # node k*n + u of a dialogue -> k*4 + u
    for b, (g, n) in enumerate(zip(graphs, lengths.tolist())):
        expected = torch.zeros(8, 8)
        for (src, dst), w in zip(g.edge_index.T.tolist(), g.edge_weight.tolist()):
            expected[slot(dst, n), slot(src, n)] = w
        assert torch.equal(adjacency[b], expected)
    # dialogue 1 (one utterance): only its text <-> audio edges, weight 1 (degree 1 each), the rest padding
    assert adjacency[1].nonzero().tolist() == [[0, 4], [4, 0]] and adjacency[1, 0, 4] == 1.0
    assert adjacency[0, 3:4].abs().sum() == 0 and adjacency[0, :, 7].abs().sum() == 0  # padded slots: no edges


def test_dense_adjacency_adds_duplicate_edges_like_message_passing():
    from torch_geometric.data import Data
    g = Data(edge_index=torch.tensor([[1, 1], [0, 0]]), edge_weight=torch.tensor([0.25, 0.5]), num_nodes=2)
    assert dense_adjacency([g], torch.tensor([2]), 1)[0, 0, 1] == 0.75


def test_dense_adjacency_refuses_a_node_outside_the_layout():
    from torch_geometric.data import Data
    g = Data(edge_index=torch.tensor([[4], [0]]), edge_weight=torch.tensor([1.0]), num_nodes=5)
    with pytest.raises(ValueError, match="beyond"):
        dense_adjacency([g], torch.tensor([2]), 2)
