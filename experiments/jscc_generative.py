"""Seed 002's generative prompt decoder beside the deterministic attention decoder: one BS encoder
trained with both (semfed.jscc.frameworks), then PSNR / MS-SSIM against SNR and against the number of
prompts decoded (semfed.jscc.generative).

    .venv/bin/python -m experiments.jscc_generative [--out DIR] [--framework simultaneous]
        [--steps 300] [--crop 48] [--batch 8] [--width 16] [--ratio 0.0833333333] [--lr 1e-3] [--kl-weight 1e-3]
        [--snr-set 1,4,7,10,13] [--snrs -2,1,4,7,10,13,16] [--eval-crop 96] [--images FOLDER] [--seed 0]
        [--threads 1]
    .venv/bin/python -m experiments.jscc_generative --run-dir RUN_DIR [--snrs -2,1,4,7,10,13,16] [--out DIR]

--framework: simultaneous (every step, both decoders; the encoder on the sum of their losses) or
iterative (the encoder with one decoder at a time, --steps / 10 steps per turn). Training: --steps
random --crop px crops of the images (--batch a step) at SNRs drawn from --snr-set over AWGN; the
prompt decoder's prompt thresholds span --snr-set. Evaluation on the centre --eval-crop px crops
(default: the 14 embedded images), AWGN, noise and prior fills from generators seeded by --seed:
- snr.csv: method, snr, psnr, ms_ssim, prior_kl, prompts for the attention decoder, the prompt
  decoder by its rule k(SNR) ('prompt (rule)') and the same prompt decoder given all L prompts at
  every SNR ('prompt (all L)');
- prefix.csv: the prompt decoder's psnr and ms_ssim for every prefix k = 1..L at each --snrs SNR.
With --run-dir the models are a D-JSCC run's checkpoint (e.g. a run with jscc-decoders='attention;prompt'
trained to its plateau) as they are, scored on the run's evaluation crops (its held-out tiles) over its
channel; the first deterministic and the first generative decoder are read (the training options are ignored).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from semfed.data.image_folder import center_crops, load_images, random_crops
from semfed.jscc import DECODERS, AttentionEncoder, build_decoder, latent_channels, ms_ssim, psnr
from semfed.jscc.federation import models_from_checkpoint, run_evaluation_crops
from semfed.jscc.frameworks import evaluate_decoder, train_iterative, train_simultaneous, transmit
from semfed.jscc.generative import KL_WEIGHT
from semfed.jscc.report import load_checkpoint


#: --framework -> trainer(encoder, decoders, batches, steps=, **common); iterative: 10 turns.
TRAINERS = {
    "simultaneous": lambda encoder, decoders, batches, steps, **common: train_simultaneous(
        encoder, decoders, batches, **common),
    "iterative": lambda encoder, decoders, batches, steps, **common: train_iterative(
        encoder, decoders, batches, steps_per_round=max(1, steps // 10), **common),
}


def parse_snrs(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def train(images: list, args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, torch.nn.Module], float]:
    """Encoder + {attention, prompt} decoders of width --width trained by --framework; returns them and seconds."""
    channels = latent_channels(args.ratio)
    torch.manual_seed(args.seed)
    encoder = AttentionEncoder(args.ratio, width=args.width)
    decoders = {"attention": build_decoder("attention", latent_channels=channels, width=args.width),
                "prompt": build_decoder("prompt", latent_channels=channels, width=args.width,
                                        snr_range_db=(min(args.snr_set), max(args.snr_set)),
                                        kl_weight=args.kl_weight)}
    generator = torch.Generator().manual_seed(args.seed)
    batches = random_crops(images, args.steps * args.batch, args.crop, generator).split(args.batch)
    common = dict(generator=generator, snr_set_db=args.snr_set, channel="awgn", lr=args.lr)
    start = time.perf_counter()
    TRAINERS[args.framework](encoder, list(decoders.values()), batches, steps=args.steps, **common)
    return encoder, decoders, time.perf_counter() - start


def from_run(run_dir: Path) -> tuple[torch.nn.Module, dict[str, torch.nn.Module], torch.Tensor, str]:
    """A D-JSCC run's encoder, {"attention": its first deterministic decoder, "prompt": its first generative
    one}, its evaluation crops [N, 3, S, S] and its channel, from its checkpoint."""
    cfg, encoder, decoders = models_from_checkpoint(load_checkpoint(run_dir))
    families = [spec.family for spec in cfg.decoder_specs]
    kinds = {"deterministic": [d for f, d in zip(families, decoders) if not DECODERS[f].generative],
             "generative": [d for f, d in zip(families, decoders) if DECODERS[f].generative]}
    for kind, found in kinds.items():
        if not found:
            raise SystemExit(f"{run_dir}: the run has no {kind} decoder (its decoder families: {', '.join(families)})")
    picked = {"attention": kinds["deterministic"][0], "prompt": kinds["generative"][0]}
    return encoder, picked, run_evaluation_crops(cfg), cfg.jscc_channel


def snr_table(encoder, decoders, images: torch.Tensor, snrs: list[float], seed: int, channel: str) -> pd.DataFrame:
    prompt = decoders["prompt"]
    rule = prompt.thresholds_db
    variants = {"attention": (decoders["attention"], None), "prompt (rule)": (prompt, rule),
                "prompt (all L)": (prompt, (float("-inf"),) * prompt.num_prompts)}
    rows = []
    for snr in snrs:
        for method, (decoder, thresholds) in variants.items():
            if thresholds is not None:
                prompt.thresholds_db = thresholds
            generator = torch.Generator().manual_seed(seed)
            scores = evaluate_decoder(encoder, decoder, images, snr, channel, generator)
            rows.append({"method": method, "snr": snr, **scores,
                         **{key: float("nan") for key in ("prior_kl", "prompts") if key not in scores}})
        prompt.thresholds_db = rule
    return pd.DataFrame(rows)


@torch.no_grad()
def prefix_table(encoder, prompt, images: torch.Tensor, snrs: list[float], seed: int,
                 channel: str) -> pd.DataFrame:
    encoder.eval()
    prompt.eval()
    size = (images.shape[2], images.shape[3])
    rows = []
    for snr in snrs:
        received = transmit(encoder, images, snr, channel, torch.Generator().manual_seed(seed))
        for k in range(1, prompt.num_prompts + 1):
            restored = prompt(received, snr, image_size=size, generator=torch.Generator().manual_seed(seed), prompts=k)
            rows.append({"snr": snr, "prompts": k, "psnr": psnr(restored, images).mean().item(),
                         "ms_ssim": ms_ssim(restored, images).mean().item()})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="output folder (default: work/jscc_generative, or RUN_DIR/generative)")
    parser.add_argument("--framework", default="simultaneous", choices=list(TRAINERS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--ratio", type=float, default=1 / 12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--kl-weight", type=float, default=KL_WEIGHT, help="weight of the prompt decoder's prior KL")
    parser.add_argument("--snr-set", type=parse_snrs, default=[1.0, 4.0, 7.0, 10.0, 13.0])
    parser.add_argument("--snrs", type=parse_snrs, default=[-2.0, 1.0, 4.0, 7.0, 10.0, 13.0, 16.0])
    parser.add_argument("--eval-crop", type=int, default=96)
    parser.add_argument("--images", default="", help="image folder ('' = the embedded default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny convolutions: 1 is fastest)")
    parser.add_argument("--run-dir", type=Path, help="score a D-JSCC run's checkpoint instead of training "
                        "(its evaluation crops and channel)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.run_dir:
        encoder, decoders, test, channel = from_run(args.run_dir)
        out = args.out or args.run_dir / "generative"
        print(f"{args.run_dir}: {len(test)} evaluation crops, {channel}")
    else:
        images = load_images(args.images or None)
        encoder, decoders, seconds = train(images, args)
        test, channel, out = center_crops(images, args.eval_crop), "awgn", args.out or Path("work/jscc_generative")
        print(f"trained {args.steps} steps ({args.framework}) in {seconds:.0f} s")
    by_snr = snr_table(encoder, decoders, test, args.snrs, args.seed, channel)
    by_prefix = prefix_table(encoder, decoders["prompt"], test, args.snrs, args.seed, channel)
    out.mkdir(parents=True, exist_ok=True)
    by_snr.to_csv(out / "snr.csv", index=False)
    by_prefix.to_csv(out / "prefix.csv", index=False)
    print(f"L = {decoders['prompt'].num_prompts} prompts, thresholds (dB) "
          f"{[round(t, 2) for t in decoders['prompt'].thresholds_db]}; {out / 'snr.csv'}, {out / 'prefix.csv'}")
    wide = by_snr.pivot_table(index="snr", columns="method", values=["psnr", "ms_ssim"]).round(3)
    print(wide.to_string())
    print(by_snr[by_snr["prompts"].notna()].pivot_table(index="snr", columns="method",
                                                         values=["prompts", "prior_kl"]).round(4).to_string())
    print("PSNR (dB) by prompts decoded (rows: SNR):")
    print(by_prefix.pivot_table(index="snr", columns="prompts", values="psnr").round(2).to_string())


if __name__ == "__main__":
    main()
