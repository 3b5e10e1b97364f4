import pytest
import torch

from semfed.metrics import retrieval_recalls


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


def test_perfect_and_tied_similarity():
    perfect = torch.eye(4).repeat_interleave(5, dim=1)
    assert retrieval_recalls(perfect)["rsum"] == pytest.approx(600.0)
    tied = torch.zeros(4, 20)  # ties count against the true item
    r = retrieval_recalls(tied)
    assert r["i2t_r1"] == 0.0 and r["t2i_r1"] == 0.0


def test_wrong_caption_count_is_rejected():
    with pytest.raises(ValueError, match="expected 3 x 5"):
        retrieval_recalls(torch.zeros(3, 14))
