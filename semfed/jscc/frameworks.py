"""Training frameworks of seed 001 as step functions over plain modules, and evaluation.

- train_stage1: the anchor's self-reflective stage, encoder + symmetric decoder jointly (IV-A);
- train_decoder_against_anchor: stage 2, one user's decoder against the frozen encoder (IV-B1);
- train_iterative / train_simultaneous: the two benchmarks of section V-B.

Images are float [B, 3, H, W] in [0, 1] (H, W multiples of 4); everything runs on the images'
device. Every step draws a fresh SNR per image from `snr_set_db` (semfed.channels.sample_snr)
and one channel realisation per user; all randomness comes from the explicit `generator`, so
the same seeds give the same models. The loss is the per-pixel MSE of each user's
reconstruction; every call builds its own Adam optimiser. Each trainer returns the mean loss
of the trained decoder(s) per step, as floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from semfed.channels import SnrDb, apply_channel, sample_snr
from semfed.jscc.image_metrics import ms_ssim, psnr

PAPER_SNR_SET_DB = (1.0, 4.0, 7.0, 10.0, 13.0)


def transmit(encoder: nn.Module, images: torch.Tensor, snr_db: SnrDb, channel: str,
             generator: torch.Generator | None, channel_options: dict | None = None) -> torch.Tensor:
    """Encode images [B, 3, H, W] at snr_db (float or [B] dB) and pass the channel: received [B, 2k]."""
    return apply_channel(encoder(images, snr_db), channel, snr_db, generator, **(channel_options or {}))


def _user_losses(encoder: nn.Module, decoders: Sequence[nn.Module], images: torch.Tensor, snr_db: SnrDb,
                 channel: str, generator: torch.Generator | None, channel_options: dict | None,
                 train_encoder: bool = True) -> list[torch.Tensor]:
    """One broadcast: encode once, then an independent channel realisation and MSE per decoder."""
    with nullcontext() if train_encoder else torch.no_grad():
        sent = encoder(images, snr_db)
    size = (images.shape[2], images.shape[3])
    return [F.mse_loss(decoder(apply_channel(sent, channel, snr_db, generator, **(channel_options or {})),
                               snr_db, image_size=size), images)
            for decoder in decoders]


def decoder_loss(encoder: nn.Module, decoder: nn.Module, images: torch.Tensor, snr_db: SnrDb, channel: str,
                 generator: torch.Generator | None, channel_options: dict | None = None) -> torch.Tensor:
    """Per-pixel MSE (scalar tensor) of decoder's reconstruction of images [B, 3, H, W] sent at
    snr_db (float or [B] dB) through the channel."""
    return _user_losses(encoder, [decoder], images, snr_db, channel, generator, channel_options)[0]


def _train(encoder: nn.Module, decoders: Sequence[nn.Module], batches: Iterable[torch.Tensor],
           active: Callable[[int], Sequence[int]], train_encoder: bool, *, generator: torch.Generator,
           snr_set_db: Sequence[float], channel: str, channel_options: dict | None, lr: float) -> list[float]:
    """The one inner loop: at step s, decoders[i] for i in active(s) each take a gradient step on
    their own loss; the encoder (if train_encoder) on the sum of those losses."""
    if not decoders:
        raise ValueError("need at least one decoder")
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    encoder.requires_grad_(train_encoder)
    encoder.train(train_encoder)
    for decoder in decoders:
        decoder.requires_grad_(True)
        decoder.train()
    params = [p for decoder in decoders for p in decoder.parameters()]
    params += list(encoder.parameters()) if train_encoder else []
    optimizer = torch.optim.Adam(params, lr=lr)
    history = []
    for step, images in enumerate(batches):
        users = [decoders[i] for i in active(step)]
        snr = sample_snr(images.shape[0], snr_set_db, generator, device=images.device)
        losses = _user_losses(encoder, users, images, snr, channel, generator, channel_options, train_encoder)
        optimizer.zero_grad(set_to_none=True)  # inactive decoders keep grad None: Adam skips them
        total = torch.stack(losses).sum()
        total.backward()
        optimizer.step()
        history.append(total.item() / len(users))
    return history


def train_stage1(encoder: nn.Module, symmetric_decoder: nn.Module, batches: Iterable[torch.Tensor], *,
                 generator: torch.Generator, snr_set_db: Sequence[float] = PAPER_SNR_SET_DB,
                 channel: str = "awgn", channel_options: dict | None = None, lr: float = 1e-4) -> list[float]:
    """Stage 1: encoder and its symmetric decoder (the paper's AttentionDecoder) trained jointly,
    one step per batch [B, 3, H, W]. Returns the MSE per step."""
    return _train(encoder, [symmetric_decoder], batches, lambda step: [0], True, generator=generator,
                  snr_set_db=snr_set_db, channel=channel, channel_options=channel_options, lr=lr)


def train_decoder_against_anchor(frozen_encoder: nn.Module, decoder: nn.Module, batches: Iterable[torch.Tensor],
                                 *, generator: torch.Generator, snr_set_db: Sequence[float] = PAPER_SNR_SET_DB,
                                 channel: str = "awgn", channel_options: dict | None = None,
                                 lr: float = 1e-4) -> list[float]:
    """Stage 2: one user's decoder trained against the anchor encoder, one step per batch.

    The encoder is frozen: requires_grad False (left so until a joint trainer takes it again),
    eval mode, forward under no_grad; its parameters stay bit-identical. Returns the MSE per step.
    """
    return _train(frozen_encoder, [decoder], batches, lambda step: [0], False, generator=generator,
                  snr_set_db=snr_set_db, channel=channel, channel_options=channel_options, lr=lr)


def train_iterative(encoder: nn.Module, decoders: Sequence[nn.Module], batches: Iterable[torch.Tensor], *,
                    steps_per_round: int, generator: torch.Generator,
                    snr_set_db: Sequence[float] = PAPER_SNR_SET_DB, channel: str = "awgn",
                    channel_options: dict | None = None, lr: float = 1e-4) -> list[float]:
    """Iterative benchmark: round r (steps_per_round consecutive batches; the paper: one epoch)
    trains the encoder jointly with decoders[r % len(decoders)] only, cycling in order.
    Returns the active decoder's MSE per step."""
    if steps_per_round < 1:
        raise ValueError(f"steps_per_round must be >= 1, got {steps_per_round}")
    return _train(encoder, decoders, batches, lambda step: [(step // steps_per_round) % len(decoders)], True,
                  generator=generator, snr_set_db=snr_set_db, channel=channel,
                  channel_options=channel_options, lr=lr)


def train_simultaneous(encoder: nn.Module, decoders: Sequence[nn.Module], batches: Iterable[torch.Tensor], *,
                       generator: torch.Generator, snr_set_db: Sequence[float] = PAPER_SNR_SET_DB,
                       channel: str = "awgn", channel_options: dict | None = None,
                       lr: float = 1e-4) -> list[float]:
    """Simultaneous benchmark: every step, each decoder learns from its own loss and the encoder
    from the sum of all users' losses. Returns the mean MSE over users per step."""
    everyone = list(range(len(decoders)))
    return _train(encoder, decoders, batches, lambda step: everyone, True, generator=generator,
                  snr_set_db=snr_set_db, channel=channel, channel_options=channel_options, lr=lr)


@torch.no_grad()
def evaluate_decoder(encoder: nn.Module, decoder: nn.Module, images: torch.Tensor, snr_db: float, channel: str,
                     generator: torch.Generator | None, channel_options: dict | None = None,
                     batch_size: int = 32) -> dict[str, float]:
    """Mean PSNR (dB) and MS-SSIM over images [N, 3, H, W] (H, W > 32) received at snr_db dB.

    Puts both modules in eval mode. Returns {"psnr": float, "ms_ssim": float}.
    """
    encoder.eval()
    decoder.eval()
    size = (images.shape[2], images.shape[3])
    scores = {"psnr": [], "ms_ssim": []}
    for chunk in images.split(batch_size):
        received = transmit(encoder, chunk, snr_db, channel, generator, channel_options)
        restored = decoder(received, snr_db, image_size=size)
        scores["psnr"].append(psnr(restored, chunk))
        scores["ms_ssim"].append(ms_ssim(restored, chunk))
    return {name: torch.cat(values).mean().item() for name, values in scores.items()}
