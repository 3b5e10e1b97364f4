"""The embedded default dataset "scenes": synthetic image-caption retrieval, no downloads.

Each image shows 1-8 coloured shapes on a tinted, lightly noisy background; like
Flickr30K, every image has exactly five captions. Shapes and colours recur across
images, so a caption only identifies its image through the combination of colours,
sizes and spatial relations it states. Everything is a deterministic function of a
:class:`SceneSpec`; :func:`load_scenes` caches the generated data on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from semfed.data.dataset import CAPTIONS_PER_IMAGE, CaptionedSplit
from semfed.data.scene_vocabulary import SCENE_CONCEPTS, Concept

logger = logging.getLogger("semfed.data.scenes")

#: Bump whenever generated content changes, so cached folders are not reused.
GENERATOR_VERSION = "1"
SPLITS = ("train", "val", "test")

_SYNONYMS = {c.name: c.synonyms for c in SCENE_CONCEPTS}
SHAPES = tuple(c.name for c in SCENE_CONCEPTS if c.category == "shape")
COLOURS = tuple(c.name for c in SCENE_CONCEPTS if c.category == "colour")
SIZES = tuple(c.name for c in SCENE_CONCEPTS if c.category == "size")
OBJECT_ATTRIBUTES = (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES))  # what each object dict holds

#: Nominal RGB per colour; each object adds a uniform jitter of +-COLOUR_JITTER per channel.
COLOUR_RGB = {
    "red": (215, 35, 35),
    "green": (40, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (240, 215, 30),
    "purple": (135, 45, 175),
    "orange": (245, 135, 20),
    "white": (245, 245, 245),
}
COLOUR_JITTER = 15
#: Object diameter (of its circumscribed circle) as a fraction of the image side.
SIZE_FRACTION = {"small": (0.12, 0.18), "large": (0.25, 0.35)}
#: A relation is only stated when the box centres differ by at least this many pixels.
MIN_RELATION_GAP = 2.0
_PLACEMENT_TRIES = 100
_COUNT_WORDS = {1: "one object", 2: "two objects", 3: "three objects"}


def _regular_polygon(n_vertices: int, radii: tuple[float, ...] = (1.0,)) -> np.ndarray:
    """Vertices [n, 2] of a star/regular polygon with a vertex pointing up (image y grows down)."""
    angles = -math.pi / 2 + 2 * math.pi * np.arange(n_vertices) / n_vertices
    r = np.resize(np.asarray(radii), n_vertices)
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


_W = 0.35  # half-width of a cross arm, in units of the circumradius
#: Unit-circumradius outlines [k, 2] (x, y) of every non-circle shape, centred at the origin.
_UNIT_POLYGONS = {
    "square": _regular_polygon(4) @ np.array([[math.cos(math.pi / 4), -math.sin(math.pi / 4)],
                                              [math.sin(math.pi / 4), math.cos(math.pi / 4)]]),
    "triangle": _regular_polygon(3),
    "star": _regular_polygon(10, (1.0, 0.45)),
    "hexagon": _regular_polygon(6),
    "cross": np.array([(-_W, -1), (_W, -1), (_W, -_W), (1, -_W), (1, _W), (_W, _W),
                       (_W, 1), (-_W, 1), (-_W, _W), (-1, _W), (-1, -_W), (-_W, -_W)]) / math.hypot(1, _W),
}


@dataclass(frozen=True)
class SceneSpec:
    """Everything that determines the generated dataset.

    Attributes:
        seed: root seed (>= 0); each split uses its own child seed.
        n_train, n_val, n_test: number of images per split (>= 1).
        image_size: side S of the square RGB images in pixels (>= 32).
        min_objects, max_objects: objects per image, drawn uniformly (1 <= min <= max <= 8).
    """

    seed: int = 0
    n_train: int = 2000
    n_val: int = 200
    n_test: int = 1000
    image_size: int = 128
    min_objects: int = 2
    max_objects: int = 5

    def __post_init__(self) -> None:
        bounds = {
            "seed": (0, None),
            "n_train": (1, None),
            "n_val": (1, None),
            "n_test": (1, None),
            "image_size": (32, None),
            "min_objects": (1, 8),
            "max_objects": (self.min_objects, 8),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
            if not ok or (high is not None and value > high):
                allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"SceneSpec.{name} must be an int {allowed}, got {value!r}")


@dataclass(eq=False)
class SceneSplit(CaptionedSplit):
    """One split of N images.

    Attributes:
        images: uint8 [N, S, S, 3] RGB.
        boxes: N arrays float32 [n_i, 4], tight (x0, y0, x1, y1) pixel boxes of the drawn
            objects, x1/y1 exclusive, in drawing order (later objects may cover earlier ones).
        objects: N lists of n_i dicts {"shape", "colour", "size"} holding concept names,
            aligned with ``boxes``; no two objects of an image share shape and colour.
        captions: N lists of exactly 5 captions.
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    objects: list[list[dict[str, str]]]
    captions: list[list[str]]

    def main_classes(self) -> np.ndarray:
        """Class of each image for non-IID partitioning: the shape of its largest object. [N] int."""
        shapes = sorted({o["shape"] for objs in self.objects for o in objs})
        out = []
        for objs, boxes in zip(self.objects, self.boxes):
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            out.append(shapes.index(objs[int(np.argmax(areas))]["shape"]))
        return np.asarray(out)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SceneSplit):
            return NotImplemented
        return (
            self.images.dtype == other.images.dtype
            and np.array_equal(self.images, other.images)
            and len(self.boxes) == len(other.boxes)
            and all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(self.boxes, other.boxes))
            and self.objects == other.objects
            and self.captions == other.captions
        )


