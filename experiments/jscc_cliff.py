"""The cliff plot (seed 001): D-JSCC's PSNR against SNR beside the separation baselines
(semfed.jscc.cliff).

    .venv/bin/python -m experiments.jscc_cliff [--run-dir RUN_DIR] [--out DIR] [--snrs -2:20:1]
        [--channels awgn,rayleigh] [--codecs jpeg,jpeg-payload,webp,jpeg2000] [--eval-crop 256]
        [--images FOLDER]
        [--steps 150 --crop 48 --batch 8 --width 16 --ratio 0.0833333333]  (no --run-dir only)

--run-dir: a D-JSCC run's directory (task='jscc'); its jscc_checkpoint.pt gives the encoder, every
client's decoder and the bandwidth ratio. Without it, the script trains a small encoder and its
symmetric decoder (semfed.jscc.symmetric_family(): attention) itself (stage 1, --steps random crops
of the images at 1..13 dB). --channels: names from semfed.channels.CHANNELS (default: all of them).
--codecs: separation codecs from semfed.jscc.separation.CODECS (default: all of them; 'jpeg' counts
the whole file, 'jpeg-payload' only what a receiver knowing the standard tables needs).
Evaluation: the centre --eval-crop px crops of the images (default: the run's images, else the
embedded default), every SNR of the grid (start:stop:step dB, inclusive, or a comma list).
Writes cliff.csv (method, channel, snr, psnr, ms_ssim; for a separation codec also the mean quality
on its own scale, 0 for a failed image, and the fraction of failed images) and cliff.png into --out
(default: the run directory, or work/jscc_cliff), and prints the SNR where each codec's lowest
quality starts to fit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from semfed.channels import CHANNELS
from semfed.data.image_folder import center_crops, load_images, random_crops
from semfed.jscc import (
    AttentionEncoder,
    build_decoder,
    latent_channels,
    symmetric_family,
)
from semfed.jscc.cliff import cliff_curve
from semfed.jscc.federation import models_from_checkpoint
from semfed.jscc.frameworks import train_stage1
from semfed.jscc.report import load_checkpoint
from semfed.jscc.separation import CODECS, Ladder, fit_snr_db
from semfed.plots import plt, save_figure

LINE_STYLES = ("-", "--", ":", "-.")
SEPARATION_MARKERS = ("s", "^", "D", "v", "x")


def snr_grid(text: str) -> list[float]:
    """'-2:20:1' -> [-2, -1, ..., 20] (stop included); '1,4,7' -> [1, 4, 7]."""
    if ":" in text:
        start, stop, step = (float(v) for v in text.split(":"))
        return [round(float(v), 6) for v in np.arange(start, stop + step / 2, step)]
    return [float(v) for v in text.split(",")]


def from_run(run_dir: Path) -> tuple[torch.nn.Module, dict[str, torch.nn.Module], float, str]:
    """Encoder, decoders by 'client:family', bandwidth ratio and image folder of a D-JSCC run's checkpoint."""
    cfg, encoder, decoders = models_from_checkpoint(load_checkpoint(run_dir))
    named = {f"{pid}:{spec.family}": decoder for pid, (spec, decoder) in enumerate(zip(cfg.decoder_specs, decoders))}
    return encoder, named, cfg.jscc_bandwidth_ratio, cfg.jscc_eval_images or cfg.jscc_images


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
    CHANNELS order: AWGN solid, Rayleigh dashed), the separation baselines in black and grey (a
    marker per codec, in CODECS order)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    channels = list(CHANNELS)
    labels = [codec.label for codec in CODECS.values()]
    for (method, channel), rows in table.groupby(["method", "channel"]):
        style = {"ls": LINE_STYLES[channels.index(channel) % len(LINE_STYLES)], "marker": "o",
                 "label": f"{method}, {channel}"}
        if method in labels:
            i = labels.index(method)
            style = {"ls": LINE_STYLES[i % len(LINE_STYLES)], "marker": SEPARATION_MARKERS[i % len(SEPARATION_MARKERS)],
                     "color": ("black", "0.45")[i % 2], "label": f"{method} (AWGN capacity)"}
        ax.plot(rows["snr"], rows["psnr"], ms=3, **style)
    ax.set(xlabel="SNR (dB)", ylabel="PSNR (dB)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, file)


def lowest_quality_fits(images: torch.Tensor, ratio: float, codecs: list[str]) -> pd.DataFrame:
    """Per codec: the bytes of its lowest quality and the SNR (dB) from which they fit the channel,
    median and range over the images."""
    rows = []
    for name in codecs:
        codec = CODECS[name]
        sizes = [len(Ladder(image, name).encoded(codec.qualities[0])) for image in images]
        snrs = [fit_snr_db(n, tuple(images.shape[1:]), ratio) for n in sizes]
        rows.append({"method": codec.label, "bytes_median": float(np.median(sizes)), "bytes_min": min(sizes),
                     "bytes_max": max(sizes), "snr_median": float(np.median(snrs)), "snr_min": min(snrs),
                     "snr_max": max(snrs)})
    return pd.DataFrame(rows).set_index("method")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--snrs", default="-2:20:1")
    parser.add_argument("--channels", default=",".join(CHANNELS), help="channels from semfed.channels.CHANNELS")
    parser.add_argument("--codecs", default=",".join(CODECS), help="separation codecs from semfed.jscc.separation.CODECS")
    parser.add_argument("--eval-crop", type=int, default=256)
    parser.add_argument("--images", default=None, help="evaluation (and training) images ('' = embedded default)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--ratio", type=float, default=1 / 12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    codecs = args.codecs.split(",") if args.codecs else []
    unknown = [name for name in codecs if name not in CODECS]
    if unknown:
        parser.error(f"--codecs: {unknown} not in {tuple(CODECS)}")
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
    crops = center_crops(images, args.eval_crop)
    table = cliff_curve(encoder, decoders, crops, snr_grid(args.snrs), ratio, args.channels.split(","), args.seed,
                        codecs)
    table.to_csv(out / "cliff.csv", index=False)
    plot(table, out / "cliff.png", title)
    for channel, rows in table.groupby("channel", sort=False):
        print(f"PSNR (dB), {channel}:\n" + rows.pivot_table(index="snr", columns="method", values="psnr").round(2)
              .to_string())
    if codecs:
        print(f"lowest quality of each codec on {len(crops)} {args.eval_crop}-px crops: bytes and the SNR (dB) from "
              f"which it fits\n" + lowest_quality_fits(crops, ratio, codecs).round(2).to_string())
    print(f"{out / 'cliff.csv'}, {out / 'cliff.png'}")


if __name__ == "__main__":
    main()
