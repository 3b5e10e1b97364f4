"""Seed 001 Fig. 5: a user's D-JSCC quality after the shared encoder is trained with 1, 2, 3 other
users (iterative framework) against the anchor framework's frozen encoder (semfed.jscc.forgetting).

    .venv/bin/python -m experiments.jscc_forgetting [--out DIR] [--target attention]
        [--others conv,resnet,vgg] [--steps 60] [--crop 48] [--batch 8] [--width 16]
        [--ratio 0.1666666667] [--eval-snrs 1,7,13] [--channel awgn] [--images FOLDER] [--seed 0]
    .venv/bin/python -m experiments.jscc_forgetting --run-dir RUN_DIR [--steps 1000] [--out DIR]

--target defaults to the encoder's symmetric decoder family, --others to every other registered
deterministic family (semfed.jscc.decoders.DECODERS less the generative ones), --channel to awgn
(any of semfed.channels.CHANNELS).
Images: --images folder, or scikit-image's bundled photos (the embedded default): --steps random
--crop px crops per stage (--batch a step) for training, the centre crops for evaluation. The
defaults are CPU-sized (a few minutes on one core). Writes forgetting.csv (framework, stage,
trained_with, snr, psnr, ms_ssim) and forgetting.png (PSNR and MS-SSIM of the target against the
stage, one line per framework and SNR) into --out.
With --run-dir the curve starts from a trained run's models (e.g. the anchor run of
experiments/sweeps/jscc_plateau.toml, at its plateau): stage 0 is that checkpoint, untouched.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from semfed.channels import CHANNELS
from semfed.data.image_folder import center_crops, load_images, random_crops
from semfed.jscc import (
    DECODERS,
    AttentionEncoder,
    build_decoder,
    latent_channels,
    symmetric_family,
)
from semfed.jscc.federation import anchor_partition, evaluation_crops, models_from_checkpoint, training_crops
from semfed.jscc.forgetting import forgetting_curve
from semfed.jscc.framework_registry import FRAMEWORKS
from semfed.jscc.report import METRIC_NAMES, load_checkpoint
from semfed.plots import plt, save_figure


def plot(table: pd.DataFrame, file: Path, target: str) -> None:
    """PSNR (left) and MS-SSIM (right) of the target decoder against the stage."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    stages = table.drop_duplicates("stage").sort_values("stage")
    labels = [f"{s}: {w}" if s else "targeted" for s, w in zip(stages["stage"], stages["trained_with"])]
    for (framework, snr), rows in table.groupby(["framework", "snr"]):
        rows = rows.sort_values("stage")
        for ax, metric in zip(axes, METRIC_NAMES):
            ax.plot(rows["stage"], rows[metric], marker="o", ls="--" if FRAMEWORKS[framework].two_stage else "-",
                    label=f"{framework}, {snr:g} dB")
    for ax, metric in zip(axes, METRIC_NAMES):
        ax.set_xticks(stages["stage"], labels)
        ax.set(xlabel="encoder last trained with", ylabel=METRIC_NAMES[metric] + (" (dB)" if metric == "psnr" else ""),
               title=f"{target} decoder")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(fig, file)


def from_run(run_dir: Path, steps: int, eval_snrs: list[float], generator: torch.Generator,
             seed: int) -> tuple[str, pd.DataFrame]:
    """The forgetting curve from a trained run: stage 0 is the checkpoint as it is (no training), each later
    stage `steps` steps of the run's batches on the rows it trained on; scored on its evaluation crops."""
    cfg, encoder, decoders = models_from_checkpoint(load_checkpoint(run_dir))
    anchor = anchor_partition(cfg)
    names = [f"{pid}:{spec.family}" for pid, spec in enumerate(cfg.decoder_specs)]
    images = load_images(cfg.jscc_images or None)
    others = [(name, decoder) for pid, (name, decoder) in enumerate(zip(names, decoders)) if pid != anchor]
    stage_batches = [[]] + [list(training_crops(cfg, images, steps * cfg.jscc_batch_size, generator)
                                 .split(cfg.jscc_batch_size)) for _ in others]
    if cfg.jscc_eval_images not in ("", cfg.jscc_images):
        images = load_images(cfg.jscc_eval_images)
    eval_images = evaluation_crops(cfg, images)
    return names[anchor], forgetting_curve(encoder, decoders[anchor], others, stage_batches, eval_images,
                                           eval_snrs=eval_snrs, channel=cfg.jscc_channel, seed=seed,
                                           snr_set_db=cfg.snr_set, lr=cfg.jscc_learning_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("work/jscc_forgetting"))
    target = symmetric_family()
    parser.add_argument("--target", default=target, choices=list(DECODERS))
    parser.add_argument("--others", default=",".join(name for name, family in DECODERS.items()
                                                     if name != target and not family.generative))
    parser.add_argument("--steps", type=int, default=60, help="training steps per stage")
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=16, help="channels of the encoder and every decoder")
    parser.add_argument("--ratio", type=float, default=1 / 6, help="bandwidth ratio k/n")
    parser.add_argument("--eval-snrs", default="1,7,13")
    parser.add_argument("--channel", default="awgn", choices=list(CHANNELS))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--images", default="", help="image folder ('' = the embedded default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", type=Path, help="start from a D-JSCC run's jscc_checkpoint.pt (e.g. an anchor "
                        "run trained to its plateau) instead of training stage 0: the target is its anchor decoder, "
                        "the others its other decoders; crops, batch, held-out rows, channel, SNR set and learning "
                        "rate are the run's (--target, --others, --crop, --batch, --width, --ratio, --channel, "
                        "--lr and --images are ignored)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)
    eval_snrs = [float(s) for s in args.eval_snrs.split(",")]
    start = time.perf_counter()
    if args.run_dir:
        target_name, table = from_run(args.run_dir, args.steps, eval_snrs, generator, args.seed)
    else:
        images = load_images(args.images or None)
        others = args.others.split(",")
        stage_batches = [list(random_crops(images, args.steps * args.batch, args.crop, generator).split(args.batch))
                         for _ in range(len(others) + 1)]
        torch.manual_seed(args.seed)
        encoder = AttentionEncoder(args.ratio, width=args.width)
        sizes = dict(latent_channels=latent_channels(args.ratio), width=args.width)
        target_name, target = args.target, build_decoder(args.target, **sizes)
        table = forgetting_curve(encoder, target, [(name, build_decoder(name, **sizes)) for name in others],
                                 stage_batches, center_crops(images, args.crop), eval_snrs=eval_snrs,
                                 channel=args.channel, seed=args.seed, lr=args.lr)
    table.to_csv(args.out / "forgetting.csv", index=False)
    plot(table, args.out / "forgetting.png", target_name)
    print(table.to_string(index=False))
    print(f"{time.perf_counter() - start:.0f} s; {args.out / 'forgetting.csv'}, {args.out / 'forgetting.png'}")


if __name__ == "__main__":
    main()