@dataclass
class Scenes:
    """The generated dataset: splits "train", "val", "test" plus its vocabulary and identity."""

    splits: dict[str, SceneSplit]
    concepts: tuple[Concept, ...]
    fingerprint: str
    spec: SceneSpec


def scenes_fingerprint(spec: SceneSpec) -> str:
    """First 16 hex chars of the sha256 of the spec fields and :data:`GENERATOR_VERSION`."""
    payload = json.dumps({"generator_version": GENERATOR_VERSION, **asdict(spec)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def generate_scenes(spec: SceneSpec) -> Scenes:
    """Generate all splits; deterministic in ``spec``, each split from its own child seed."""
    counts = {"train": spec.n_train, "val": spec.n_val, "test": spec.n_test}
    seeds = np.random.SeedSequence(spec.seed).spawn(len(SPLITS))
    logger.info("generating %d scene images of %d px (seed %d)",
                sum(counts.values()), spec.image_size, spec.seed)
    start = time.perf_counter()
    splits = {
        name: _generate_split(np.random.default_rng(seed), counts[name], spec)
        for name, seed in zip(SPLITS, seeds)
    }
    logger.info("generated scenes in %.1f s", time.perf_counter() - start)
    return Scenes(splits, SCENE_CONCEPTS, scenes_fingerprint(spec), spec)


def load_scenes(root: Path, spec: SceneSpec = SceneSpec()) -> Scenes:
    """Load the dataset for ``spec`` from ``root / "scenes-<fingerprint>"``, generating it first if absent.

    Loaded images are read-only memory maps, so processes that only need captions stay small.

    The folder holds ``spec.json``, ``concepts.json`` and per split ``<split>/images.npy`` and
    ``<split>/annotations.json``; it is written to a temporary folder and renamed into place.
    """
    root = Path(root)
    fingerprint = scenes_fingerprint(spec)
    folder = root / f"scenes-{fingerprint}"
    if folder.is_dir():
        logger.info("loading cached scenes from %s", folder)
        return _read(folder, spec, fingerprint)
    scenes = generate_scenes(spec)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
    try:
        _write(scenes, tmp)
        os.replace(tmp, folder)
    except OSError:
        if not folder.is_dir():  # otherwise a concurrent writer won the race with identical data
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("cached scenes in %s", folder)
    return scenes


def relation_between(box_a: np.ndarray, box_b: np.ndarray) -> str | None:
    """Relation name r such that "a r b" holds for the centres of two xyxy boxes, or None.

    The dominant axis decides: left/right when |dx| >= |dy|, otherwise above/below (image
    y grows downwards). None when both centre offsets are below :data:`MIN_RELATION_GAP`.
    """
    dx = (box_a[0] + box_a[2] - box_b[0] - box_b[2]) / 2
    dy = (box_a[1] + box_a[3] - box_b[1] - box_b[3]) / 2
    if max(abs(dx), abs(dy)) < MIN_RELATION_GAP:
        return None
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


# --------------------------------------------------------------------------- images


def _generate_split(rng: np.random.Generator, n_images: int, spec: SceneSpec) -> SceneSplit:
    size = spec.image_size
    images = np.empty((n_images, size, size, 3), dtype=np.uint8)
    boxes, objects, captions = [], [], []
    for i in range(n_images):
        images[i], scene_boxes, scene_objects = _draw_scene(rng, spec)
        boxes.append(scene_boxes)
        objects.append(scene_objects)
        captions.append(_caption_scene(rng, scene_objects, scene_boxes))
    return SceneSplit(images, boxes, objects, captions)


def _draw_scene(rng: np.random.Generator, spec: SceneSpec
                ) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """One image uint8 [S, S, 3], its boxes float32 [n, 4] and its object descriptions."""
    s = spec.image_size
    n_objects = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    tint = np.round(rng.uniform(60, 150) + rng.uniform(-25, 25, size=3)).astype(np.int16)
    noise = rng.integers(-10, 11, size=(s, s, 3), dtype=np.int16)
    image = (tint + noise).astype(np.uint8)  # values stay within [25, 185]
    kinds = rng.choice(len(SHAPES) * len(COLOURS), size=n_objects, replace=False)
    boxes = np.empty((n_objects, 4), dtype=np.float32)
    objects, placed = [], []
    for k, kind in enumerate(kinds):
        obj = {"shape": SHAPES[kind // len(COLOURS)], "colour": COLOURS[kind % len(COLOURS)],
               "size": SIZES[rng.integers(len(SIZES))]}
        radius = 0.5 * s * rng.uniform(*SIZE_FRACTION[obj["size"]])
        centre = _place(rng, radius, placed, s)
        placed.append((centre, radius))
        mask, x0, y0 = _shape_mask(obj["shape"], centre, radius, rng.uniform(-15, 15), s)
        jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
        image[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][mask] = np.clip(
            np.array(COLOUR_RGB[obj["colour"]]) + jitter, 0, 255)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes[k] = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
        objects.append(obj)
    return image, boxes, objects


def _place(rng: np.random.Generator, radius: float, placed: list, size: int) -> np.ndarray:
    """Centre (x, y) keeping the object inside the image and away from ``placed`` objects.

    Rejection sampling: accept the first candidate whose distance to every placed centre is
    at least the sum of circumradii (no overlap); after a bounded number of tries take the
    candidate with the largest separation relative to that sum.
    """
    best, best_score = None, -math.inf
    for _ in range(_PLACEMENT_TRIES):
        candidate = rng.uniform(radius + 1, size - radius - 1, size=2)
        score = min((np.hypot(*(candidate - c)) / (radius + r) for c, r in placed), default=math.inf)
        if score >= 1.0:
            return candidate
        if score > best_score:
            best, best_score = candidate, score
    return best


def _shape_mask(shape: str, centre: np.ndarray, radius: float, angle_deg: float, size: int
                ) -> tuple[np.ndarray, int, int]:
    """Rasterise one shape with circumradius ``radius`` px, rotated by ``angle_deg``.

    Returns:
        A boolean mask [h, w] of the window around the shape (clipped to the S x S image)
        and the window's top-left pixel (x0, y0).
    """
    x0, y0 = np.maximum(np.floor(centre - radius).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(centre + radius).astype(int) + 2, size)
    mask = Image.new("L", (int(x1 - x0), int(y1 - y0)), 0)
    draw = ImageDraw.Draw(mask)
    centre = centre - (x0, y0)
    cx, cy = centre
    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    else:
        a = math.radians(angle_deg)
        rotation = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        points = _UNIT_POLYGONS[shape] @ rotation * radius + centre
        draw.polygon([tuple(p) for p in points], fill=255)
    return np.asarray(mask) > 0, int(x0), int(y0)


# --------------------------------------------------------------------------- captions


def _caption_scene(rng: np.random.Generator, objects: list[dict[str, str]], boxes: np.ndarray) -> list[str]:
    """Five captions, true of the scene; 3 or 4 of them state a relation when one can be stated."""
    n = len(objects)
    pairs = [(a, b, rel) for a in range(n) for b in range(n)
             if a != b and (rel := relation_between(boxes[a], boxes[b])) is not None]
    n_relational = int(rng.integers(3, 5)) if pairs else 0
    captions: list[str] = []
    for j in range(CAPTIONS_PER_IMAGE):
        for _ in range(20):  # prefer five distinct captions
            if j < n_relational:
                caption = _relational_caption(rng, objects, pairs)
            else:
                caption = _listing_caption(rng, objects)
            if caption not in captions:
                break
        captions.append(caption)
    return [captions[k] for k in rng.permutation(CAPTIONS_PER_IMAGE)]


def _relational_caption(rng: np.random.Generator, objects: list[dict[str, str]], pairs: list) -> str:
    """E.g. "there is a small red circle to the left of a big blue box; also a violet star"."""
    a, b, relation = pairs[rng.integers(len(pairs))]
    subject, relation, reference = _phrase(rng, objects[a]), _pick(rng, relation), _phrase(rng, objects[b])
    others = [k for k in range(len(objects)) if k not in (a, b)]
    tail, n_mentioned = "", 2
    if others and rng.random() < 0.3:
        tail, n_mentioned = f"; also {_phrase(rng, objects[others[rng.integers(len(others))]])}", 3
    frames = _frames(f"{subject} {relation} {reference}{tail}", n_mentioned, len(objects), there="is")
    frames.append(f"{subject} is {relation} {reference}{tail}")
    return frames[rng.integers(len(frames))]


def _listing_caption(rng: np.random.Generator, objects: list[dict[str, str]]) -> str:
    """E.g. "a green hexagon, a tiny white cross and a golden triangle"."""
    k = int(rng.integers(1, min(3, len(objects)) + 1))
    phrases = [_phrase(rng, objects[i]) for i in rng.choice(len(objects), size=k, replace=False)]
    body = phrases[0] if k == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    frames = _frames(body, k, len(objects), there="is" if k == 1 else "are")
    return frames[rng.integers(len(frames))]


def _frames(body: str, n_mentioned: int, n_objects: int, there: str) -> list[str]:
    """Ways to wrap a caption body; the count prefix only when the body mentions every object."""
    frames = [body, f"there {there} {body}", f"a picture of {body}"]
    if n_mentioned == n_objects and n_objects in _COUNT_WORDS:
        frames.append(f"{_COUNT_WORDS[n_objects]}: {body}")
    return frames


def _phrase(rng: np.random.Generator, obj: dict[str, str]) -> str:
    """Noun phrase "a [size] colour shape" with random synonyms; size is named 70% of the time."""
    words = [_pick(rng, obj["colour"]), _pick(rng, obj["shape"])]
    if rng.random() < 0.7:
        words.insert(0, _pick(rng, obj["size"]))
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def _pick(rng: np.random.Generator, concept: str) -> str:
    synonyms = _SYNONYMS[concept]
    return synonyms[rng.integers(len(synonyms))]


# --------------------------------------------------------------------------- disk cache


def _write(scenes: Scenes, folder: Path) -> None:
    spec_record = {"generator_version": GENERATOR_VERSION, "fingerprint": scenes.fingerprint,
                   **asdict(scenes.spec)}
    (folder / "spec.json").write_text(json.dumps(spec_record, indent=2))
    (folder / "concepts.json").write_text(json.dumps([asdict(c) for c in scenes.concepts], indent=2))
    for name, split in scenes.splits.items():
        (folder / name).mkdir()
        np.save(folder / name / "images.npy", split.images)
        annotations = {"boxes": [b.tolist() for b in split.boxes], "objects": split.objects,
                       "captions": split.captions}
        (folder / name / "annotations.json").write_text(json.dumps(annotations))


def _read(folder: Path, spec: SceneSpec, fingerprint: str) -> Scenes:
    records = json.loads((folder / "concepts.json").read_text())
    concepts = tuple(Concept(r["name"], r["category"], tuple(r["synonyms"])) for r in records)
    splits = {}
    for name in SPLITS:
        annotations = json.loads((folder / name / "annotations.json").read_text())
        boxes = [np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in annotations["boxes"]]
        splits[name] = SceneSplit(np.load(folder / name / "images.npy", mmap_mode="r"), boxes,
                                  annotations["objects"], annotations["captions"])
    return Scenes(splits, concepts, fingerprint, spec)
