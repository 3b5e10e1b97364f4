"""Simulated wireless channels for deep joint source-channel coding (D-JSCC).

Convention: a batch of transmitted symbols is a real tensor ``x`` of shape [B, ..., 2k]
holding k complex baseband symbols per row as (real, imag) pairs:
symbol j = x[..., 2j] + i x[..., 2j+1]. A "row" is one vector along the last dim.

Every channel is a pure, differentiable function of ``x`` (gradients flow from the
received signal back to ``x``) and runs on ``x.device``. SNR is in dB and is defined
against unit average signal power per complex symbol, so pass ``normalize_power(x)``
(or any unit-power signal) for the nominal SNR to hold. All randomness comes from an
optional ``torch.Generator``: the same generator seed gives the same output.

CHANNELS is the registry of channel models: name -> function (x, snr_db, generator, **options)
-> y. Its keys are the allowed values of the config key jscc-channel, the channels every D-JSCC
decoder is evaluated on, and what apply_channel dispatches on; a new model is one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

SnrDb = float | torch.Tensor


def _check_pairs(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor of (real, imag) pairs, got {type(x).__name__}")
    if x.is_complex():
        raise ValueError("expected a real tensor of (real, imag) pairs, got a complex tensor; use to_real()")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() == 0 or x.shape[-1] % 2 != 0:
        shape = tuple(x.shape)
        raise ValueError(f"last dimension must be even (k complex symbols as 2k real values), got shape {shape}")


def to_complex(x: torch.Tensor) -> torch.Tensor:
    """[..., 2k] real (re, im) pairs -> [..., k] complex. Differentiable; inverse of to_real."""
    _check_pairs(x)
    return torch.complex(x[..., 0::2], x[..., 1::2])


def to_real(z: torch.Tensor) -> torch.Tensor:
    """[..., k] complex -> [..., 2k] real (re, im) pairs. Differentiable; inverse of to_complex."""
    if not isinstance(z, torch.Tensor) or not z.is_complex():
        raise ValueError("to_real expects a complex tensor")
    return torch.stack((z.real, z.imag), dim=-1).flatten(-2)


def normalize_power(x: torch.Tensor) -> torch.Tensor:
    """Scale each row of x [..., 2k] so its mean power per complex symbol is 1.

    mean_j |z_j|^2 = (1/k) sum x^2 = 1 after scaling. All-zero rows stay zero (no NaN,
    also in the gradient). Shape and device unchanged.
    """
    _check_pairs(x)
    power = 2.0 * x.pow(2).mean(dim=-1, keepdim=True)  # mean |z_j|^2 per row
    nonzero = power > 0
    safe = torch.where(nonzero, power, torch.ones_like(power))
    return x * torch.rsqrt(safe)


def noise_std(snr_db: SnrDb) -> float | torch.Tensor:
    """Per-real-dimension noise std for unit signal power at `snr_db` (dB).

    Complex noise variance sigma^2 = 10^(-SNR/10); each real component has variance
    sigma^2 / 2, so the returned std is sqrt(10^(-SNR/10) / 2). Float in -> float out,
    tensor in -> tensor out.
    """
    if isinstance(snr_db, torch.Tensor):
        snr = snr_db if snr_db.is_floating_point() else snr_db.double()
        return torch.sqrt(torch.pow(10.0, -snr / 10.0) / 2.0)
    return math.sqrt(10.0 ** (-float(snr_db) / 10.0) / 2.0)


def _std_like(x: torch.Tensor, snr_db: SnrDb) -> float | torch.Tensor:
    """noise_std broadcastable to x [B, ..., 2k]: scalar, or [B] -> [B, 1, ..., 1]."""
    if not isinstance(snr_db, torch.Tensor):
        return noise_std(snr_db)
    if snr_db.numel() == 1:
        return noise_std(snr_db.reshape(()).to(device=x.device, dtype=x.dtype))
    if snr_db.dim() != 1 or snr_db.shape[0] != x.shape[0]:
        raise ValueError(f"snr_db tensor must be a scalar or shape [B] = [{x.shape[0]}], "
                         f"got shape {tuple(snr_db.shape)}")
    std = noise_std(snr_db.to(device=x.device, dtype=x.dtype))
    return std.reshape((-1,) + (1,) * (x.dim() - 1))


def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal of `shape` and like.dtype on like.device, drawn from `generator`.

    The draw happens on the generator's device (CPU generator -> CPU draw, then moved),
    so a given generator seed gives the same numbers whatever device x is on.
    """
    device = generator.device if generator is not None else like.device
    noise = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return noise.to(like.device)


