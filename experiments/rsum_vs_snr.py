"""Retrieval RSUM against SNR with the adapter's SKB tokens sent over the air (semfed.retrieval.token_channel).

    .venv/bin/python -m experiments.rsum_vs_snr RUN_DIR [--send images|captions|both]
        [--snrs -5,0,5,10,15,20] [--channels awgn,rayleigh] [--out DIR]

RUN_DIR is a retrieval run's directory (task='retrieval'): its checkpoint.pt holds the adapter and
its config.json the run config (features come from that config's work-dir cache, computed there
if missing). --send picks whose tokens cross the channel: the images' (default: the image side is
the transmitted message, the captions are the receiver's own clean queries), the captions', or
both. Every (channel, SNR) draws its noise from a generator seeded by the run's seed. Writes
rsum_vs_snr.csv (channel, snr, send, RSUM and recalls averaged over encoder pairs; snr 'inf' row =
no channel) and rsum_vs_snr.png into --out (default: RUN_DIR).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from semfed.channels import CHANNELS
from semfed.config import SemfedConfig, default_run_config
from semfed.config_values import is_image_encoder
from semfed.plots import plt, save_figure
from semfed.retrieval import report
from semfed.retrieval.evaluation import evaluate_federation, mean_recalls
from semfed.retrieval.participants import build_adapter, federation_encoders
from semfed.retrieval.token_channel import token_receiver

SIDES = ("images", "captions", "both")


def sent_encoders(encoders: tuple[str, ...], send: str) -> list[str]:
    """The encoders whose tokens go over the channel for --send images / captions / both."""
    return [e for e in encoders if send == "both" or is_image_encoder(e) == (send == "images")]


def rsum_vs_snr(run_dir: Path, snrs: list[float], channels: list[str], send: str) -> pd.DataFrame:
    """One row per (channel, SNR) plus a no-channel reference row: RSUM and recalls (mean over pairs)."""
    saved = json.loads((run_dir / "config.json").read_text())
    cfg = SemfedConfig.from_run_config({**default_run_config(), **saved})  # keys newer than the run: defaults
    encoders = federation_encoders(cfg)
    model = build_adapter(cfg, encoders, seed=cfg.seed).to(cfg.torch_device)
    model.load_state_dict(report.load_checkpoint(run_dir)["adapter"])
    rows = [{"channel": "none", "snr": float("inf"), "send": send, **mean_recalls(evaluate_federation(model, cfg, encoders))}]
    for channel in channels:
        for snr in snrs:
            generator = torch.Generator().manual_seed(cfg.seed)
            receivers = {e: token_receiver(channel, snr, generator) for e in sent_encoders(encoders, send)}
            recalls = mean_recalls(evaluate_federation(model, cfg, encoders, receivers=receivers))
            rows.append({"channel": channel, "snr": snr, "send": send, **recalls})
            print(f"{channel} {snr:g} dB: RSUM {recalls['rsum']:.1f}", flush=True)
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, file: Path, title: str) -> None:
    """RSUM against SNR per channel, with the no-channel RSUM as a dashed line."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for channel, rows in table[table["channel"] != "none"].groupby("channel"):
        ax.plot(rows["snr"], rows["rsum"], marker="o", label=channel)
    ax.axhline(table.loc[table["channel"] == "none", "rsum"].iloc[0], ls="--", color="grey", label="no channel")
    ax.set(xlabel="SNR (dB)", ylabel="RSUM (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--send", choices=SIDES, default="images")
    parser.add_argument("--snrs", default="-5,0,5,10,15,20", help="comma-separated SNRs in dB")
    parser.add_argument("--channels", default=",".join(CHANNELS), help="channels from semfed.channels.CHANNELS")
    parser.add_argument("--out", type=Path, help="output folder (default: the run directory)")
    args = parser.parse_args()
    out = args.out or args.run_dir
    out.mkdir(parents=True, exist_ok=True)
    table = rsum_vs_snr(args.run_dir, [float(s) for s in args.snrs.split(",")], args.channels.split(","), args.send)
    table.to_csv(out / "rsum_vs_snr.csv", index=False)
    plot(table, out / "rsum_vs_snr.png", f"{args.run_dir.name}: {args.send} tokens over the air")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
