"""D-JSCC training throughput: training images per second of the BS encoder with each registered user decoder
family (semfed.jscc.decoders.DECODERS), side by side in one run.

A repeat is one client's local round as the federation runs it: semfed.jscc.federation.train_role over
jscc-steps-per-round (25) batches of jscc-batch-size (16) random jscc-crop-size (64 px) crops
(federation.training_batches), each step a forward through the encoder, the AWGN channel at a per-image SNR
drawn from jscc-snr-set, the decoder, the loss (per-pixel MSE; the generative prompt decoder adds its weighted
prior KL: frameworks.user_loss), backward and the Adam step (Adam built fresh each round, as in a run). Two
roles:

encoder + decoder: role "simultaneous" (with one decoder on the client, stage 1, iterative and
    simultaneous are the same local loop: federation.ROLES), both models trained;
decoder only: role "stage2", the anchor framework's stage 2 (the default framework's later rounds), the
    decoder against the frozen encoder (encoder forward under no_grad).

Models as federation.build_encoder / build_user_decoder build them from the default D-JSCC config
(task=jscc; jscc-decoders set to every registered family, each at its default size: width
jscc-encoder-width = 32, the family's default blocks). Synthetic images: uniform-noise uint8 "photos"
(256 x 256), cropped by the library's own random_crops; the cost of these models does not depend on the
pixel values. images/s = steps x batch / seconds of the round; median of --repeats rounds after a 2-step
warm-up of each model, the families' rounds interleaved so that a busy machine slows all alike.

    .venv/bin/python -m benchmarks.jscc_throughput [--repeats 3] [--steps 25] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from semfed.config import load_config
from semfed.jscc.decoders import DECODERS
from semfed.jscc.federation import build_encoder, build_user_decoder, train_role, training_batches

ROLES = {"simultaneous": "encoder + decoder", "stage2": "decoder only (frozen encoder)"}
PHOTO_SIDE = 256  # synthetic source images: PHOTO_SIDE x PHOTO_SIDE x 3 uint8
PHOTOS = 8
WARM_UP_STEPS = 2


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="steps per round (default: jscc-steps-per-round)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = {} if args.steps is None else {"jscc_steps_per_round": args.steps}
    cfg = load_config(task="jscc", jscc_decoders=";".join(DECODERS), **steps)
    load, start = os.getloadavg()[0], time.perf_counter()
    photos = [np.random.default_rng(i).integers(0, 256, (PHOTO_SIDE, PHOTO_SIDE, 3), dtype=np.uint8)
              for i in range(PHOTOS)]
    generator = torch.Generator().manual_seed(cfg.seed)
    batches = training_batches(cfg, photos, generator, "cpu")
    models = {}  # (family, role) -> (encoder, decoder): a fresh pair each, as every client builds its own
    for pid, spec in enumerate(cfg.decoder_specs):
        for role in ROLES:
            models[spec.family, role] = build_encoder(cfg), build_user_decoder(cfg, pid)
            train_role(role, cfg, *models[spec.family, role], batches[:WARM_UP_STEPS], generator)
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in models}
    for _ in range(args.repeats):
        for (family, role), (encoder, decoder) in models.items():
            began = time.perf_counter()
            train_role(role, cfg, encoder, decoder, batches, generator)
            seconds[family, role].append(time.perf_counter() - began)
    images = len(batches) * cfg.jscc_batch_size
    encoder_parameters = parameters(build_encoder(cfg))
    print(f"| decoder family ({cfg.jscc_crop_size} px crops, batch {cfg.jscc_batch_size}, {torch.get_num_threads()} "
          f"threads; median of {args.repeats} rounds of {len(batches)} steps) | decoder parameters | "
          + " | ".join(f"images/s, {label}" for label in ROLES.values()) + " |")
    print("|---|---|" + "---|" * len(ROLES))
    for spec in cfg.decoder_specs:
        decoder = models[spec.family, next(iter(ROLES))][1]
        print(f"| {spec.family}{' (generative)' if decoder.generative else ''} | {parameters(decoder):,} | "
              + " | ".join(f"{images / statistics.median(seconds[spec.family, role]):.0f}" for role in ROLES) + " |")
    print(f"\nBS encoder: {encoder_parameters:,} parameters (width {cfg.jscc_encoder_width}, "
          f"bandwidth ratio {cfg.jscc_bandwidth_ratio:.4f}). Load average before the run: {load:.2f}, after: "
          f"{os.getloadavg()[0]:.2f}; {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
