"""The four user D-JSCC decoder families of seed 001 (section IV-B2) and their registry.

Every decoder maps received symbols (real pairs [B, 2k] with image_size=(H, W), or the
latent map [B, C, H/4, W/4]) and the SNR in dB to images [B, 3, H, W] in [0, 1] (sigmoid
output). `width` (channels) and `num_blocks` (depth) set a device's strength inside a family.

DECODERS is the registry: family name -> JSCCDecoder subclass. The class is the entry: it says
its fewest blocks (`min_blocks`, checked by JSCCDecoder.__init__), whether it is the BS
encoder's symmetric decoder (`symmetric`, the one the anchor's stage 1 trains with) and whether it
is generative (`generative`: seed 002's prompt decoder, PromptDecoder). Its keys are the families
jscc-decoders accepts; a new family is one subclass and one entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from semfed.config_values import DecoderSpec
from semfed.jscc.blocks import SnrDb, SNRAttention, SNRConditioned, SNRFusion, TConvGDNPReLU, snr_column, tconv
from semfed.jscc.encoder import IMAGE_CHANNELS, symbols_to_latent
from semfed.jscc.generative import (
    DEFAULT_SNR_RANGE_DB,
    KL_WEIGHT,
    check_prompts,
    fallback_generator,
    keep_prefix,
    prior_kl,
    prompt_thresholds_db,
    prompts_decoded,
    random_prompts,
)


def _check_min(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _strides(num_blocks: int) -> list[int]:
    """Stride per block for num_blocks blocks that upsample x4 in total: refine first, then x2, x2."""
    return [1] * (num_blocks - 2) + [2, 2]


class JSCCDecoder(nn.Module):
    """Base class: shape handling and SNR; a family implements decode(latent, snr [B, 1]) and sets
    min_blocks (the fewest num_blocks it builds with) and, for the encoder's mirror, symmetric.

    generative: the family samples (PromptDecoder): its forward also takes generator= (the trainers and
    evaluate_decoder pass theirs), it has prior_kl(sent, image_size) and kl_weight (the trainers add
    kl_weight * prior_kl to its MSE) and prompts_at(snr_db), and build_user_decoder gives it the run's
    SNR range (snr_range_db=)."""

    min_blocks: ClassVar[int]
    symmetric: ClassVar[bool] = False
    generative: ClassVar[bool] = False

    def __init__(self, latent_channels: int, num_blocks: int):
        super().__init__()
        _check_min("latent_channels", latent_channels, 1)
        _check_min("num_blocks", num_blocks, self.min_blocks)
        self.latent_channels = latent_channels

    def forward(self, y: torch.Tensor, snr_db: SnrDb, image_size: tuple[int, int] | None = None) -> torch.Tensor:
        """y: [B, 2k] real pairs (image_size=(H, W) required) or latent [B, C, H/4, W/4];
        snr_db: float or [B] dB. Returns images [B, 3, H, W] in [0, 1]."""
        y = self.latent(y, image_size)
        return self.decode(y, snr_column(snr_db, y.shape[0], y))

    def latent(self, y: torch.Tensor, image_size: tuple[int, int] | None = None) -> torch.Tensor:
        """forward's input as the latent map [B, C, H/4, W/4] (ValueError if its shape does not fit)."""
        if image_size is not None:
            return symbols_to_latent(y.flatten(1), self.latent_channels, image_size)
        if y.dim() != 4 or y.shape[1] != self.latent_channels:
            raise ValueError(f"expected a latent map [B, {self.latent_channels}, h, w], or symbols [B, 2k] "
                             f"with image_size=(H, W); got shape {tuple(y.shape)}")
        return y

    def decode(self, latent: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _SNRChain(JSCCDecoder):
    """Decoder = SNR-conditioned blocks in sequence, then an output head (ends in a sigmoid)."""

    blocks: nn.ModuleList
    head: nn.Module

    def decode(self, latent: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        h = latent
        for block in self.blocks:
            h = block(h, snr)
        return self.head(h)


class AttentionDecoder(_SNRChain):
    """Mirror of AttentionEncoder: TConv + IGDN + PReLU + SNR attention blocks, sigmoid output.

    Block 1 maps C -> width (mirror of the projection), then num_blocks - 2 stride-1 blocks,
    one stride-2 block, and a stride-2 TConv to RGB (mirror of the first encoder block).
    """

    min_blocks = 2
    symmetric = True

    def __init__(self, latent_channels: int, width: int = 64, num_blocks: int = 4, kernel_size: int = 5):
        super().__init__(latent_channels, num_blocks)
        strides = [1] * (num_blocks - 1) + [2]
        self.blocks = nn.ModuleList(
            SNRConditioned(TConvGDNPReLU(latent_channels if i == 0 else width, width, kernel_size, s, inverse=True),
                           SNRAttention(width))
            for i, s in enumerate(strides)
        )
        self.head = nn.Sequential(tconv(width, IMAGE_CHANNELS, kernel_size, 2), nn.Sigmoid())


class ConvDecoder(_SNRChain):
    """num_blocks (>= 2) blocks of TConv + GDN + PReLU, each scaled by an FC of the SNR; sigmoid output."""

    min_blocks = 2

    def __init__(self, latent_channels: int, width: int = 64, num_blocks: int = 3, kernel_size: int = 5):
        super().__init__(latent_channels, num_blocks)
        self.blocks = nn.ModuleList(
            SNRConditioned(TConvGDNPReLU(latent_channels if i == 0 else width, width, kernel_size, s, inverse=False),
                           SNRFusion(width))
            for i, s in enumerate(_strides(num_blocks))
        )
        self.head = nn.Sequential(tconv(width, IMAGE_CHANNELS, kernel_size), nn.Sigmoid())


def _tconv_bn_prelu(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    return nn.Sequential(tconv(in_channels, out_channels, kernel_size, stride),
                         nn.BatchNorm2d(out_channels), nn.PReLU(out_channels))


class ResidualBlock(nn.Module):
    """PReLU(x + BN(Conv(PReLU(BN(TConv(x)))))) (paper eqs. 18-20): [B, C, H, W] -> same shape."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            _tconv_bn_prelu(channels, channels, kernel_size, 1),
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm2d(channels),
        )
        self.out = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.body(x))


class ResNetDecoder(_SNRChain):
    """Stem TConv (C -> width), num_blocks residual blocks (paper: 5) at latent resolution, then
    two stride-2 TConv + BN + PReLU upsampling blocks; SNR fused by FC after every block."""

    min_blocks = 1

    def __init__(self, latent_channels: int, width: int = 64, num_blocks: int = 5, kernel_size: int = 3):
        super().__init__(latent_channels, num_blocks)
        residual = [ResidualBlock(width, kernel_size) for _ in range(num_blocks)]
        upsample = [_tconv_bn_prelu(width, width, kernel_size, 2) for _ in range(2)]
        stem = _tconv_bn_prelu(latent_channels, width, kernel_size, 1)
        self.blocks = nn.ModuleList(SNRConditioned(b, SNRFusion(width)) for b in [stem, *residual, *upsample])
        self.head = nn.Sequential(nn.Conv2d(width, IMAGE_CHANNELS, kernel_size, padding=kernel_size // 2), nn.Sigmoid())


class VGGBlock(nn.Sequential):
    """TConv(stride) -> TConv -> 3x3 average pool (stride 1) -> PReLU: [B, C_in, H, W] -> [B, C_out, H*s, W*s]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(
            tconv(in_channels, out_channels, kernel_size, stride),
            tconv(out_channels, out_channels, kernel_size),
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            nn.PReLU(out_channels),
        )


class VGGDecoder(_SNRChain):
    """num_blocks (>= 2) VGG blocks (double TConv + avg-pool + PReLU), SNR fused by FC after each,
    then a TConv to RGB and a sigmoid."""

    min_blocks = 2

    def __init__(self, latent_channels: int, width: int = 64, num_blocks: int = 3, kernel_size: int = 3):
        super().__init__(latent_channels, num_blocks)
        self.blocks = nn.ModuleList(
            SNRConditioned(VGGBlock(latent_channels if i == 0 else width, width, kernel_size, s), SNRFusion(width))
            for i, s in enumerate(_strides(num_blocks))
        )
        self.head = nn.Sequential(tconv(width, IMAGE_CHANNELS, kernel_size), nn.Sigmoid())


class PromptDecoder(JSCCDecoder):
    """Seed 002's generative decoder (section IV-A): the received latent as L prompts, coarse to fine.

    The latent's C channels are L = num_prompts prompts of C/L consecutive channels (None: L = C, one
    channel each; semfed.jscc.generative). A prefix of k prompts is kept, the other L - k are replaced
    by samples of the prior N(0, 1/2), and the body, an AttentionDecoder (the encoder's mirror, so the
    comparison with the deterministic families is like for like) over C + 1 input channels, decodes
    the filled latent with one more constant plane k/L (it tells the body how many prompts are real).
    k per image: in train mode uniform on 1..L (nested dropout: earlier prompts are kept more often,
    so training orders the latent coarse to fine); in eval mode k(SNR) = prompts_decoded(SNR,
    thresholds_db), thresholds evenly spaced in capacity over snr_range_db (the training SNR set);
    forward's prompts= (int or [B]) overrides both. All draws come from forward's generator (None: a
    generator seeded FALLBACK_SEED per call, never the global RNG). Any prefix decodes.
    """

    min_blocks = 2
    generative = True

    def __init__(self, latent_channels: int, width: int = 64, num_blocks: int = 4, kernel_size: int = 5,
                 num_prompts: int | None = None, snr_range_db: Sequence[float] = DEFAULT_SNR_RANGE_DB,
                 kl_weight: float = KL_WEIGHT):
        super().__init__(latent_channels, num_blocks)
        self.num_prompts = check_prompts(latent_channels, num_prompts)
        self.thresholds_db = prompt_thresholds_db(self.num_prompts, snr_range_db)
        self.kl_weight = kl_weight
        self.body = AttentionDecoder(latent_channels + 1, width, num_blocks, kernel_size)

    def prompts_at(self, snr_db: float | torch.Tensor) -> int | torch.Tensor:
        """k(SNR) of eval mode: int for a float SNR (dB), long [B] for a tensor [B]."""
        return prompts_decoded(snr_db, self.thresholds_db)

    def forward(self, y: torch.Tensor, snr_db: SnrDb, image_size: tuple[int, int] | None = None, *,
                generator: torch.Generator | None = None, prompts: int | torch.Tensor | None = None) -> torch.Tensor:
        """JSCCDecoder.forward with the prefix: generator for the prior fill (and training's k),
        prompts (int or [B] in 1..L) to decode that prefix instead of the mode's rule."""
        latent = self.latent(y, image_size)
        snr = snr_column(snr_db, latent.shape[0], latent)
        generator = generator if generator is not None else fallback_generator()
        batch = latent.shape[0]
        if prompts is not None:
            k = torch.as_tensor(prompts, device=latent.device).reshape(-1)
            k = k.expand(batch) if k.numel() == 1 else k
            if k.shape != (batch,) or k.is_floating_point() or k.min() < 1 or k.max() > self.num_prompts:
                raise ValueError(f"prompts must be an int or a [B] = [{batch}] tensor in 1..{self.num_prompts}, "
                                 f"got {prompts!r}")
        elif self.training:
            k = random_prompts(batch, self.num_prompts, generator, latent.device)
        else:
            k = self.prompts_at(snr[:, 0])
        filled = keep_prefix(latent, k, self.num_prompts, generator)
        share = (k.to(latent.dtype) / self.num_prompts).reshape(batch, 1, 1, 1)
        plane = share.expand(batch, 1, latent.shape[2], latent.shape[3])
        return self.body.decode(torch.cat([filled, plane], dim=1), snr)

    def decode(self, latent: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        """The mode's prefix of latent [B, C, h, w] at snr [B, 1] dB, fills from the fallback generator."""
        return self.forward(latent, snr[:, 0])

    def prior_kl(self, sent: torch.Tensor, image_size: tuple[int, int] | None = None) -> torch.Tensor:
        """semfed.jscc.generative.prior_kl of the sent symbols [B, 2k] (image_size) or latent map (scalar)."""
        return prior_kl(self.latent(sent, image_size))


#: Decoder families by name (the jscc-decoders key's family names).
DECODERS: dict[str, type[JSCCDecoder]] = {
    "attention": AttentionDecoder,
    "conv": ConvDecoder,
    "resnet": ResNetDecoder,
    "vgg": VGGDecoder,
    "prompt": PromptDecoder,
}


def build_decoder(name: str, **sizes) -> JSCCDecoder:
    """DECODERS[name](**sizes), e.g. build_decoder("conv", latent_channels=16, width=32, num_blocks=2)."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder family {name!r}; expected one of {sorted(DECODERS)}")
    return DECODERS[name](**sizes)


def check_decoder_specs(specs: Sequence[DecoderSpec]) -> None:
    """ValueError naming jscc-decoders unless every spec's family is registered and has at least its
    family's min_blocks blocks."""
    for spec in specs:
        if spec.family not in DECODERS:
            raise ValueError(f"jscc-decoders: bad decoder {spec.family!r}; expected one of the families {tuple(DECODERS)}")
        minimum = DECODERS[spec.family].min_blocks
        if spec.num_blocks is not None and spec.num_blocks < minimum:
            raise ValueError(f"jscc-decoders: a {spec.family} decoder needs >= {minimum} blocks, got {spec.num_blocks}")


def symmetric_family() -> str:
    """The name of the first registered family that mirrors the BS encoder (its symmetric decoder)."""
    for name, family in DECODERS.items():
        if family.symmetric:
            return name
    raise ValueError(f"no registered decoder family is symmetric; families: {tuple(DECODERS)}")
