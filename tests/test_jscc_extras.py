"""Issue 5's extras: SKB tokens over the channel, the forgetting curve, the cliff and the D-JSCC summary."""

import math

import pytest
import torch

from semfed.adapter.model import GraphAdapter
from semfed.evaluation import embed
from semfed.metrics import retrieval_recalls
from semfed.token_channel import pool_tokens, send_tokens, token_receiver, unit_power_scale

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tokens(seed: int = 0, b: int = 6, n: int = 5, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit tokens [b, n, d] scaled per sample, with padding (sample i keeps 1 + i % n tokens)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.arange(n)[None, :] < (1 + torch.arange(b) % n)[:, None]
    tokens = torch.nn.functional.normalize(torch.randn(b, n, d, generator=gen), dim=-1)
    tokens = tokens * torch.rand(b, 1, 1, generator=gen).add(0.1) * 3 * mask[..., None]
    return tokens, mask


# --- SKB tokens over the air ---------------------------------------------------------------

def test_power_normalisation_is_exact_per_sample_over_valid_tokens():
    tokens, mask = _tokens()
    sent = tokens * unit_power_scale(tokens, mask)[..., None]
    complex_symbols = mask.sum(1) * tokens.shape[-1] / 2
    power = sent.pow(2).flatten(1).sum(1) / complex_symbols  # sum |z|^2 / k over the valid symbols
    assert torch.allclose(power, torch.ones_like(power), atol=1e-6)
    assert unit_power_scale(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)).eq(1).all()


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_at_very_high_snr_tokens_and_rsum_are_unchanged(channel):
    tokens, mask = _tokens()
    received = send_tokens(tokens, mask, channel, 150.0, torch.Generator().manual_seed(1))
    assert torch.allclose(received, tokens, atol=1e-5)
    assert received[~mask].eq(0).all()
    texts = pool_tokens(*_tokens(seed=2, b=30))  # 5 captions per image
    clean = retrieval_recalls(pool_tokens(tokens, mask) @ texts.T)
    assert retrieval_recalls(pool_tokens(received, mask) @ texts.T) == clean


def test_awgn_noise_variance_matches_the_snr():
    tokens, mask = torch.ones(400, 16, 64), torch.ones(400, 16, dtype=torch.bool)
    tokens = tokens * unit_power_scale(tokens, mask)[..., None]  # unit power: the scale is 1 at the receiver
    for snr in (0.0, 10.0):
        noise = send_tokens(tokens, mask, "awgn", snr, torch.Generator().manual_seed(3)) - tokens
        per_complex_symbol = 2 * noise.pow(2).mean()
        assert per_complex_symbol.item() == pytest.approx(10 ** (-snr / 10), rel=0.02)


def test_rayleigh_with_equalisation_has_the_expected_noise_before_equalising():
    tokens, mask = torch.ones(4000, 2, 32), torch.ones(4000, 2, dtype=torch.bool)
    tokens = tokens * unit_power_scale(tokens, mask)[..., None]
    faded = send_tokens(tokens, mask, "rayleigh", 10.0, torch.Generator().manual_seed(4), equalize=False)
    assert (2 * faded.pow(2).mean()).item() == pytest.approx(1 + 10 ** -1, rel=0.05)  # E|h z|^2 + sigma^2


def test_receiver_is_seeded_and_padding_only_changes_nothing():
    tokens, mask = _tokens()
    a = send_tokens(tokens, mask, "rayleigh", 5.0, torch.Generator().manual_seed(9), block=False)
    b = send_tokens(tokens, mask, "rayleigh", 5.0, torch.Generator().manual_seed(9), block=False)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="d even"):
        send_tokens(torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool), "awgn", 5.0)
    assert not math.isnan(pool_tokens(a, mask).sum().item())


def test_embed_with_a_receiver_pools_the_received_tokens():
    torch.manual_seed(0)
    model = GraphAdapter({"enc": 6}, torch.randn(5, 8), width=8)
    feats, mask = torch.randn(7, 4, 6), torch.arange(4)[None, :] < torch.tensor([4, 3, 2, 1, 4, 2, 3])[:, None]
    plain = embed(model, feats, mask, "enc", "cpu", batch_size=3)
    assert torch.allclose(embed(model, feats, mask, "enc", "cpu", batch_size=3, receive=pool_tokens), plain, atol=1e-6)
    noisy = embed(model, feats, mask, "enc", "cpu", receive=token_receiver("awgn", -5.0, torch.Generator().manual_seed(0)))
    assert (noisy - plain).abs().max() > 0.05
