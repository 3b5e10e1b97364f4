"""Adapter training step: milliseconds per optimiser step of the retrieval graph adapter, and the step's peak
memory, at 8, 36, 64 and 100 regions per image, the sparse region graph against a dense all-pairs one, side by
side in one run.

A step is semfed.retrieval.training.train_steps over one mini-batch of `batch-size` (128) images with one of
their five captions each, as train_local takes it: the adapter's forward over the images' regions and over
the captions' tokens, the training loss (hardest-negative triplet + skb-reg-weight x SKB alignment of both
embeddings), backward, and the Adam step. The model is the default config's GraphAdapter of an image+text
client (frcnn-r50 + minilm: stems 1024 + 5 geometry = 1029 -> 256 and 384 -> 256, one layer, SKB of the
scenes' 19 concepts embedded by MiniLM, 384-d); --region-dim 2048 gives the stem of precomputed bottom-up
features instead.

sparse: intra-top-k = the default config's 4 (each region and each caption token attends to its 4 most
    similar others in its own image or caption).
dense: the same model with intra-top-k = max(regions, max-tokens): gaussian_knn_edges keeps min(k, n - 1)
    neighbours, so every node attends to every other node of its image or caption (all ordered pairs, no
    self-loops, as the sparse graph). No code of the library changes; the caption graphs (max-tokens = 24
    tokens) become all-pairs too, since the adapter has one intra-top-k for both modalities.

Synthetic inputs with the real shapes and dtypes (shards hold float16 features): Gaussian region and token
features, every region and all 24 token slots real (mask all True: the worst case of a padded batch), random
multi-hot concept labels. Peak memory: the process's peak resident set during a step (VmHWM, reset through
/proc/self/clear_refs before each step) less its resident set just before it, the largest over the repeats;
Linux only ("n/a" elsewhere). Times: median of --repeats steps after --warm-up steps, the two variants' steps
interleaved so that a busy machine slows both alike. Also writes the curve (ms per step against regions, one
line per variant) to adapter_step.png in --out.

    .venv/bin/python -m benchmarks.adapter_step [--regions 8,36,64,100] [--repeats 3] [--warm-up 1]
        [--threads 2] [--region-dim 1029] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semfed.config import load_config
from semfed.data.dataset import CAPTIONS_PER_IMAGE
from semfed.data.scene_vocabulary import SCENE_CONCEPTS
from semfed.encoders.regions import GEOMETRY_DIM

REGION_DIM = 1024 + GEOMETRY_DIM  # Faster R-CNN box-head output + box geometry (semfed.encoders.regions)
TOKEN_DIM = 384  # MiniLM's hidden width (token features, and the SKB's concept embeddings: skb-encoder minilm)
IMAGE_ENCODER, TEXT_ENCODER = "frcnn-r50", "minilm"
CONCEPTS_PER_CAPTION = 3  # mean concepts a synthetic caption names
VARIANTS = ("sparse", "dense")


def dense_top_k(regions: int, tokens: int) -> int:
    """The intra-top-k under which every node of an image (regions) or caption (tokens) attends to all others."""
    return max(regions, tokens)


def intra_top_k(variant: str, regions: int, cfg) -> int:
    return cfg.intra_top_k if variant == "sparse" else dense_top_k(regions, cfg.max_tokens)


def edges_per_image(regions: int, k: int) -> int:
    """Intra-modal edges of one image with `regions` real regions under top-k (gaussian_knn_edges)."""
    return regions * min(k, regions - 1)


def synthetic_shard(batch: int, regions: int, cfg, region_dim: int = REGION_DIM, seed: int = 0):
    """A Shard of `batch` image+text rows with the real shapes: regions [B, R, region_dim] and the five
    captions' tokens [B, 5, max-tokens, 384], float16, all real; multi-hot labels over the scene concepts."""
    from semfed.retrieval.shards import Modality, Shard  # torchvision's detectors and more: only when measuring

    g = torch.Generator().manual_seed(seed)
    tokens = cfg.max_tokens
    image = Modality(IMAGE_ENCODER, torch.randn(batch, regions, region_dim, generator=g).half(),
                     torch.ones(batch, regions, dtype=torch.bool))
    text = Modality(TEXT_ENCODER, torch.randn(batch, CAPTIONS_PER_IMAGE, tokens, TOKEN_DIM, generator=g).half(),
                    torch.ones(batch, CAPTIONS_PER_IMAGE, tokens, dtype=torch.bool))
    caption_labels = (torch.rand(batch, CAPTIONS_PER_IMAGE, len(SCENE_CONCEPTS), generator=g)
                      < CONCEPTS_PER_CAPTION / len(SCENE_CONCEPTS)).float()
    rows = np.arange(batch)
    return Shard(rows, rows, image, text, caption_labels, caption_labels.amax(dim=1))


