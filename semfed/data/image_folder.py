"""Images for D-JSCC: a folder of PNG/JPEG files, or scikit-image's bundled photos, and crops.

Images are uint8 numpy arrays [H, W, 3] (RGB); crops are float tensors [N, 3, S, S] in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: The embedded default: images scikit-image ships inside its wheel (no download), by name.
#: "motorcycle_left" is the left view of skimage.data.stereo_motorcycle(); grey ones become RGB.
DEFAULT_IMAGES = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "moon", "motorcycle_left", "retina", "rocket")


def _as_rgb(array: np.ndarray) -> np.ndarray:
    """uint8 [H, W] grey or [H, W, 3] RGB -> uint8 [H, W, 3]."""
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array, dtype=np.uint8)


def _default_image(name: str) -> np.ndarray:
    import skimage.data  # imported here: only the embedded default needs scikit-image

    if name == "motorcycle_left":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def decode_image(path: Path) -> np.ndarray:
    """One PNG/JPEG file as uint8 RGB [H, W, 3]; ValueError naming the file if it does not decode."""
    try:
        with Image.open(path) as image:
            return _as_rgb(np.asarray(image.convert("RGB")))
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot decode image file {path}: {error}") from error


def load_images(folder: str | Path | None) -> list[np.ndarray]:
    """Every PNG/JPEG in `folder` (sorted by file name) as uint8 RGB arrays [H, W, 3].

    folder None or "" loads the embedded default (DEFAULT_IMAGES, offline, in that order).
    ValueError naming the folder if it is missing or holds no images, or naming a file
    that does not decode.
    """
    if folder is None or str(folder) == "":
        return [_as_rgb(_default_image(name)) for name in DEFAULT_IMAGES]
    return [decode_image(p) for p in image_files(folder)]


def image_files(folder: str | Path) -> list[Path]:
    """The PNG/JPEG files of `folder`, sorted by name; ValueError naming the folder if it is missing or
    holds none."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist or is not a directory")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} files")
    return files


def image_sizes(folder: str | Path | None) -> list[tuple[int, int]]:
    """(height, width) in pixels of every image load_images(folder) gives, read from the file headers
    only (a config check must not decode a whole dataset); ValueError as load_images, naming a file
    whose header does not read."""
    if folder is None or str(folder) == "":
        return [image.shape[:2] for image in load_images(folder)]
    sizes = []
    for path in image_files(folder):
        try:
            with Image.open(path) as image:
                sizes.append((image.height, image.width))
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"cannot decode image file {path}: {error}") from error
    return sizes


def held_out_rows(height: int, fraction: float) -> int:
    """Rows of an image `height` px tall that holdout_split holds out: round(fraction * height)."""
    return round(fraction * height)


