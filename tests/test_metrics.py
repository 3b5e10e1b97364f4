import logging

import pytest
import torch

from semfed.retrieval.metrics import retrieval_recalls


def test_recalls_on_hand_made_similarity():
    # 3 images x 2 captions; caption j of image i at column 2i + j
    sim = torch.tensor([
        [0.9, 0.1, 0.5, 0.2, 0.3, 0.0],   # best true caption ranks 1st
        [0.8, 0.7, 0.6, 0.1, 0.65, 0.0],  # best true caption (0.6) behind three wrong ones
        [0.1, 0.2, 0.3, 0.4, 0.05, 0.5],  # best true caption ranks 1st
    ])
    r = retrieval_recalls(sim, captions_per_image=2)
    assert r["i2t_r1"] == pytest.approx(200 / 3)
    assert r["i2t_r5"] == pytest.approx(100.0)
    # own-image ranks per caption: 0, 2, 0, 2, 2, 0
    assert r["t2i_r1"] == pytest.approx(50.0)
    assert r["t2i_r5"] == pytest.approx(100.0)
    assert r["rsum"] == pytest.approx(200 / 3 + 100 + 100 + 50 + 100 + 100)


def ranked_similarity(ranks: list[int]) -> torch.Tensor:
    """[N, N] similarity, one caption per image, where image i's own caption (score 0) is beaten by
    exactly ranks[i] wrong captions (score 1; the others -1): its 0-based i2t rank is ranks[i]."""
    n = len(ranks)
    sim = -torch.ones(n, n)
    for i, r in enumerate(ranks):
        sim[i, i] = 0.0
        sim[i, [(i + d) % n for d in range(1, r + 1)]] = 1.0
    return sim


def test_a_true_item_at_rank_k_is_a_miss_for_recall_at_k():
    # 12 images whose true caption ranks exactly at 0, 1, 4, 5, 9, 10 (twice each): Recall@K counts
    # ranks < K, so R@1 = 2/12, R@5 = 6/12, R@10 = 10/12. An off-by-one (rank <= K) would give
    # 4/12, 8/12, 12/12; rank < K - 1 would give 0, 4/12, 8/12.
    sim = ranked_similarity([0, 1, 4, 5, 9, 10, 10, 9, 5, 4, 1, 0])
    expected = {"r1": 100 * 2 / 12, "r5": 100 * 6 / 12, "r10": 100 * 10 / 12}
    i2t = retrieval_recalls(sim, captions_per_image=1)
    assert {k: i2t[f"i2t_{k}"] for k in expected} == pytest.approx(expected)
    # with one caption per image, text -> image on the transpose ranks caption i exactly as image i above
    t2i = retrieval_recalls(sim.T, captions_per_image=1)
    assert {k: t2i[f"t2i_{k}"] for k in expected} == pytest.approx(expected)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_similarity_scores_zero_with_a_warning(bad, caplog):
    perfect = torch.eye(4).repeat_interleave(5, dim=1)  # RSUM 600 while finite
    for broken in (torch.full_like(perfect, bad), perfect.index_put((torch.tensor([2]), torch.tensor([7])),
                                                                    torch.tensor(bad))):
        with caplog.at_level(logging.WARNING, logger="semfed.retrieval.metrics"):
            r = retrieval_recalls(broken)
        assert set(r.values()) == {0.0} and len(r) == 7
        assert "non-finite" in caplog.text


def test_perfect_and_tied_similarity():
    perfect = torch.eye(4).repeat_interleave(5, dim=1)
    assert retrieval_recalls(perfect)["rsum"] == pytest.approx(600.0)
    tied = torch.zeros(4, 20)  # ties count against the true item
    r = retrieval_recalls(tied)
    assert r["i2t_r1"] == 0.0 and r["t2i_r1"] == 0.0


def test_wrong_caption_count_is_rejected():
    with pytest.raises(ValueError, match="expected 3 x 5"):
        retrieval_recalls(torch.zeros(3, 14))
