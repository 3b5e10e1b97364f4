"""Training frameworks of seed 001 as step functions over plain modules, and evaluation.

- train_stage1: the anchor's self-reflective stage, encoder + symmetric decoder jointly (IV-A);
- train_decoder_against_anchor: stage 2, one user's decoder against the frozen encoder (IV-B1);
- train_iterative / train_simultaneous: the two benchmarks of section V-B.

Images are float [B, 3, H, W] in [0, 1] (H, W multiples of 4); everything runs on the images'
device. Every step draws a fresh SNR per image from `snr_set_db` (semfed.channels.sample_snr)
and one channel realisation per user; all randomness comes from the explicit `generator`, so
the same seeds give the same models. The loss is the per-pixel MSE of each user's
reconstruction; a generative decoder (JSCCDecoder.generative: seed 002's PromptDecoder) draws its
prior samples from that generator too and adds kl_weight * prior_kl of the sent latent
(user_loss, the one hook; every other decoder's loss is the plain MSE, bit for bit). Every call
builds its own Adam optimiser. Each trainer returns the mean loss of the trained decoder(s) per
step, as floats.
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


def _generative(decoder: nn.Module) -> bool:
    return getattr(decoder, "generative", False)


def reconstruct(decoder: nn.Module, received: torch.Tensor, snr_db: SnrDb, image_size: tuple[int, int],
                generator: torch.Generator | None) -> torch.Tensor:
    """decoder(received, snr_db, image_size=...); a generative decoder also gets the generator (its prior samples)."""
    if _generative(decoder):
        return decoder(received, snr_db, image_size=image_size, generator=generator)
    return decoder(received, snr_db, image_size=image_size)


def user_loss(decoder: nn.Module, sent: torch.Tensor, received: torch.Tensor, snr_db: SnrDb, images: torch.Tensor,
              generator: torch.Generator | None) -> torch.Tensor:
    """One user's training loss (scalar): the per-pixel MSE of its reconstruction of images from received;
    for a generative decoder plus decoder.kl_weight * decoder.prior_kl(sent) (the moment-matching KL of
    the sent latent against the prior, semfed.jscc.generative.prior_kl)."""
    size = (images.shape[2], images.shape[3])
    loss = F.mse_loss(reconstruct(decoder, received, snr_db, size, generator), images)
    if _generative(decoder):
        loss = loss + decoder.kl_weight * decoder.prior_kl(sent, size)
    return loss


def _user_losses(encoder: nn.Module, decoders: Sequence[nn.Module], images: torch.Tensor, snr_db: SnrDb,
                 channel: str, generator: torch.Generator | None, channel_options: dict | None,
                 train_encoder: bool = True) -> list[torch.Tensor]:
    """One broadcast: encode once, then an independent channel realisation and user_loss per decoder."""
    with nullcontext() if train_encoder else torch.no_grad():
        sent = encoder(images, snr_db)
    return [user_loss(decoder, sent, apply_channel(sent, channel, snr_db, generator, **(channel_options or {})),
                      snr_db, images, generator)
            for decoder in decoders]


def decoder_loss(encoder: nn.Module, decoder: nn.Module, images: torch.Tensor, snr_db: SnrDb, channel: str,
                 generator: torch.Generator | None, channel_options: dict | None = None) -> torch.Tensor:
    """Per-pixel MSE (scalar tensor) of decoder's reconstruction of images [B, 3, H, W] sent at
    snr_db (float or [B] dB) through the channel (a generative decoder: user_loss, MSE + weighted KL)."""
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

    Puts both modules in eval mode. Returns {"psnr": float, "ms_ssim": float}; for a generative
    decoder also "prior_kl" (its moment-matching KL over all N images' sent latents at snr_db) and
    "prompts" (the prompts it decodes at snr_db), its prior samples drawn from `generator` after each
    chunk's channel noise.
    """
    encoder.eval()
    decoder.eval()
    size = (images.shape[2], images.shape[3])
    scores, sent_all = {"psnr": [], "ms_ssim": []}, []
    for chunk in images.split(batch_size):
        sent = encoder(chunk, snr_db)
        received = apply_channel(sent, channel, snr_db, generator, **(channel_options or {}))  # = transmit
        restored = reconstruct(decoder, received, snr_db, size, generator)
        scores["psnr"].append(psnr(restored, chunk))
        scores["ms_ssim"].append(ms_ssim(restored, chunk))
        if _generative(decoder):
            sent_all.append(sent)
    means = {name: torch.cat(values).mean().item() for name, values in scores.items()}
    if _generative(decoder):
        means.update(prior_kl=decoder.prior_kl(torch.cat(sent_all), size).item(), prompts=decoder.prompts_at(snr_db))
    return means
