"""Multi-user D-JSCC as a federation (seed 001 over Flower), without Flower: models, their
key layout in one global state, each client's local training role, and server-side evaluation.

Global state keys: the BS encoder under ENCODER ('encoder.…'); client i's decoder under
decoder_prefix(i) ('decoder.<i>.…'). A client receives the encoder and its own decoder and
returns what its role trains: ENCODER_ROLES train both, 'stage2' (anchor) only the decoder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from semfed.channels import CHANNELS
from semfed.config import SemfedConfig, default_run_config
from semfed.data.image_folder import HOLDOUT_LAYOUTS, center_crops, load_images, random_crops
from semfed.jscc.decoders import DECODERS, JSCCDecoder, build_decoder
from semfed.jscc.encoder import AttentionEncoder, latent_channels
from semfed.jscc.frameworks import (
    evaluate_decoder,
    train_decoder_against_anchor,
    train_iterative,
    train_simultaneous,
    train_stage1,
)
from semfed.seeds import decoder_init_seed

ENCODER = "encoder."
#: evaluate_decoders' columns that only generative decoders fill (NaN for the others).
GENERATIVE_COLUMNS = {"prior_kl": float("nan"), "prompts": float("nan")}
#: Role a client can be given -> its local round, (encoder, decoder, batches, *, generator, snr_set_db,
#: channel, lr) -> MSE per step. stage1: encoder + symmetric decoder; stage2: the decoder against the
#: frozen anchor encoder; iterative / simultaneous: encoder + this client's decoder on this client's
#: loss. With one decoder on the client the last three are the same local loop: the frameworks differ
#: in which clients the strategy trains and how the server combines their encoders (strategies/jscc_*.py).
ROLES: dict[str, Callable[..., list[float]]] = {
    "stage1": train_stage1,
    "stage2": train_decoder_against_anchor,
    "iterative": lambda encoder, decoder, batches, **common: train_iterative(
        encoder, [decoder], batches, steps_per_round=len(batches), **common),
    "simultaneous": lambda encoder, decoder, batches, **common: train_simultaneous(
        encoder, [decoder], batches, **common),
}
#: The roles that train (and return) the encoder as well as the decoder.
ENCODER_ROLES = ("stage1", "iterative", "simultaneous")


def decoder_prefix(partition_id: int) -> str:
    return f"decoder.{partition_id}."


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A module's state dict with every key prefixed (detached, on the CPU)."""
    return {prefix + key: value.detach().cpu() for key, value in state.items()}


