import math

import pytest
import pytorch_msssim
import torch

from semfed import channels as ch
from semfed.jscc import (
    DECODERS,
    AttentionEncoder,
    build_decoder,
    latent_channels,
    ms_ssim,
    msssim_scales,
    psnr,
    symbols_to_latent,
)
from semfed.jscc.image_metrics import ms_ssim_scales

TINY = {"width": 8, "num_blocks": 2}
SIZES = [(32, 32), (48, 64)]
RATIOS = [1 / 6, 1 / 12]


def _images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _encoder(ratio: float = 1 / 6) -> AttentionEncoder:
    torch.manual_seed(0)
    return AttentionEncoder(ratio, **TINY)


def _decoder(name: str, latent: int, **sizes):
    torch.manual_seed(1)
    return build_decoder(name, latent_channels=latent, **(sizes or TINY))


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- latent format and encoder --------------------------------------------------------

def test_latent_channels_follow_bandwidth_ratio():
    assert [latent_channels(r) for r in (1 / 6, 1 / 12, 1 / 24, 1 / 3)] == [16, 8, 4, 32]
    with pytest.raises(ValueError, match="latent channels"):
        latent_channels(0.1)  # 9.6 channels
    with pytest.raises(ValueError, match="latent channels"):
        latent_channels(1 / 200)


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("ratio", RATIOS)
def test_encoder_emits_2k_unit_power_symbols(h, w, ratio):
    enc = _encoder(ratio)
    z = enc(_images(3, h, w), torch.tensor([1.0, 7.0, 13.0]))
    k = ch.bandwidth_symbols((3, h, w), ratio)
    assert z.shape == (3, 2 * k)
    power = ch.to_complex(z).abs().double().pow(2).mean(dim=1)
    assert torch.allclose(power, torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)
    latent = symbols_to_latent(z, enc.latent_channels, (h, w))
    assert latent.shape == (3, enc.latent_channels, h // 4, w // 4)


def test_encoder_rejects_bad_image_sizes():
    with pytest.raises(ValueError, match="multiples of 4"):
        _encoder()(torch.rand(1, 3, 30, 32), 5.0)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        _encoder()(torch.rand(1, 1, 32, 32), 5.0)


def test_seeded_construction_is_reproducible():
    a, b = _encoder(), _encoder()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    x = _images(2, 32, 32)
    assert torch.equal(a(x, 5.0), b(x, 5.0))


def test_encoder_output_depends_on_snr():
    enc, x = _encoder(), _images(2, 32, 32)
    low, high = enc(x, 1.0), enc(x, 13.0)
    assert (low - high).abs().max() > 1e-4
    # a per-sample SNR tensor gives the same as one float per sample
    mixed = enc(x, torch.tensor([1.0, 13.0]))
    assert torch.allclose(mixed[0], low[0], atol=1e-6) and torch.allclose(mixed[1], high[1], atol=1e-6)


# --- decoders ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("ratio", RATIOS)
def test_decoder_restores_image_shape_in_unit_range(name, h, w, ratio):
    enc = _encoder(ratio)
    snr = torch.tensor([1.0, 13.0])
    y = ch.awgn(enc(_images(2, h, w), snr), snr, generator=torch.Generator().manual_seed(2))
    dec = _decoder(name, enc.latent_channels)
    out = dec(y, snr, image_size=(h, w))
    assert out.shape == (2, 3, h, w)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # the latent map is an equivalent input
    assert torch.equal(dec(symbols_to_latent(y, enc.latent_channels, (h, w)), snr), out)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoder_output_depends_on_snr(name):
    dec = _decoder(name, 16)
    y = torch.randn(2, 16 * 8 * 8, generator=torch.Generator().manual_seed(3))
    low, high = dec(y, 1.0, image_size=(32, 32)), dec(y, 13.0, image_size=(32, 32))
    assert (low - high).abs().max() > 1e-5


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_gradients_reach_every_encoder_parameter(name):
    enc = _encoder()
    dec = _decoder(name, enc.latent_channels)
    x, snr = _images(2, 32, 32), torch.tensor([4.0, 10.0])
    y = ch.rayleigh(enc(x, snr), snr, generator=torch.Generator().manual_seed(4))
    torch.nn.functional.mse_loss(dec(y, snr, image_size=(32, 32)), x).backward()
    for pname, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_weaker_and_stronger_devices_differ_in_size(name):
    weak = _n_params(_decoder(name, 8, width=8, num_blocks=2))
    deeper = _n_params(_decoder(name, 8, width=8, num_blocks=3))
    wider = _n_params(_decoder(name, 8, width=16, num_blocks=2))
    assert weak < deeper and weak < wider


def test_families_differ_and_decoders_reject_bad_input():
    counts = {name: _n_params(_decoder(name, 16)) for name in DECODERS}
    assert len(set(counts.values())) == len(counts)
    dec = _decoder("conv", 16)
    with pytest.raises(ValueError, match="image_size"):
        dec(torch.randn(2, 1024), 5.0)
    with pytest.raises(ValueError, match=r"\[B, 1024\]"):
        dec(torch.randn(2, 1000), 5.0, image_size=(32, 32))
    with pytest.raises(ValueError, match="snr_db"):
        dec(torch.randn(2, 1024), torch.tensor([1.0, 2.0, 3.0]), image_size=(32, 32))
    with pytest.raises(ValueError, match="num_blocks"):
        build_decoder("vgg", latent_channels=16, num_blocks=1)


def test_build_decoder_unknown_family_names_it_and_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'mlp'.*\['attention', 'conv', 'prompt', 'resnet', 'vgg'\]"):
        build_decoder("mlp", latent_channels=16)


# --- image metrics -------------------------------------------------------------------

def test_psnr_hand_values():
    x = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    y = x.clone()
    y[0] += 0.1                     # MSE 0.01 -> 20 dB
    y[1, :, :4] += 0.2              # MSE 0.04 on half the pixels = 0.02 -> 10 log10(50) dB
    assert psnr(x, y).tolist() == pytest.approx([20.0, 10 * math.log10(50)], abs=1e-9)
    assert torch.isinf(psnr(x, x)).all()
    with pytest.raises(ValueError):
        psnr(x, y[:, :, :4])


def test_ms_ssim_window_and_scale_choice_and_values():
    sizes = (9, 16, 17, 32, 33, 48, 64, 128, 160, 161, 512)
    assert [msssim_scales(s, s) for s in sizes] == [(3, 3), (3, 3), (3, 4), (3, 4), (3, 5), (3, 5), (3, 5), (7, 5),
                                                    (9, 5), (11, 5), (11, 5)]
    assert msssim_scales(48, 640) == (3, 5) and msssim_scales(640, 32) == (3, 4)
    with pytest.raises(ValueError, match="9 px"):
        msssim_scales(8, 8)
    for size in (48, 32):
        x = _images(2, size, size)
        same = ms_ssim(x, x)
        assert same.shape == (2,) and torch.allclose(same, torch.ones(2), atol=1e-5)
        noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
        worse = ms_ssim(x, noisy)
        assert (worse < 0.99).all() and (worse > 0).all()


def test_ms_ssim_scales_is_pytorch_msssim_at_five_scales_and_renormalises_fewer():
    x = _images(2, 48, 64)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
    standard = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # sums to 1.0001; renormalised: w / 1.0001

    def library(weights):
        return pytorch_msssim.ms_ssim(x, noisy, data_range=1.0, size_average=False, win_size=3,
                                      weights=list(torch.tensor(weights) / sum(weights)))

    assert torch.allclose(ms_ssim_scales(x, noisy, 3, 5), library(standard), rtol=0, atol=1e-6)
    assert torch.allclose(ms_ssim_scales(x, noisy, 3, 4), library(standard[:4]), rtol=0, atol=1e-6)
    assert not torch.allclose(ms_ssim_scales(x, noisy, 3, 4), library(standard), atol=1e-3)
