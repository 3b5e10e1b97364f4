import math

import pytest
import torch

from semfed.retrieval.adapter.graph import gaussian_knn_edges, topk_concept_edges
from semfed.retrieval.adapter.losses import hardest_negative_triplet, skb_alignment


def test_gaussian_knn_edges_hand_computed():
    # sample 0: points 0, 1, 3 on a line; sample 1: two points and one padding node
    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]],
                      [[0.0, 0.0], [2.0, 0.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    edge_index, weight = gaussian_knn_edges(x, mask, k=1, sigma=1.0)
    edges = {(s, t): w for (s, t), w in zip(edge_index.T.tolist(), weight.tolist())}
    # node 0 <- 1 (d^2=1), node 1 <- 0 (d^2=1), node 2 <- 1 (d^2=4); sample 1: nodes 3 <-> 4 (d^2=4)
    assert set(edges) == {(1, 0), (0, 1), (1, 2), (4, 3), (3, 4)}
    assert edges[(1, 0)] == pytest.approx(math.exp(-0.5))
    assert edges[(1, 2)] == pytest.approx(math.exp(-2.0))
    assert edges[(4, 3)] == pytest.approx(math.exp(-2.0))


def test_gaussian_knn_keeps_all_neighbours_when_fewer_than_k():
    x = torch.randn(1, 4, 3)
    mask = torch.tensor([[True, True, False, False]])
    edge_index, _ = gaussian_knn_edges(x, mask, k=3, sigma=1.0)
    assert sorted(map(tuple, edge_index.T.tolist())) == [(0, 1), (1, 0)]


def test_topk_concept_edges():
    scores = torch.tensor([[[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]]])
    mask = torch.tensor([[True, False]])
    edges = topk_concept_edges(scores, mask, k=2)
    assert sorted(map(tuple, edges.T.tolist())) == [(1, 0), (2, 0)]


def test_hardest_negative_triplet_hand_computed():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[0.8, 0.6], [1.0, 0.0]])
    # scores [[0.8, 1.0], [0.6, 0.0]]: per pair i, hardest caption + hardest image violations
    # i=0: caption 0.2+1.0-0.8=0.4, image 0.2+0.6-0.8=0.0 ; i=1: caption 0.2+0.6-0=0.8, image 0.2+1.0-0=1.2
    assert hardest_negative_triplet(images, texts, margin=0.2).item() == pytest.approx((0.4 + 2.0) / 2)
    assert hardest_negative_triplet(images, images, margin=0.2).item() == 0.0


def test_hardest_negative_triplet_takes_the_hardest_of_several_negatives():
    # images = identity, so scores = texts.T (rows need not be unit for the arithmetic); positives on the diagonal
    scores = torch.tensor([[0.5, 0.6, 0.4],
                           [0.4, 0.2, 0.0],
                           [0.1, 0.7, 0.9]])
    # caption violations [0.2 + s[i, j] - s[i, i]]_+ (row i):    i=0: 0.3, 0.1   i=1: 0.4, 0.0   i=2: 0.0, 0.0
    # image violations   [0.2 + s[j, i] - s[i, i]]_+ (column i): i=0: 0.1, 0.0   i=1: 0.6, 0.7   i=2: 0.0, 0.0
    # max: (0.3 + 0.1) + (0.4 + 0.7) + 0 = 1.5 over 3 pairs; a sum of violations would give (0.5 + 1.7 + 0) / 3
    loss = hardest_negative_triplet(torch.eye(3), scores.T, margin=0.2)
    assert loss.item() == pytest.approx(1.5 / 3)
    # pair 1 dropped, as a positive and as every pair's negative (caption and image): i=0: 0.1 + 0.0, i=2: 0.0
    kept = hardest_negative_triplet(torch.eye(3), scores.T, margin=0.2, keep=torch.tensor([True, False, True]))
    assert kept.item() == pytest.approx(0.1 / 2)


def test_skb_alignment_hand_computed():
    concepts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # last row: no label, ignored
    p_right = 1 / (1 + math.exp(-1))  # softmax over logits (1, 0) at temperature 1
    expected = (-math.log(p_right) + (-math.log(p_right) - math.log(1 - p_right)) / 2) / 2
    assert skb_alignment(emb, targets, concepts, temperature=1.0).item() == pytest.approx(expected)