def unprefixed(state: dict, prefix: str) -> dict:
    """The entries of state whose key starts with prefix, with the prefix removed."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def anchor_partition(cfg: SemfedConfig) -> int:
    """The client that runs the anchor's stage 1: the first whose decoder family is the encoder's
    symmetric decoder (DECODERS[family].symmetric), else client 0 (then stage 1 pairs the encoder
    with a non-symmetric decoder)."""
    return next((i for i, spec in enumerate(cfg.decoder_specs) if DECODERS[spec.family].symmetric), 0)


def build_encoder(cfg: SemfedConfig) -> AttentionEncoder:
    """The BS encoder, initialised from cfg.seed (identical on server and clients; global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return AttentionEncoder(cfg.jscc_bandwidth_ratio, width=cfg.jscc_encoder_width)


def build_user_decoder(cfg: SemfedConfig, partition_id: int) -> JSCCDecoder:
    """Client partition_id's decoder (its jscc-decoders item), initialised from cfg.seed and the id.
    A generative family (DECODERS[family].generative) also gets the SNR range of jscc-snr-set, which
    its prompt thresholds span, jscc-prompts (0: one per latent channel) and jscc-prior-kl-weight."""
    spec = cfg.decoder_specs[partition_id]
    options = {}
    if DECODERS[spec.family].generative:
        options = {"snr_range_db": (min(cfg.snr_set), max(cfg.snr_set)), "num_prompts": cfg.jscc_prompts or None,
                   "kl_weight": cfg.jscc_prior_kl_weight}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(decoder_init_seed(cfg.seed, partition_id))
        return build_decoder(spec.family, latent_channels=latent_channels(cfg.jscc_bandwidth_ratio),
                             **spec.sizes(cfg.jscc_encoder_width), **options)


def models_from_checkpoint(checkpoint: dict) -> tuple[SemfedConfig, AttentionEncoder, list[JSCCDecoder]]:
    """A D-JSCC run's config, encoder and per-client decoders (partition order) from its checkpoint
    (semfed.jscc.report.load_checkpoint), on the CPU."""
    cfg = SemfedConfig.from_run_config({**default_run_config(), **checkpoint["config"]})
    encoder = build_encoder(cfg)
    encoder.load_state_dict(checkpoint["encoder"])
    decoders = []
    for pid, state in sorted(checkpoint["decoders"].items()):
        decoders.append(build_user_decoder(cfg, pid))
        decoders[-1].load_state_dict(state)
    return cfg, encoder, decoders


def initial_state(cfg: SemfedConfig) -> dict[str, torch.Tensor]:
    """The global state before round 1: encoder + every client's decoder, prefixed."""
    state = prefixed(build_encoder(cfg).state_dict(), ENCODER)
    for pid in range(len(cfg.decoder_specs)):
        state.update(prefixed(build_user_decoder(cfg, pid).state_dict(), decoder_prefix(pid)))
    return state


def state_digest(state: dict[str, torch.Tensor | np.ndarray]) -> str:
    """SHA-256 (first 16 hex digits) over sorted keys and the arrays' bytes: equal iff bit-identical."""
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        digest.update(key.encode())
        digest.update(str(array.dtype).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def training_crops(cfg: SemfedConfig, images: list[np.ndarray], n: int, generator: torch.Generator) -> torch.Tensor:
    """n random S-px crops [n, 3, S, S] (CPU) that never touch a held-out pixel (jscc-holdout, laid out as
    jscc-holdout-layout says)."""
    if not cfg.jscc_holdout:
        return random_crops(images, n, cfg.jscc_crop_size, generator)
    layout = HOLDOUT_LAYOUTS[cfg.jscc_holdout_layout]
    return layout.training(images, cfg.jscc_holdout, n, cfg.jscc_crop_size, generator)


def training_batches(cfg: SemfedConfig, images: list[np.ndarray], generator: torch.Generator,
                     device: str) -> list[torch.Tensor]:
    """jscc-steps-per-round batches of jscc-batch-size training_crops [B, 3, S, S] on device."""
    crops = training_crops(cfg, images, cfg.jscc_steps_per_round * cfg.jscc_batch_size, generator)
    return [batch.to(device) for batch in crops.split(cfg.jscc_batch_size)]


def evaluation_crops(cfg: SemfedConfig, images: list[np.ndarray]) -> torch.Tensor:
    """The evaluation images [N, 3, S, S] (CPU): with jscc-holdout > 0 the held-out pixels (never trained on) cut
    into S-px tiles (jscc-holdout-layout: every tile of the bottom bands, or the held-out tiles themselves);
    else each image's centre crop."""
    if not cfg.jscc_holdout:
        return center_crops(images, cfg.jscc_crop_size)
    return HOLDOUT_LAYOUTS[cfg.jscc_holdout_layout].evaluation(images, cfg.jscc_holdout, cfg.jscc_crop_size)


def run_evaluation_crops(cfg: SemfedConfig) -> torch.Tensor:
    """evaluation_crops of the run's evaluation images: jscc-eval-images, else jscc-images, else the embedded default."""
    return evaluation_crops(cfg, load_images(cfg.jscc_eval_images or cfg.jscc_images or None))


def train_role(role: str, cfg: SemfedConfig, encoder: nn.Module, decoder: nn.Module,
               batches: Sequence[torch.Tensor], generator: torch.Generator) -> list[float]:
    """One client's local training in one round, ROLES[role] with cfg's SNR set, channel and
    learning rate; returns the MSE per step."""
    if role not in ROLES:
        raise ValueError(f"unknown D-JSCC role {role!r}; expected one of {tuple(ROLES)}")
    return ROLES[role](encoder, decoder, batches, generator=generator, snr_set_db=cfg.snr_set,
                       channel=cfg.jscc_channel, lr=cfg.jscc_learning_rate)


def evaluate_decoders(cfg: SemfedConfig, encoder: nn.Module, decoders: Sequence[nn.Module],
                      images: torch.Tensor) -> list[dict]:
    """PSNR and MS-SSIM of every decoder at every jscc-eval-snrs SNR on every registered channel (CHANNELS).

    images: [N, 3, S, S] evaluation crops on the models' device. Every (channel, SNR) draws its
    noise from a generator seeded by cfg.seed, the same for every decoder and round (a generative
    decoder draws its prior samples from it too).
    Returns rows {decoder, family, channel, snr, psnr, ms_ssim, prior_kl, prompts}: prior_kl and prompts
    (the generative decoders' moment-matching KL and prompts decoded, evaluate_decoder) NaN for the others.
    """
    rows = []
    for pid, decoder in enumerate(decoders):
        for channel in CHANNELS:
            for snr in cfg.eval_snrs:
                generator = torch.Generator(device=images.device).manual_seed(cfg.seed)
                scores = evaluate_decoder(encoder, decoder, images, snr, channel, generator)
                rows.append({"decoder": pid, "family": cfg.decoder_specs[pid].family, "channel": channel,
                             "snr": snr, **scores, **{k: v for k, v in GENERATIVE_COLUMNS.items() if k not in scores}})
    return rows
