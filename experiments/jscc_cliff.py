"""The cliff plot (seed 001): D-JSCC's PSNR against SNR beside the JPEG separation baseline
(semfed.jscc.cliff).

    .venv/bin/python -m experiments.jscc_cliff [--run-dir RUN_DIR] [--out DIR] [--snrs -2:20:1]
        [--channels awgn,rayleigh] [--eval-crop 128] [--images FOLDER]
        [--steps 150 --crop 48 --batch 8 --width 16 --ratio 0.0833333333]  (no --run-dir only)

--run-dir: a D-JSCC run's directory (task='jscc'); its jscc_checkpoint.pt gives the encoder, every
client's decoder and the bandwidth ratio. Without it, the script trains a small encoder and its
symmetric decoder (semfed.jscc.symmetric_family(): attention) itself (stage 1, --steps random crops
of the images at 1..13 dB). --channels: names from semfed.channels.CHANNELS (default: all of them).
Evaluation: the centre --eval-crop px crops of the images (default: the run's images, else the
embedded default), every SNR of the grid (start:stop:step dB, inclusive, or a comma list).
Writes cliff.csv (method, channel, snr, psnr, ms_ssim; for JPEG also the mean quality and the
fraction of failed images) and cliff.png into --out (default: the run directory, or work/jscc_cliff).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from semfed.channels import CHANNELS
from semfed.config import SemfedConfig, default_run_config
from semfed.data.image_folder import center_crops, load_images, random_crops
from semfed.jscc import (
    AttentionEncoder,
    build_decoder,
    latent_channels,
    symmetric_family,
)
from semfed.jscc.cliff import SEPARATION, cliff_curve
from semfed.jscc.federation import build_encoder, build_user_decoder
from semfed.jscc.frameworks import train_stage1
from semfed.jscc.report import load_checkpoint
from semfed.plots import plt, save_figure

LINE_STYLES = ("-", "--", ":", "-.")


def snr_grid(text: str) -> list[float]:
    """'-2:20:1' -> [-2, -1, ..., 20] (stop included); '1,4,7' -> [1, 4, 7]."""
    if ":" in text:
        start, stop, step = (float(v) for v in text.split(":"))
        return [round(float(v), 6) for v in np.arange(start, stop + step / 2, step)]
    return [float(v) for v in text.split(",")]


def from_run(run_dir: Path) -> tuple[torch.nn.Module, dict[str, torch.nn.Module], float, str]:
    """Encoder, decoders by 'client:family', bandwidth ratio and image folder of a D-JSCC run's checkpoint."""
    checkpoint = load_checkpoint(run_dir)
    cfg = SemfedConfig.from_run_config({**default_run_config(), **checkpoint["config"]})
    encoder = build_encoder(cfg)
    encoder.load_state_dict(checkpoint["encoder"])
    decoders = {}
    for pid, state in sorted(checkpoint["decoders"].items()):
        decoders[f"{pid}:{checkpoint['families'][pid]}"] = decoder = build_user_decoder(cfg, pid)
        decoder.load_state_dict(state)
    return encoder, decoders, cfg.jscc_bandwidth_ratio, cfg.jscc_eval_images or cfg.jscc_images


def train_small(images: list, args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, torch.nn.Module]]:
    """A small encoder and its symmetric decoder trained jointly (stage 1) on random crops."""
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    encoder = AttentionEncoder(args.ratio, width=args.width)
    family = symmetric_family()
    decoder = build_decoder(family, latent_channels=latent_channels(args.ratio), width=args.width)
    batches = random_crops(images, args.steps * args.batch, args.crop, generator).split(args.batch)
    losses = train_stage1(encoder, decoder, batches, generator=generator, lr=args.lr)
    print(f"trained {args.steps} steps: MSE {losses[0]:.4f} -> {np.mean(losses[-10:]):.4f}")
    return encoder, {family: decoder}


def plot(table: pd.DataFrame, file: Path, title: str) -> None:
    """PSNR against SNR: one line per D-JSCC decoder and channel (a line style per channel, in
    CHANNELS order: AWGN solid, Rayleigh dashed), the separation baseline in black."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    channels = list(CHANNELS)
    for (method, channel), rows in table.groupby(["method", "channel"]):
        separation = method == SEPARATION
        ax.plot(rows["snr"], rows["psnr"], marker="s" if separation else "o", ms=3,
                color="black" if separation else None, ls=LINE_STYLES[channels.index(channel) % len(LINE_STYLES)],
                label=f"{method} (AWGN capacity)" if separation else f"{method}, {channel}")
    ax.set(xlabel="SNR (dB)", ylabel="PSNR (dB)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--snrs", default="-2:20:1")
    parser.add_argument("--channels", default=",".join(CHANNELS), help="channels from semfed.channels.CHANNELS")
    parser.add_argument("--eval-crop", type=int, default=128)
    parser.add_argument("--images", default=None, help="evaluation (and training) images ('' = embedded default)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--ratio", type=float, default=1 / 12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.run_dir:
        encoder, decoders, ratio, folder = from_run(args.run_dir)
        images = load_images((folder if args.images is None else args.images) or None)
        title = f"{args.run_dir.name}: ratio {ratio:.3g}"
    else:
        images = load_images(args.images or None)
        encoder, decoders = train_small(images, args)
        ratio, title = args.ratio, f"small D-JSCC ({args.steps} steps): ratio {args.ratio:.3g}"
    out = args.out or args.run_dir or Path("work/jscc_cliff")
    out.mkdir(parents=True, exist_ok=True)
    table = cliff_curve(encoder, decoders, center_crops(images, args.eval_crop), snr_grid(args.snrs), ratio,
                        args.channels.split(","), args.seed)
    table.to_csv(out / "cliff.csv", index=False)
    plot(table, out / "cliff.png", title)
    for channel, rows in table.groupby("channel", sort=False):
        print(f"PSNR (dB), {channel}:\n" + rows.pivot_table(index="snr", columns="method", values="psnr").round(2)
              .to_string())
    print(f"{out / 'cliff.csv'}, {out / 'cliff.png'}")


if __name__ == "__main__":
    main()