def _complex_noise(x: torch.Tensor, snr_db: SnrDb, generator: torch.Generator | None) -> torch.Tensor:
    """Real-pair noise [..., 2k] with CN(0, 10^(-SNR/10)) per complex symbol."""
    return _randn(x.shape, x, generator) * _std_like(x, snr_db)


def awgn(x: torch.Tensor, snr_db: SnrDb, generator: torch.Generator | None = None) -> torch.Tensor:
    """AWGN channel: y = x + n, n ~ CN(0, sigma^2) per symbol, sigma^2 = 10^(-SNR/10).

    x: [B, ..., 2k] real pairs (unit power per complex symbol for the nominal SNR).
    snr_db: float, or tensor [B] (one SNR per sample, broadcast over the other dims).
    Returns y with x's shape, dtype and device.
    """
    _check_pairs(x)
    return x + _complex_noise(x, snr_db, generator)


def rayleigh(x: torch.Tensor, snr_db: SnrDb, generator: torch.Generator | None = None,
             block: bool = True, equalize: bool = True) -> torch.Tensor:
    """Rayleigh fading channel: y = h z + n, h ~ CN(0, 1), n ~ CN(0, 10^(-SNR/10)).

    x: [B, ..., 2k] real pairs; snr_db: float or tensor [B] (average received SNR, since
    E|h|^2 = 1). block=True: one h per row (per vector along the last dim, constant over
    its k symbols); block=False: an independent h per symbol. equalize=True: the receiver
    knows h and returns the zero-forcing estimate z_hat = y / h; equalize=False returns
    h z + n. Output: [B, ..., 2k] real pairs on x.device.
    """
    _check_pairs(x)
    z = to_complex(x)
    h_shape = z.shape[:-1] + (1,) if block else z.shape
    gain = _randn(h_shape + (2,), x, generator) * math.sqrt(0.5)
    h = torch.complex(gain[..., 0], gain[..., 1])
    n = to_complex(_complex_noise(x, snr_db, generator))
    y = h * z + n
    if equalize:
        y = y / h
    return to_real(y)


Channel = Callable[..., torch.Tensor]
#: Channel models by name: (x [B, ..., 2k], snr_db float or [B] dB, generator, **options) -> y [B, ..., 2k].
CHANNELS: dict[str, Channel] = {"awgn": awgn, "rayleigh": rayleigh}


def apply_channel(x: torch.Tensor, channel: str, snr_db: SnrDb,
                  generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
    """CHANNELS[channel](x, snr_db, generator, **kwargs): y with x's shape [B, ..., 2k]."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {tuple(CHANNELS)}")
    return CHANNELS[channel](x, snr_db, generator, **kwargs)


def sample_snr(batch: int, snr_set_db: Sequence[float], generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    """SNR in dB per sample, drawn uniformly from `snr_set_db`: float32 tensor [batch].

    The draw uses `generator` (on its device); the result is moved to `device` if given.
    The paper trains with snr_set_db = (1, 4, 7, 10, 13).
    """
    values = [float(v) for v in snr_set_db]
    if not values:
        raise ValueError("snr_set_db is empty")
    if batch < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    gen_device = generator.device if generator is not None else "cpu"
    idx = torch.randint(len(values), (batch,), generator=generator, device=gen_device)
    table = torch.tensor(values, dtype=torch.float32, device=gen_device)
    out = table[idx]
    return out if device is None else out.to(device)


def bandwidth_symbols(image_shape: Sequence[int], ratio: float) -> int:
    """Complex channel symbols k for bandwidth ratio k/n, n = C*H*W: k = round(ratio * n).

    image_shape: (C, H, W). ValueError for ratio <= 0, a bad shape, or k rounding to 0.
    """
    if not ratio > 0:
        raise ValueError(f"bandwidth ratio must be > 0, got {ratio}")
    dims = tuple(image_shape)
    if len(dims) != 3 or any(int(d) != d or d <= 0 for d in dims):
        raise ValueError(f"image_shape must be (C, H, W) of positive ints, got {image_shape}")
    n = int(dims[0]) * int(dims[1]) * int(dims[2])
    k = round(ratio * n)
    if k < 1:
        raise ValueError(f"bandwidth ratio {ratio} gives 0 channel symbols for n = {n}")
    return k


def channel_capacity_bits(snr_db: SnrDb) -> float | torch.Tensor:
    """Shannon capacity log2(1 + 10^(SNR/10)) in bits per complex channel use.

    Float in -> float out, tensor in -> tensor out.
    """
    if isinstance(snr_db, torch.Tensor):
        snr = snr_db if snr_db.is_floating_point() else snr_db.double()
        return torch.log2(1.0 + torch.pow(10.0, snr / 10.0))
    return math.log2(1.0 + 10.0 ** (float(snr_db) / 10.0))
