"""Generative decoding of seed 002 (section IV-A): the received latent as L prompts, coarse to fine.

"Suppose that the latent variables can be decomposed into a set of L prompts ... the receiver can
decode more prompts as the channel condition improves." Here the BS encoder's latent map
[B, C, H/4, W/4] is split along its C channels into L prompts of C/L consecutive channels each
(prompt j = channels (j-1)C/L .. jC/L - 1). A receiver decodes a prefix of k prompts and fills the
other L - k from the prior, the channel symbols' marginal: N(0, PRIOR_VARIANCE) per real value,
since the encoder's symbols have unit power per complex symbol (1/2 per real component).

This module holds the pure parts, shared by the decoder family (semfed.jscc.decoders.PromptDecoder)
and the trainers: the prompt-count rule (prompt_thresholds_db, prompts_decoded), the random prefix
of training (random_prompts), the prefix-and-prior fill (keep_prefix) and the moment-matching KL
(prior_kl). All randomness comes from an explicit torch.Generator, drawn on the generator's device:
the same seed gives the same numbers on any device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: Variance per real value of the prior N(0, 1/2): the marginal of unit-power complex symbols.
PRIOR_VARIANCE = 0.5
#: Weight of the moment-matching KL added to a generative decoder's MSE in training (config key to come:
#: jscc-prior-kl-weight).
KL_WEIGHT = 1e-3
#: The SNR range (dB) the prompt thresholds span when no SNR set is given: the ends of the paper's set
#: (semfed.jscc.frameworks.PAPER_SNR_SET_DB; not imported, so the config check's import of the decoder
#: registry stays light).
DEFAULT_SNR_RANGE_DB = (1.0, 13.0)
#: Seed of the generator a generative decoder draws from when called without one (reproducible, never global).
FALLBACK_SEED = 0
#: An SNR within this many dB below a threshold counts as reaching it (float32 round-off).
THRESHOLD_TOLERANCE_DB = 1e-4


def capacity(snr_db: float) -> float:
    """AWGN capacity log2(1 + SNR) in bits per complex channel use, SNR in dB."""
    return math.log2(1.0 + 10.0 ** (snr_db / 10.0))


def snr_for_capacity(bits: float) -> float:
    """The SNR (dB) whose capacity is `bits` (> 0): 10 log10(2^bits - 1)."""
    return 10.0 * math.log10(2.0 ** bits - 1.0)


def check_prompts(latent_channels: int, num_prompts: int | None) -> int:
    """L: num_prompts (None = latent_channels, one prompt per channel); ValueError unless it divides C."""
    prompts = latent_channels if num_prompts is None else num_prompts
    if prompts < 1 or latent_channels % prompts:
        raise ValueError(f"num_prompts must be a positive divisor of the {latent_channels} latent channels, "
                         f"got {prompts}")
    return prompts


def prompt_thresholds_db(num_prompts: int, snr_range_db: Sequence[float] = DEFAULT_SNR_RANGE_DB) -> tuple[float, ...]:
    """The SNR (dB) prompt j = 1..L needs: thresholds evenly spaced in capacity log2(1 + SNR).

    With c_lo, c_hi the capacities of the lowest and highest SNR of snr_range_db (the training SNR
    set), prompt j needs capacity c_lo + (j - 1)(c_hi - c_lo)/(L - 1): prompt 1 the lowest training
    SNR, prompt L the highest. L = 1: the one prompt needs the lowest. E.g. L = 4 over 0..10 log10(15)
    dB (capacities 1..4 bits): thresholds 10 log10(2^j - 1) = 0, 4.77, 8.45, 11.76 dB.
    """
    if num_prompts < 1:
        raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
    low, high = min(snr_range_db), max(snr_range_db)
    if num_prompts == 1:
        return (float(low),)
    c_low, c_high = capacity(low), capacity(high)
    step = (c_high - c_low) / (num_prompts - 1)
    inner = tuple(snr_for_capacity(c_low + j * step) for j in range(1, num_prompts - 1))
    return (float(low), *inner, float(high))  # the ends exactly, not round-tripped through the capacity


def prompts_decoded(snr_db: float | torch.Tensor, thresholds_db: Sequence[float]) -> int | torch.Tensor:
    """k(SNR): how many prompts the receiver decodes, the number of thresholds the SNR reaches (within
    THRESHOLD_TOLERANCE_DB), at least 1 (below the lowest training SNR it still decodes prompt 1).

    snr_db float -> int; tensor [B] -> long tensor [B] on its device.
    """
    if isinstance(snr_db, torch.Tensor):
        limits = torch.as_tensor(thresholds_db, dtype=torch.float64, device=snr_db.device) - THRESHOLD_TOLERANCE_DB
        reached = (snr_db.to(torch.float64).reshape(-1, 1) >= limits).sum(dim=1)
        return reached.clamp(min=1)
    return max(1, sum(float(snr_db) >= t - THRESHOLD_TOLERANCE_DB for t in thresholds_db))


def fallback_generator() -> torch.Generator:
    """The generator a generative decoder uses when called without one: a CPU generator seeded FALLBACK_SEED."""
    return torch.Generator().manual_seed(FALLBACK_SEED)


def random_prompts(batch: int, num_prompts: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Training's prefix lengths: k ~ uniform on 1..L per image, long [batch] on device."""
    draw = torch.randint(1, num_prompts + 1, (batch,), generator=generator, device=generator.device)
    return draw.to(device)


def prior_samples(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Samples of the prior N(0, PRIOR_VARIANCE) with like's shape, dtype and device."""
    noise = torch.randn(like.shape, generator=generator, device=generator.device, dtype=like.dtype)
    return noise.to(like.device) * math.sqrt(PRIOR_VARIANCE)


def keep_prefix(latent: torch.Tensor, prompts: torch.Tensor, num_prompts: int,
                generator: torch.Generator) -> torch.Tensor:
    """latent [B, C, h, w] with image b's prompts after the first prompts[b] replaced by prior samples.

    One full-shape prior draw per call, whatever the prefix lengths, so a seed gives the same fill
    for every k (the kept prompts pass through unchanged, gradients included).
    """
    channels = latent.shape[1]
    prompt_of_channel = torch.arange(channels, device=latent.device) // (channels // num_prompts)
    keep = prompt_of_channel[None, :] < prompts.to(latent.device).reshape(-1, 1)
    return torch.where(keep[:, :, None, None], latent, prior_samples(latent, generator))


def prior_kl(latent: torch.Tensor) -> torch.Tensor:
    """Moment-matching KL of the latent's channels against the prior, averaged over channels (scalar).

    Per latent channel c, fit N(m_c, v_c) to its values over the batch and positions (v biased) and
    take KL(N(m_c, v_c) || N(0, s)) = (v_c/s + m_c^2/s - 1 - ln(v_c/s)) / 2, s = PRIOR_VARIANCE:
    0 iff the channel has mean 0 and variance 1/2, i.e. iff a prior sample looks like it to first and
    second order. latent: [B, C, h, w].
    """
    values = latent.transpose(0, 1).flatten(1)
    mean = values.mean(dim=1)
    ratio = values.var(dim=1, unbiased=False).clamp_min(1e-12) / PRIOR_VARIANCE
    return (0.5 * (ratio + mean.pow(2) / PRIOR_VARIANCE - 1.0 - ratio.log())).mean()