def adapter(cfg, k: int, region_dim: int = REGION_DIM, seed: int = 0):
    """The default config's adapter of a frcnn-r50 + minilm client (random SKB embeddings), intra-top-k = k."""
    from semfed.retrieval.participants import graph_adapter  # PyG (about 11 s to import): only when measuring

    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return graph_adapter(cfg, {IMAGE_ENCODER: region_dim, TEXT_ENCODER: TOKEN_DIM},
                             torch.randn(len(SCENE_CONCEPTS), TOKEN_DIM, generator=g), intra_top_k=k)


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def reset_peak() -> int | None:
    """Reset the process's peak resident set (Linux); its resident set now in KiB, None where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS")
    except OSError:
        return None


def timed_step(step, before_kib: int | None) -> tuple[float, float | None]:
    """(seconds, peak resident set over before_kib in MiB or None) of step()."""
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    return seconds, None if before_kib is None else (_status_kib("VmHWM") - before_kib) / 1024


def measure(regions: int, cfg, repeats: int, warm_up: int, region_dim: int) -> dict[str, dict[str, float | None]]:
    """{variant: {"ms": median ms per step, "peak_mib": largest peak-memory increase of a step or None}}."""
    from semfed.retrieval.training import train_steps

    shard = synthetic_shard(cfg.batch_size, regions, cfg, region_dim)
    batch = (shard, torch.arange(cfg.batch_size),
             torch.randint(CAPTIONS_PER_IMAGE, (cfg.batch_size,), generator=torch.Generator().manual_seed(1)), None)
    steps = {}
    for variant in VARIANTS:
        model = adapter(cfg, intra_top_k(variant, regions, cfg), region_dim)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)  # as train_local: Adam, cfg's rate
        steps[variant] = lambda model=model, optimizer=optimizer: train_steps(model, [batch], cfg, "cpu", optimizer)
    for _ in range(warm_up):
        for step in steps.values():
            step()
    runs: dict[str, list[tuple[float, float | None]]] = {variant: [] for variant in VARIANTS}
    for _ in range(repeats):
        for variant, step in steps.items():
            runs[variant].append(timed_step(step, reset_peak()))
    return {variant: {"ms": 1e3 * statistics.median(s for s, _ in r),
                      "peak_mib": None if r[0][1] is None else max(m for _, m in r)}
            for variant, r in runs.items()}


def plot(results: dict[int, dict], file: Path, cfg) -> None:
    from semfed.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    regions = sorted(results)
    for variant in VARIANTS:
        label = (f"sparse (intra-top-k {cfg.intra_top_k})" if variant == "sparse"
                 else "dense (all pairs)")
        ax.plot(regions, [results[n][variant]["ms"] for n in regions], marker="o", label=label)
    ax.set_xlabel("regions per image")
    ax.set_ylabel("ms per training step")
    ax.set_title(f"Adapter step, batch {cfg.batch_size}, {torch.get_num_threads()} threads")
    ax.set_xticks(regions)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", default="8,36,64,100", help="regions per image, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm-up", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--region-dim", type=int, default=REGION_DIM,
                        help=f"region feature width ({REGION_DIM}: Faster R-CNN; 2048: bottom-up features)")
    parser.add_argument("--out", type=Path, default=None, help="folder for adapter_step.png (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config()
    out = args.out or Path(tempfile.mkdtemp(prefix="semfed-adapter-step-"))
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    results = {}
    for regions in sorted(int(r) for r in args.regions.split(",")):
        results[regions] = measure(regions, cfg, args.repeats, args.warm_up, args.region_dim)
    file = out / "adapter_step.png"
    plot(results, file, cfg)

    def mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f} MiB"

    print(f"| regions per image (batch {cfg.batch_size}, {torch.get_num_threads()} threads; median of "
          f"{args.repeats}) | sparse, intra-top-k {cfg.intra_top_k} | dense, all pairs | dense / sparse | "
          "peak memory sparse | peak memory dense | intra edges per image sparse / dense |")
    print("|---|---|---|---|---|---|---|")
    for regions, r in results.items():
        sparse, dense = r["sparse"], r["dense"]
        edges = [edges_per_image(regions, intra_top_k(v, regions, cfg)) for v in VARIANTS]
        print(f"| {regions} | {sparse['ms']:,.0f} ms | {dense['ms']:,.0f} ms | {dense['ms'] / sparse['ms']:.1f}x | "
              f"{mib(sparse['peak_mib'])} | {mib(dense['peak_mib'])} | {edges[0]} / {edges[1]} |")
    print(f"\nCaptions: {cfg.max_tokens} tokens each, {cfg.max_tokens * min(cfg.intra_top_k, cfg.max_tokens - 1)} / "
          f"{cfg.max_tokens * (cfg.max_tokens - 1)} intra edges sparse / dense at every region count. "
          f"Region features {args.region_dim}-d. Load average before the run: {load:.2f}, after: "
          f"{os.getloadavg()[0]:.2f}; {time.perf_counter() - start:.0f} s. Curve: {file}")


if __name__ == "__main__":
    main()
