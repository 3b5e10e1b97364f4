"""Seed 001's catastrophic-forgetting experiment (Fig. 5) on plain modules.

Stage 0 trains the encoder jointly with the target user's decoder A (the paper's "targeted").
Stage k = 1, 2, 3, ... then trains with the k-th other user's decoder, under each framework whose
encoder trains with one user at a time (FRAMEWORKS[name].users_in_turn: anchor and iterative):
- two-stage (anchor): only that user's decoder, against the frozen encoder (stage 2);
- otherwise (iterative): encoder and that user's decoder jointly (the encoder moves away from A).
After every stage, A (never retrained after stage 0) is evaluated against the current encoder,
so under the anchor framework A's scores are bit-identical across stages.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from semfed.jscc.framework_registry import FRAMEWORKS
from semfed.jscc.frameworks import (
    PAPER_SNR_SET_DB,
    evaluate_decoder,
    train_decoder_against_anchor,
    train_iterative,
    train_stage1,
)


def forgetting_curve(encoder: nn.Module, target: nn.Module, others: Sequence[tuple[str, nn.Module]],
                     stage_batches: Sequence[Sequence[torch.Tensor]], eval_images: torch.Tensor, *,
                     eval_snrs: Sequence[float], channel: str = "awgn", seed: int = 0,
                     snr_set_db: Sequence[float] = PAPER_SNR_SET_DB, lr: float = 1e-3,
                     frameworks: Sequence[str] | None = None) -> pd.DataFrame:
    """Target decoder A's quality after the encoder served 0, 1, ..., len(others) other users.

    encoder, target: trained in place in stage 0 (shared by every framework); others: (name,
    decoder) per later stage, copied afresh for each framework. stage_batches: len(others) + 1
    lists of image batches [B, 3, H, W] in [0, 1], one list per stage (an empty stage 0 keeps the
    given encoder and target as they are). eval_images: [N, 3, S, S]. frameworks: names from FRAMEWORKS whose users train in turn (None = all of those).
    Training draws from a generator seeded by seed + stage; evaluation noise at each SNR
    from one seeded by `seed`, the same at every stage. Returns one row per (framework, stage, SNR):
    framework, stage, trained_with (the decoder that stage trained), snr, psnr (dB), ms_ssim.
    """
    if len(stage_batches) != len(others) + 1:
        raise ValueError(f"need {len(others) + 1} lists of stage batches (stage 0 + one per other user), "
                         f"got {len(stage_batches)}")
    in_turn = tuple(name for name, framework in FRAMEWORKS.items() if framework.users_in_turn)
    frameworks = in_turn if frameworks is None else frameworks
    unknown = set(frameworks) - set(in_turn)
    if unknown:
        raise ValueError(f"unknown framework(s) {sorted(unknown)}, or ones whose users do not train in turn; "
                         f"expected some of {in_turn}")
    common = dict(snr_set_db=snr_set_db, channel=channel, lr=lr)

    def scores(framework: str, stage: int, name: str, enc: nn.Module) -> list[dict]:
        return [{"framework": framework, "stage": stage, "trained_with": name, "snr": snr,
                 **evaluate_decoder(enc, target, eval_images, snr, channel,
                                    torch.Generator(device=eval_images.device).manual_seed(seed))}
                for snr in eval_snrs]

    def generator(stage: int) -> torch.Generator:
        return torch.Generator(device=eval_images.device).manual_seed(seed + stage)

    train_stage1(encoder, target, stage_batches[0], generator=generator(0), **common)
    rows = []
    for framework in frameworks:
        enc = copy.deepcopy(encoder)
        rows += scores(framework, 0, "target", enc)
        for stage, ((name, other), batches) in enumerate(zip(others, stage_batches[1:]), start=1):
            other = copy.deepcopy(other)
            if FRAMEWORKS[framework].two_stage:
                train_decoder_against_anchor(enc, other, batches, generator=generator(stage), **common)
            else:
                train_iterative(enc, [other], batches, steps_per_round=len(batches), generator=generator(stage),
                                **common)
            rows += scores(framework, stage, name, enc)
    return pd.DataFrame(rows)
