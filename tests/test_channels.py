import math

import pytest
import torch

from semfed import channels as ch


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit_signal(b: int, k: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return ch.normalize_power(torch.randn(b, 2 * k, generator=_gen(seed), dtype=dtype))


def _power(x: torch.Tensor) -> torch.Tensor:
    """Mean power per complex symbol over everything."""
    return ch.to_complex(x).abs().pow(2).mean()


def _ones_symbols(b: int, k: int) -> torch.Tensor:
    """Every symbol z = 1 + 0i, so y / z = h + n at the receiver."""
    x = torch.zeros(b, 2 * k, dtype=torch.float64)
    x[:, 0::2] = 1.0
    return x


# --- representation and power ---------------------------------------------------------

def test_to_complex_to_real_round_trip_and_hand_example():
    x = torch.randn(5, 3, 8, generator=_gen(1))
    z = ch.to_complex(x)
    assert z.shape == (5, 3, 4) and z.is_complex()
    assert torch.equal(ch.to_real(z), x)
    assert ch.to_complex(torch.tensor([3.0, 4.0])).item() == 3 + 4j
    assert torch.allclose(ch.to_complex(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([1 + 2j, 3 + 4j]))
    normed = ch.normalize_power(torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(normed, torch.tensor([[0.6, 0.8]]), atol=1e-7)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize_power_exact(scale, dtype):
    x = scale * torch.randn(16, 4, 64, generator=_gen(2), dtype=dtype)
    y = ch.normalize_power(x)
    per_row = ch.to_complex(y).abs().double().pow(2).mean(dim=-1)
    assert torch.allclose(per_row, torch.ones_like(per_row), atol=1e-6, rtol=0)
    # direction unchanged: y is a positive multiple of x per row
    ratio = y / x
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-5)


def test_normalize_power_zero_stays_zero_without_nan():
    x = torch.randn(3, 10, generator=_gen(3))
    x[1] = 0.0
    x.requires_grad_(True)
    y = ch.normalize_power(x)
    assert torch.equal(y[1], torch.zeros(10))
    assert torch.isfinite(y).all()
    y.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()


# --- AWGN ----------------------------------------------------------------------------

@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_awgn_noise_power_and_snr(snr_db):
    x = _unit_signal(4096, 256)
    y = ch.awgn(x, snr_db, generator=_gen(4))
    noise_power = _power(y - x).item()
    expected = 10 ** (-snr_db / 10)
    assert noise_power == pytest.approx(expected, rel=0.03)
    measured_snr = 10 * math.log10(_power(x).item() / noise_power)
    assert measured_snr == pytest.approx(snr_db, abs=0.2)
    # each real component carries half of the complex noise variance
    n = y - x
    assert n[:, 0::2].var().item() == pytest.approx(expected / 2, rel=0.03)
    assert n[:, 1::2].var().item() == pytest.approx(expected / 2, rel=0.03)


def test_awgn_per_sample_snr_tensor():
    x = _unit_signal(4096, 256, seed=5)
    snr = torch.cat([torch.full((2048,), 0.0), torch.full((2048,), 20.0)])
    y = ch.awgn(x, snr, generator=_gen(6))
    n = y - x
    assert _power(n[:2048]).item() == pytest.approx(1.0, rel=0.03)
    assert _power(n[2048:]).item() == pytest.approx(0.01, rel=0.03)


def test_awgn_snr_tensor_over_extra_dims_and_scalar_tensor():
    x = ch.normalize_power(torch.randn(2, 64, 512, generator=_gen(7), dtype=torch.float64))
    y = ch.awgn(x, torch.tensor([0.0, 10.0]), generator=_gen(8))
    assert y.shape == x.shape
    assert _power((y - x)[0]).item() == pytest.approx(1.0, rel=0.03)
    assert _power((y - x)[1]).item() == pytest.approx(0.1, rel=0.03)
    y_scalar = ch.awgn(x, torch.tensor(10.0), generator=_gen(8))
    assert torch.allclose(y_scalar, ch.awgn(x, 10.0, generator=_gen(8)))
    with pytest.raises(ValueError, match="snr_db"):
        ch.awgn(x, torch.tensor([0.0, 1.0, 2.0]))


# --- Rayleigh ------------------------------------------------------------------------

def test_rayleigh_gain_has_unit_mean_power():
    # per-symbol fading, no equalisation, z = 1 and negligible noise: y = h
    y = ch.rayleigh(_ones_symbols(1024, 256), 200.0, generator=_gen(9), block=False, equalize=False)
    h = ch.to_complex(y)
    assert h.abs().pow(2).mean().item() == pytest.approx(1.0, rel=0.03)
    assert h.real.var().item() == pytest.approx(0.5, rel=0.03)
    assert h.imag.var().item() == pytest.approx(0.5, rel=0.03)
    assert abs(h.mean().item()) < 0.01


def test_rayleigh_block_fading_constant_within_sample():
    y = ch.rayleigh(_ones_symbols(16384, 16), 100.0, generator=_gen(10), block=True, equalize=False)
    h = ch.to_complex(y)
    spread = (h - h[:, :1]).abs().max().item()
    assert spread < 1e-3  # only the 100 dB noise (std ~1e-5) differs within a sample
    per_sample = h[:, 0]
    assert per_sample.abs().pow(2).mean().item() == pytest.approx(1.0, rel=0.05)
    assert per_sample.real.std().item() > 0.5  # varies across samples


def test_rayleigh_block_fading_per_row_of_extra_dims():
    y = ch.rayleigh(_ones_symbols(8, 12).reshape(2, 4, 24), 100.0, generator=_gen(11), equalize=False)
    h = ch.to_complex(y)
    assert y.shape == (2, 4, 24)
    assert (h - h[..., :1]).abs().max().item() < 1e-3
    assert h[..., 0].flatten().real.std().item() > 0.1  # every row has its own h


def test_rayleigh_per_symbol_fading_varies_within_sample():
    y = ch.rayleigh(_ones_symbols(64, 256), 100.0, generator=_gen(12), block=False, equalize=False)
    h = ch.to_complex(y)
    within = (h - h.mean(dim=-1, keepdim=True)).abs().pow(2).mean().item()
    assert within == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("block", [True, False])
def test_rayleigh_equalized_at_high_snr_returns_input(block):
    x = _unit_signal(64, 128, seed=13)
    y = ch.rayleigh(x, 100.0, generator=_gen(14), block=block, equalize=True)
    assert y.shape == x.shape
    assert torch.allclose(y, x, atol=1e-2, rtol=0)
    assert (y - x).abs().median().item() < 1e-4


@pytest.mark.parametrize("block", [True, False])
@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_rayleigh_unequalized_output_power(block, snr_db):
    b, k = (16384, 64) if block else (1024, 256)
    x = _unit_signal(b, k, seed=15)
    y = ch.rayleigh(x, snr_db, generator=_gen(16), block=block, equalize=False)
    expected = 1.0 + 10 ** (-snr_db / 10)
    assert _power(y).item() == pytest.approx(expected, rel=0.03)


def test_rayleigh_per_sample_snr_tensor():
    x = _ones_symbols(2048, 128)
    snr = torch.cat([torch.full((1024,), 0.0), torch.full((1024,), 20.0)])
    y = ch.rayleigh(x, snr, generator=_gen(17), block=False, equalize=False)
    assert _power(y[:1024]).item() == pytest.approx(2.0, rel=0.03)
    assert _power(y[1024:]).item() == pytest.approx(1.01, rel=0.03)


# --- gradients, determinism, devices ---------------------------------------------------

@pytest.mark.parametrize("channel,kwargs", [
    ("awgn", {}),
    ("rayleigh", {"block": True, "equalize": True}),
    ("rayleigh", {"block": False, "equalize": False}),
])
def test_gradients_flow_to_transmitted_signal(channel, kwargs):
    x = torch.randn(4, 32, generator=_gen(18), requires_grad=True)
    y = ch.apply_channel(ch.normalize_power(x), channel, 10.0, generator=_gen(19), **kwargs)
    (y * torch.linspace(-1, 1, 32)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum().item() > 0
    x2 = torch.randn(4, 32, generator=_gen(18), requires_grad=True)
    ch.apply_channel(x2, channel, 10.0, generator=_gen(19), **kwargs).sum().backward()
    assert x2.grad.abs().sum().item() > 0


@pytest.mark.parametrize("channel,kwargs", [
    ("awgn", {}),
    ("rayleigh", {"block": True}),
    ("rayleigh", {"block": False, "equalize": False}),
])
def test_same_seed_same_output_different_seed_different(channel, kwargs):
    x = _unit_signal(8, 16, seed=20, dtype=torch.float32)
    a = ch.apply_channel(x, channel, 5.0, generator=_gen(21), **kwargs)
    b = ch.apply_channel(x, channel, 5.0, generator=_gen(21), **kwargs)
    c = ch.apply_channel(x, channel, 5.0, generator=_gen(22), **kwargs)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.dtype == x.dtype and a.shape == x.shape


def test_sample_snr_from_set_and_reproducible():
    snr_set = [1.0, 4.0, 7.0, 10.0, 13.0]
    s = ch.sample_snr(5000, snr_set, _gen(23))
    assert s.shape == (5000,)
    values, counts = torch.unique(s, return_counts=True)
    assert values.tolist() == snr_set
    assert counts.min().item() > 800 and counts.max().item() < 1200  # ~1000 each
    assert torch.equal(s, ch.sample_snr(5000, snr_set, _gen(23)))
    assert not torch.equal(s, ch.sample_snr(5000, snr_set, _gen(24)))
    with pytest.raises(ValueError, match="empty"):
        ch.sample_snr(3, [], _gen(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_input_with_cpu_generator_matches_cpu():
    x = _unit_signal(8, 16, seed=25, dtype=torch.float32)
    for fn in (ch.awgn, ch.rayleigh):
        cpu = fn(x, torch.full((8,), 5.0), generator=_gen(26))
        gpu = fn(x.cuda(), torch.full((8,), 5.0), generator=_gen(26))
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)
        cuda_gen = torch.Generator(device="cuda").manual_seed(26)
        assert fn(x.cuda(), 5.0, generator=cuda_gen).device.type == "cuda"
        assert fn(x.cuda(), 5.0).device.type == "cuda"
    assert ch.sample_snr(4, [1.0, 4.0], _gen(0), device="cuda").device.type == "cuda"


# --- hand-computed scalars -------------------------------------------------------------

def test_noise_std_hand_values():
    assert ch.noise_std(0.0) == pytest.approx(math.sqrt(0.5))
    assert ch.noise_std(10.0) == pytest.approx(math.sqrt(0.05))
    assert ch.noise_std(20.0) == pytest.approx(math.sqrt(0.005))
    t = ch.noise_std(torch.tensor([0.0, 10.0]))
    assert torch.allclose(t, torch.tensor([math.sqrt(0.5), math.sqrt(0.05)]))


def test_channel_capacity_hand_values():
    assert ch.channel_capacity_bits(0.0) == pytest.approx(1.0)
    assert ch.channel_capacity_bits(10.0) == pytest.approx(math.log2(11))
    assert ch.channel_capacity_bits(20.0) == pytest.approx(math.log2(101))
    assert torch.allclose(ch.channel_capacity_bits(torch.tensor([0.0, 10.0])),
                          torch.tensor([1.0, math.log2(11)]))


def test_bandwidth_symbols():
    assert ch.bandwidth_symbols((3, 32, 32), 1 / 6) == 512
    assert ch.bandwidth_symbols((3, 32, 32), 1 / 12) == 256
    assert ch.bandwidth_symbols((1, 28, 28), 0.5) == 392


# --- errors ----------------------------------------------------------------------------

def test_errors_name_the_problem():
    odd = torch.zeros(2, 5)
    for fn in (ch.to_complex, ch.normalize_power, lambda t: ch.awgn(t, 10.0), lambda t: ch.rayleigh(t, 10.0)):
        with pytest.raises(ValueError, match="even"):
            fn(odd)
    with pytest.raises(ValueError, match="complex"):
        ch.to_real(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="ratio"):
        ch.bandwidth_symbols((3, 32, 32), 0)
    with pytest.raises(ValueError, match="ratio"):
        ch.bandwidth_symbols((3, 32, 32), -0.1)
    with pytest.raises(ValueError, match="unknown channel"):
        ch.apply_channel(torch.zeros(2, 4), "rician", 10.0)
