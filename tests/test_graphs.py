import pytest
import torch

from erc.batching import graph_node_index
from erc.graphs import build_graphs, dialogue_graph
from erc.io import InputError


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


def test_node_index_matches_pyg_batching():
    from torch_geometric.data import Batch
    lengths = torch.tensor([3, 1, 4])
    batch = Batch.from_data_list([dialogue_graph(int(n), 2) for n in lengths])
    index = graph_node_index(lengths, 2)
    # each dialogue's nodes occupy a contiguous range, modality-major inside it
    assert index.flatten().sort().values.tolist() == list(range(batch.num_nodes))
    assert index[:, 3].tolist() == [6, 7]      # dialogue 1's only utterance: nodes 6 (text), 7 (audio)
    assert index[:, 4].tolist() == [8, 12]     # dialogue 2, first utterance