def holdout_split(images: list[np.ndarray], fraction: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each image [H, W, 3] cut in two by rows: the top H - held_out_rows(H) rows to train on, the
    bottom held_out_rows(H) rows held out, so that no held-out pixel is ever trained on.
    fraction in [0, 1); 0 holds nothing out (empty bands of 0 rows)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    cuts = [image.shape[0] - held_out_rows(image.shape[0], fraction) for image in images]
    return [im[:cut] for im, cut in zip(images, cuts)], [im[cut:] for im, cut in zip(images, cuts)]


def held_out_tile_count(sizes: list[tuple[int, int]], fraction: float, tile: int) -> int:
    """Tiles held out of every image with a tile (held_out_tiles): round(fraction * the fewest tiles of an
    image), so that evaluation weighs the images equally, as the training crops do. sizes: (height, width) px."""
    counts = [(height // tile) * (width // tile) for height, width in sizes]
    return round(fraction * min((c for c in counts if c), default=0))


def held_out_tiles(images: list[np.ndarray], fraction: float, size: int) -> list[np.ndarray]:
    """For each image [H, W, 3], the (top, left) px of its held-out size x size tiles [K, 2], int64: K =
    held_out_tile_count of its (H // size) x (W // size) grid of tiles (0 for an image without one), chosen
    uniformly without replacement by a generator seeded with the image's index, so the split is the same for
    every run seed. fraction in [0, 1)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    count = held_out_tile_count([image.shape[:2] for image in images], fraction, size)
    chosen = []
    for index, image in enumerate(images):
        rows, cols = image.shape[0] // size, image.shape[1] // size
        picks = np.sort(np.random.default_rng(index).permutation(rows * cols)[:count])
        tops, lefts = np.divmod(picks, max(cols, 1))
        chosen.append(np.stack([tops * size, lefts * size], axis=1))
    return chosen


def crops_at(images: list[np.ndarray], corners: list[np.ndarray], size: int) -> torch.Tensor:
    """The size x size crop of images[i] at each (top, left) of corners[i] [K_i, 2], in that order ->
    float32 [sum K_i, 3, size, size] in [0, 1]; ValueError if there is none."""
    crops = [image[top:top + size, left:left + size] for image, at in zip(images, corners) for top, left in at]
    if not crops:
        raise ValueError(f"no {size}x{size} tile is held out")
    return _to_tensor(crops)


def crops_avoiding(images: list[np.ndarray], corners: list[np.ndarray], n: int, size: int,
                   generator: torch.Generator) -> torch.Tensor:
    """n random size x size crops none of whose pixels lies in a held-out tile (corners[i]: the (top, left) of
    images[i]'s held-out tiles) -> float32 [n, 3, size, size] in [0, 1] on the CPU. Each crop picks an image
    uniformly among those with room for one, then a position uniformly among its allowed ones, from
    `generator`; ValueError if no image has room."""
    if n < 1:
        raise ValueError(f"number of crops must be >= 1, got {n}")
    allowed = []
    for image, at in zip(images, corners):
        height, width = image.shape[:2]
        if height < size or width < size:
            continue
        held = np.zeros((height + 1, width + 1), np.int64)
        for top, left in at:
            held[top + 1:top + size + 1, left + 1:left + size + 1] = 1
        summed = held.cumsum(0).cumsum(1)  # summed[r, c]: held-out pixels above and left of (r, c)
        window = summed[size:, size:] - summed[:-size, size:] - summed[size:, :-size] + summed[:-size, :-size]
        positions = np.flatnonzero(window == 0)
        if positions.size:
            allowed.append((image, positions, window.shape[1]))
    if not allowed:
        raise ValueError(f"no image has room for a {size}x{size} crop outside its held-out tiles")
    draws = torch.rand(n, 2, generator=generator, device=generator.device, dtype=torch.float64).cpu()
    crops = []
    for pick, where in draws.tolist():
        image, positions, span = allowed[int(pick * len(allowed))]
        top, left = divmod(int(positions[int(where * positions.size)]), span)
        crops.append(image[top:top + size, left:left + size])
    return _to_tensor(crops)


def tiles(images: list[np.ndarray], size: int) -> torch.Tensor:
    """Every non-overlapping size x size tile of every image, row by row from the top left (a remainder
    under size px is dropped) -> float32 [N, 3, size, size] in [0, 1]; ValueError if no image fits one."""
    fitting = _fitting(images, size)
    return _to_tensor([image[top:top + size, left:left + size] for image in fitting
                       for top in range(0, image.shape[0] - size + 1, size)
                       for left in range(0, image.shape[1] - size + 1, size)])


def _fitting(images: list[np.ndarray], size: int) -> list[np.ndarray]:
    if size < 1:
        raise ValueError(f"crop size must be >= 1, got {size}")
    fitting = [im for im in images if im.shape[0] >= size and im.shape[1] >= size]
    if not fitting:
        sides = sorted({min(im.shape[:2]) for im in images})
        raise ValueError(f"no image is at least {size}x{size} px (shorter sides: {sides})")
    return fitting


def _to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    """uint8 [H, W, 3] crops -> float32 [N, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)


def random_crops(images: list[np.ndarray], n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """n random size x size crops -> float32 [n, 3, size, size] in [0, 1] on the CPU.

    Each crop picks an image uniformly among those at least size px on both sides (smaller
    ones are skipped; ValueError if none fit), then a uniform position, all from `generator`.
    """
    fitting = _fitting(images, size)
    if n < 1:
        raise ValueError(f"number of crops must be >= 1, got {n}")
    draws = torch.rand(n, 3, generator=generator, device=generator.device, dtype=torch.float64).cpu()
    crops = []
    for pick, row, col in draws.tolist():
        image = fitting[int(pick * len(fitting))]
        top = int(row * (image.shape[0] - size + 1))
        left = int(col * (image.shape[1] - size + 1))
        crops.append(image[top:top + size, left:left + size])
    return _to_tensor(crops)


def center_crops(images: list[np.ndarray], size: int) -> torch.Tensor:
    """The central size x size crop of every image that fits -> float32 [N, 3, size, size] in [0, 1].

    Images smaller than size are skipped (ValueError if none fit); for evaluation.
    """
    crops = []
    for image in _fitting(images, size):
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        crops.append(image[top:top + size, left:left + size])
    return _to_tensor(crops)


@dataclass(frozen=True)
class HoldoutLayout:
    """Which pixels a held-out fraction of the images keeps from training. training(images, fraction, n, size,
    generator) -> n size-px crops [n, 3, size, size] touching none of them; evaluation(images, fraction, size) ->
    those pixels cut into size-px tiles [N, 3, size, size]."""

    training: Callable[[list[np.ndarray], float, int, int, torch.Generator], torch.Tensor]
    evaluation: Callable[[list[np.ndarray], float, int], torch.Tensor]


HOLDOUT_LAYOUTS = {  # `jscc-holdout-layout`
    "rows": HoldoutLayout(  # each image's bottom band (holdout_split), every tile of it scored
        training=lambda images, fraction, n, size, generator: random_crops(holdout_split(images, fraction)[0], n,
                                                                           size, generator),
        evaluation=lambda images, fraction, size: tiles(holdout_split(images, fraction)[1], size)),
    "tiles": HoldoutLayout(  # the same number of tiles from every image (held_out_tiles)
        training=lambda images, fraction, n, size, generator: crops_avoiding(
            images, held_out_tiles(images, fraction, size), n, size, generator),
        evaluation=lambda images, fraction, size: crops_at(images, held_out_tiles(images, fraction, size), size)),
}
