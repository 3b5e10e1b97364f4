"""On-disk cache of frozen-encoder features, keyed by content, plus batched encoding helpers.

Cached files are `{cache_dir}/{key}.pt` holding a dict of CPU tensors (features in float16).
"""

import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .regions import RegionEncoder
from .tokens import TokenEncoder, resolve_model_dir

log = logging.getLogger("semfed.encoders")

KEY_CHARS = 20
IMAGE_BATCH = 16  # images a region encoder encodes at once
MODEL_FILE_SUFFIXES = (".json", ".txt", ".model", ".safetensors", ".bin", ".pt", ".pth")


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _content_digests(spec: dict) -> dict[str, str]:
    """sha256 of the weight files a spec depends on: its "weights_path" file, and the
    top-level config/vocab/weight files of a local text-model directory."""
    digests = {}
    weights_path = spec.get("weights_path", "")
    if weights_path:
        if not Path(weights_path).is_file():
            raise FileNotFoundError(f"weights file not found: {weights_path}")
        digests["weights_path"] = _file_sha256(Path(weights_path))
    if spec.get("kind") == "tokens":  # a language model in a local folder (semfed.data.features.FEATURE_KINDS)
        model_dir = resolve_model_dir(spec["name"])
        for path in sorted(model_dir.iterdir()):
            if path.is_file() and path.suffix in MODEL_FILE_SUFFIXES:
                digests[f"model_dir/{path.name}"] = _file_sha256(path)
    return digests


def feature_key(encoder_spec: dict, dataset_fingerprint: str, split: str) -> str:
    """20-hex-char key identifying the features of one encoder on one dataset split. A weights file
    counts by its bytes, not its path: a moved work dir (or a shared cache) keeps its features."""
    payload = {
        "spec": {k: v for k, v in encoder_spec.items() if k != "weights_path"},
        "content": _content_digests(encoder_spec),
        "dataset": dataset_fingerprint,
        "split": split,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_CHARS]


def cached_features(cache_dir: Path, key: str, compute: Callable[[], dict[str, Tensor]]) -> dict[str, Tensor]:
    """Load `cache_dir/{key}.pt` (memory-mapped) if present, else compute, save atomically, return."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{key}.pt"
    start = time.perf_counter()
    if path.exists():
        tensors = torch.load(path, mmap=True, weights_only=True)
        log.debug("feature cache hit %s (loaded in %.2f s)", path, time.perf_counter() - start)
        return tensors
    tensors = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(tensors, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("feature cache miss %s (computed and saved in %.2f s)", path, time.perf_counter() - start)
    return tensors


class _Progress:
    """Logs done/total and throughput roughly every 10% of `total` items."""

    def __init__(self, total: int, label: str):
        self.total, self.label = total, label
        self.start = time.perf_counter()
        self.next_report = 0.1 * total

    def update(self, done: int) -> None:
        if done < self.next_report and done < self.total:
            return
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        log.info("%s %d/%d (%.1f items/s)", self.label, done, self.total, rate)
        while self.next_report <= done:
            self.next_report += 0.1 * self.total


def encode_in_batches(n: int, length: int, dim: int, encode_batch: Callable[[int, int], tuple[Tensor, Tensor]],
                       batch_size: int, label: str) -> dict[str, Tensor]:
    """Fill dict(feats=float16 [n,length,dim], mask=bool [n,length]) on the CPU from
    encode_batch(lo, hi) -> (feats [hi-lo,length,dim], mask [hi-lo,length]), logging progress."""
    feats = torch.zeros(n, length, dim, dtype=torch.float16)
    mask = torch.zeros(n, length, dtype=torch.bool)
    progress = _Progress(n, label)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        f, m = encode_batch(lo, hi)
        feats[lo:hi], mask[lo:hi] = f.cpu().half(), m.cpu()
        progress.update(hi)
    return {"feats": feats, "mask": mask}


def encode_images(
    encoder: RegionEncoder,
    images: np.ndarray,
    boxes: list[np.ndarray] | None,
    batch_size: int = IMAGE_BATCH,
    progress_label: str = "",
) -> dict[str, Tensor]:
    """Encode uint8 images [N,H,W,3] (+ per-image xyxy pixel boxes) in batches.

    Returns dict(feats=float16 [N,R,D] CPU, mask=bool [N,R] CPU), R = max_regions, D = out_dim.
    """
    return encode_in_batches(
        len(images), encoder.max_regions, encoder.out_dim,
        lambda lo, hi: encoder.encode(images[lo:hi], None if boxes is None else boxes[lo:hi]),
        batch_size, progress_label or f"encode images {encoder.name}")


def encode_texts(
    encoder: TokenEncoder,
    texts: list[str],
    batch_size: int = 64,
    progress_label: str = "",
) -> dict[str, Tensor]:
    """Encode texts in batches: dict(feats=float16 [N,T,D] CPU, mask=bool [N,T] CPU), T = max_tokens."""
    return encode_in_batches(len(texts), encoder.max_tokens, encoder.out_dim,
                              lambda lo, hi: encoder.encode(texts[lo:hi]),
                              batch_size, progress_label or f"encode texts {encoder.name}")
