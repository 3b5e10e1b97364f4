"""D-JSCC models of seed 001: the BS's attention encoder, the user decoder families (the registry
DECODERS: name -> JSCCDecoder subclass, semfed.jscc.decoders; seed 002's generative PromptDecoder,
semfed.jscc.generative), image metrics."""

from semfed.jscc.decoders import (
    DECODERS,
    AttentionDecoder,
    ConvDecoder,
    JSCCDecoder,
    PromptDecoder,
    ResNetDecoder,
    VGGDecoder,
    build_decoder,
    symmetric_family,
)
from semfed.jscc.encoder import DOWNSAMPLE, AttentionEncoder, latent_channels, symbols_to_latent
from semfed.jscc.image_metrics import ms_ssim, msssim_scales, psnr

__all__ = [
    "DECODERS", "DOWNSAMPLE", "AttentionDecoder", "AttentionEncoder", "ConvDecoder", "JSCCDecoder",
    "PromptDecoder", "ResNetDecoder", "VGGDecoder", "build_decoder", "latent_channels", "ms_ssim", "msssim_scales",
    "psnr", "symbols_to_latent", "symmetric_family",
]
