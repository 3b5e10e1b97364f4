"""Flickr30K from a local copy, in either of the two layouts people have, as a retrieval dataset.

- ``karpathy``: ``<path>/dataset_flickr30k.json`` (Karpathy's split:
  ``{"images": [{"filename", "split", "sentences": [{"raw"}, ...]}, ...]}``) and the folder of
  JPEGs. Images are decoded on demand; regions come from a frozen detector's RPN proposals.
- ``scan``: SCAN's precomputed bottom-up features ``<path>/{split}_ims.npy`` float [N, R, D]
  (36 x 2048 in SCAN's release), memory-mapped, and ``<path>/{split}_caps.txt`` with 5N lines,
  caption j of image i on line 5i + j. They are the frozen image encoder ``bottom-up``.

Splits: "train" (Karpathy's train + restval / SCAN's train), "val" (val / dev, if present),
"test". Every image keeps its first five captions. The SKB concepts are the most frequent
content words of the training captions (semfed.data.caption_vocabulary). Every problem with
the files raises :class:`Flickr30KError` at load time, naming the file and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from semfed.config import FLICKR30K_LAYOUTS
from semfed.data.caption_vocabulary import caption_word_concepts, main_concepts
from semfed.data.dataset import CAPTIONS_PER_IMAGE, CaptionedSplit
from semfed.data.image_folder import decode_image
from semfed.data.scene_vocabulary import Concept

log = logging.getLogger("semfed.data.flickr30k")

LOADER_VERSION = "1"  # bump when what a split holds changes, so cached features are not reused
IMAGE_SIDE = 500  # Flickr30K's longer side: JPEGs are resized to it (aspect kept) and zero-padded square
KARPATHY_JSON = "dataset_flickr30k.json"
KARPATHY_IMAGES = "flickr30k-images"  # the JPEG folder's name in the official archive
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
KARPATHY_EXPECTED = ('{"images": [{"filename": "<jpeg name>", "split": "train"|"val"|"test"|"restval", '
                     '"sentences": [{"raw": "<caption>"}, ... at least 5]}, ...]}')
SCAN_SPLITS = {"train": "train", "dev": "val", "test": "test"}
SCAN_OPTIONAL = ("dev",)


class Flickr30KError(ValueError):
    """A Flickr30K file is missing or not in the expected layout; the message names the file."""


class JpegImages:
    """JPEG files decoded on demand: images[i] -> uint8 [S, S, 3], images[a:b] -> uint8 [b-a, S, S, 3]
    RGB, S = IMAGE_SIDE (resized keeping the aspect ratio, zero-padded)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            return np.stack([self._load(p) for p in self.paths[index]])
        return self._load(self.paths[index])

    @staticmethod
    def _load(path: Path) -> np.ndarray:
        image = ImageOps.pad(Image.fromarray(decode_image(path)), (IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR)
        return np.asarray(image)


@dataclass(eq=False)
class Flickr30KSplit(CaptionedSplit):
    """N images: captions (N lists of 5), classes [N] (main concept, for partitioning), and
    either images (karpathy, JpegImages) or regions (scan, float [N, R, D] memory map)."""

    captions: list[list[str]]
    classes: np.ndarray
    images: JpegImages | None = None
    regions: np.ndarray | None = None

    def main_classes(self) -> np.ndarray:
        """[N] int: the concept each image's captions mention most often (K if none)."""
        return self.classes


@dataclass
class Flickr30K:
    """Flickr30K splits, the concept vocabulary counted from the training captions, and a
    fingerprint of the files (captions by content, image / feature files by name, size and mtime)."""

    splits: dict[str, Flickr30KSplit]
    concepts: tuple[Concept, ...]
    fingerprint: str


def load_flickr30k(path: str | Path, layout: str, n_concepts: int, images_dir: str | Path = "") -> Flickr30K:
    """Read a local Flickr30K copy in `layout` ('karpathy' | 'scan') from folder `path`.

    images_dir (karpathy only): the JPEG folder; '' = <path>/flickr30k-images.
    n_concepts: size K of the concept vocabulary.
    """
    path = Path(path).expanduser()
    if layout == "karpathy":
        captions, sources, identity = _read_karpathy(path, Path(images_dir) if images_dir else path / KARPATHY_IMAGES)
    elif layout == "scan":
        captions, sources, identity = _read_scan(path)
    else:
        raise ValueError(f"unknown Flickr30K layout {layout!r}; allowed: {FLICKR30K_LAYOUTS}")
    concepts = caption_word_concepts((c for image in captions["train"] for c in image), n_concepts)
    kind = "images" if layout == "karpathy" else "regions"
    splits = {name: Flickr30KSplit(split_captions, main_concepts(split_captions, concepts), **{kind: sources[name]})
              for name, split_captions in captions.items()}
    payload = json.dumps({"version": LOADER_VERSION, "layout": layout, "captions": captions, "files": identity})
    fingerprint = hashlib.sha256(payload.encode()).hexdigest()[:16]
    log.info("Flickr30K (%s) from %s: %s images, %d concepts", layout, path,
             ", ".join(f"{name} {len(s)}" for name, s in splits.items()), len(concepts))
    return Flickr30K(splits, concepts, fingerprint)


def _stat_identity(file: Path) -> list:
    stat = file.stat()
    return [file.name, stat.st_size, stat.st_mtime_ns]


# --------------------------------------------------------------------------- karpathy


def _read_karpathy(path: Path, images_dir: Path) -> tuple[dict, dict, list]:
    """Captions per split, JpegImages per split and the files' identity, from Karpathy's JSON."""
    file = path / KARPATHY_JSON
    if not file.is_file():
        raise Flickr30KError(f"{file}: not found; the karpathy layout expects Karpathy's split file "
                             f"{KARPATHY_JSON} in flickr30k-path, holding {KARPATHY_EXPECTED}")
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Flickr30KError(f"{file}: not valid JSON ({error}); expected {KARPATHY_EXPECTED}") from None
    entries = record.get("images") if isinstance(record, dict) else None
    if not isinstance(entries, list):
        raise Flickr30KError(f"{file}: no top-level 'images' list; expected {KARPATHY_EXPECTED}")
    captions: dict[str, list] = {"train": [], "val": [], "test": []}
    paths: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for n, entry in enumerate(entries):
        problem = _karpathy_entry_problem(entry)
        if problem:
            raise Flickr30KError(f"{file}: images[{n}] {problem}; expected {KARPATHY_EXPECTED}")
        split = KARPATHY_SPLITS[entry["split"]]
        captions[split].append([s["raw"] for s in entry["sentences"][:CAPTIONS_PER_IMAGE]])
        paths[split].append(images_dir / entry["filename"])
    for split in ("train", "test"):
        if not captions[split]:
            raise Flickr30KError(f"{file}: no image has split '{split}'; expected train and test images")
    if not captions["val"]:
        del captions["val"], paths["val"]
    missing = [p for split_paths in paths.values() for p in split_paths if not p.is_file()]
    if missing:
        raise Flickr30KError(f"{images_dir}: {len(missing)} JPEG file(s) that {file} lists are missing "
                             f"(first: {missing[0].name}); expected every listed image in this folder "
                             "(flickr30k-images, default <flickr30k-path>/flickr30k-images)")
    identity = [_stat_identity(file)] + [_stat_identity(p) for split_paths in paths.values() for p in split_paths]
    return captions, {split: JpegImages(p) for split, p in paths.items()}, identity


def _karpathy_entry_problem(entry: object) -> str | None:
    """What is wrong with one entry of Karpathy's 'images' list (None if nothing)."""
    if not isinstance(entry, dict):
        return "is not an object"
    if not isinstance(entry.get("filename"), str):
        return "has no 'filename' string"
    if entry.get("split") not in KARPATHY_SPLITS:
        return f"has split {entry.get('split')!r}, not one of {tuple(KARPATHY_SPLITS)}"
    sentences = entry.get("sentences")
    if not isinstance(sentences, list):
        return "has no 'sentences' list"
    if len(sentences) < CAPTIONS_PER_IMAGE:
        return f"has {len(sentences)} sentences, fewer than {CAPTIONS_PER_IMAGE}"
    if not all(isinstance(s, dict) and isinstance(s.get("raw"), str) for s in sentences[:CAPTIONS_PER_IMAGE]):
        return "has a sentence without a 'raw' caption string"
    return None


# --------------------------------------------------------------------------- scan


def _read_scan(path: Path) -> tuple[dict, dict, list]:
    """Captions per split, memory-mapped regions per split and the files' identity, from SCAN's files."""
    captions, regions, identity = {}, {}, []
    for name, split in SCAN_SPLITS.items():
        ims, caps = path / f"{name}_ims.npy", path / f"{name}_caps.txt"
        if name in SCAN_OPTIONAL and not ims.exists() and not caps.exists():
            continue
        regions[split] = _open_regions(ims, caps)
        captions[split] = _read_captions(caps, ims, len(regions[split]))
        identity += [_stat_identity(ims), list(regions[split].shape), str(regions[split].dtype)]
    shapes = {split: r.shape[1:] for split, r in regions.items()}
    if len(set(shapes.values())) > 1:
        raise Flickr30KError(f"{path}: the splits' region features differ in shape (R, D) {shapes}; "
                             "expected one precomputed encoder for every split")
    return captions, regions, identity


def _open_regions(ims: Path, caps: Path) -> np.ndarray:
    """{split}_ims.npy memory-mapped: float [N, R, D] with N, R, D >= 1."""
    expected = f"a float array [N, R, D] (SCAN: N x 36 x 2048) whose image i has the captions on lines 5i..5i+4 of {caps.name}"
    if not ims.is_file():
        raise Flickr30KError(f"{ims}: not found; the scan layout expects {expected}")
    try:
        regions = np.load(ims, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise Flickr30KError(f"{ims}: not a readable .npy array ({error}); expected {expected}") from None
    if regions.ndim != 3 or min(regions.shape) < 1 or not np.issubdtype(regions.dtype, np.floating):
        raise Flickr30KError(f"{ims}: holds {regions.dtype} {list(regions.shape)}; expected {expected}")
    return regions


def _read_captions(caps: Path, ims: Path, n_images: int) -> list[list[str]]:
    """{split}_caps.txt: exactly 5N lines -> N lists of 5 captions (caption j of image i on line 5i + j)."""
    expected = f"{CAPTIONS_PER_IMAGE} x {n_images} = {CAPTIONS_PER_IMAGE * n_images} lines ({n_images} images in {ims.name}; caption j of image i on line 5i+j)"
    if not caps.is_file():
        raise Flickr30KError(f"{caps}: not found; the scan layout expects {expected}")
    try:
        lines = caps.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise Flickr30KError(f"{caps}: not UTF-8 text ({error}); expected {expected}") from None
    if len(lines) != CAPTIONS_PER_IMAGE * n_images:
        raise Flickr30KError(f"{caps}: {len(lines)} lines; expected {expected}")
    return [[line.strip() for line in lines[i:i + CAPTIONS_PER_IMAGE]]
            for i in range(0, len(lines), CAPTIONS_PER_IMAGE)]
