import io
import math
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from semfed import channels as ch
from semfed.data.image_folder import (
    DEFAULT_IMAGES,
    center_crops,
    crops_avoiding,
    held_out_tile_count,
    held_out_tiles,
    holdout_split,
    image_sizes,
    load_images,
    random_crops,
    tiles,
)
from semfed.jscc import AttentionEncoder, build_decoder, psnr
from semfed.jscc.frameworks import (
    decoder_loss,
    evaluate_decoder,
    train_decoder_against_anchor,
    train_iterative,
    train_simultaneous,
    train_stage1,
    transmit,
)
from semfed.jscc.separation import FAILURE_GREY, separation_baseline

TINY = {"width": 8, "num_blocks": 2}
RATIO = 1 / 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def default_images():
    return load_images(None)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _encoder() -> AttentionEncoder:
    torch.manual_seed(0)
    return AttentionEncoder(RATIO, **TINY)


def _decoders(*names: str) -> list[torch.nn.Module]:
    torch.manual_seed(1)
    return [build_decoder(name, latent_channels=16, **TINY) for name in names]


def _batches(n: int, seed: int = 3, size: int = 32) -> list[torch.Tensor]:
    gen = _gen(seed)
    return [torch.rand(4, 3, size, size, generator=gen) for _ in range(n)]


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.items())


def _params_changed(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(not torch.equal(p, state[k]) for k, p in module.named_parameters())


# --- images ---------------------------------------------------------------------------

def test_default_images_load_offline_as_rgb_uint8(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    images = load_images(None)
    assert len(images) == len(DEFAULT_IMAGES) == len(load_images(""))
    for image in images:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 256
    camera = images[DEFAULT_IMAGES.index("camera")]  # a grey image, repeated into three channels
    assert np.array_equal(camera[..., 0], camera[..., 1]) and np.array_equal(camera[..., 0], camera[..., 2])


def test_crops_have_shape_range_and_follow_the_seed(default_images):
    crops = random_crops(default_images, 6, 48, _gen(0))
    assert crops.shape == (6, 3, 48, 48) and crops.dtype == torch.float32
    assert crops.min() >= 0 and crops.max() <= 1 and crops.std() > 0.01
    assert torch.equal(crops, random_crops(default_images, 6, 48, _gen(0)))
    assert not torch.equal(crops, random_crops(default_images, 6, 48, _gen(1)))
    centre = center_crops(default_images, 64)
    assert centre.shape == (len(DEFAULT_IMAGES), 3, 64, 64)
    astronaut = default_images[0]
    assert torch.equal(centre[0], torch.from_numpy(astronaut[224:288, 224:288]).permute(2, 0, 1).float() / 255)


def test_crops_skip_small_images_and_fail_when_none_fit():
    small, large = np.zeros((20, 30, 3), np.uint8), np.full((40, 40, 3), 255, np.uint8)
    assert (random_crops([small, large], 5, 32, _gen(0)) == 1).all()  # only the large image fits
    assert center_crops([small, large], 32).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="no image is at least 64x64"):
        random_crops([small, large], 2, 64, _gen(0))
    with pytest.raises(ValueError, match="64x64"):
        center_crops([small], 64)


def test_holdout_split_and_tiles_by_hand():
    image = np.zeros((50, 70, 3), np.uint8)
    image[40:] = 255  # round(0.2 * 50) = 10 bottom rows held out
    kept, held = holdout_split([image, image[:9]], 0.2)
    assert [k.shape[0] for k in kept] == [40, 7] and [h.shape[0] for h in held] == [10, 2]  # 9 rows: round(1.8) = 2
    assert (kept[0] == 0).all() and (held[0] == 255).all()
    assert [k.shape[0] for k in holdout_split([image], 0.0)[0]] == [50]
    with pytest.raises(ValueError, match="held-out fraction"):
        holdout_split([image], 1.0)
    grid = np.arange(40 * 70, dtype=np.uint8).reshape(40, 70)[:, :, None].repeat(3, axis=2)
    cut = tiles([grid, image[:9]], 16)  # 40 x 70: 2 rows x 4 columns of 16-px tiles, row-major; 9 rows: none
    assert cut.shape == (8, 3, 16, 16)
    assert torch.equal(cut[5], torch.from_numpy(grid[16:32, 16:32]).permute(2, 0, 1).float() / 255)


def test_holdout_keeps_training_crops_off_the_evaluation_band():
    from semfed.config import load_config
    from semfed.jscc.federation import evaluation_crops, training_batches

    image = np.zeros((80, 96, 3), np.uint8)
    image[60:] = 255  # jscc-holdout 0.25: rows 60-79 held out
    cfg = load_config(task="jscc", jscc_crop_size=16, jscc_batch_size=8, jscc_steps_per_round=25, jscc_holdout=0.25)
    batches = training_batches(cfg, [image], _gen(0), "cpu")
    assert len(batches) == 25 and max(b.max().item() for b in batches) == 0  # 200 crops, none from the band
    assert torch.equal(evaluation_crops(cfg, [image]), torch.ones(6, 3, 16, 16))  # 20 rows x 96: 1 x 6 tiles
    without = cfg.replace(jscc_holdout=0.0)
    assert max(b.max().item() for b in training_batches(without, [image], _gen(0), "cpu")) == 1
    assert torch.equal(evaluation_crops(without, [image]), center_crops([image], 16))


def test_held_out_tiles_by_hand():
    # 16 px tiles: a 40 x 70 image has 2 x 4 = 8, a 64 x 48 one 4 x 3 = 12, a 10 x 90 one none;
    # 0.3 of the fewest (8) rounds to 2 tiles from every image with a tile
    assert held_out_tile_count([(40, 70), (64, 48), (10, 90)], 0.3, 16) == 2
    images = [np.zeros((40, 70, 3), np.uint8), np.zeros((64, 48, 3), np.uint8), np.zeros((10, 90, 3), np.uint8)]
    corners = held_out_tiles(images, 0.3, 16)
    assert [c.shape for c in corners] == [(2, 2), (2, 2), (0, 2)]
    for at, (rows, cols) in zip(corners[:2], [(2, 4), (4, 3)]):
        assert (at % 16 == 0).all() and len({tuple(c) for c in at.tolist()}) == 2
        assert (at[:, 0] < rows * 16).all() and (at[:, 1] < cols * 16).all()
    # drawn by the image's index, not by any run seed: the same tiles again, and without the third image
    # (the same count) the same tiles of the first two
    assert all(np.array_equal(a, b) for a, b in zip(corners, held_out_tiles(images, 0.3, 16)))
    assert all(np.array_equal(a, b) for a, b in zip(corners, held_out_tiles(images[:2], 0.3, 16)))


def test_crops_avoiding_never_touch_a_held_out_tile_and_reach_across_tile_borders():
    image = np.zeros((64, 64, 3), np.uint8)
    corners = [np.array([[16, 16], [32, 48]])]  # two white 16 px tiles; every crop must miss both
    for top, left in corners[0]:
        image[top:top + 16, left:left + 16] = 255
    crops = crops_avoiding([image], corners, 400, 16, _gen(0))
    assert crops.shape == (400, 3, 16, 16) and crops.max() == 0
    # each pixel marked with its index (red: index % 256, green: index // 256), so a crop's top-left pixel
    # gives its position: positions off the 16 px grid are drawn (a crop may straddle tile borders), and none
    # overlaps a held-out tile
    marked = np.arange(64 * 64, dtype=np.int64).reshape(64, 64)
    marked_rgb = np.stack([marked % 256, marked // 256, np.zeros_like(marked)], axis=2).astype(np.uint8)
    first = crops_avoiding([marked_rgb], corners, 200, 16, _gen(1))
    tops_lefts = [divmod(int(round(c[0, 0, 0].item() * 255)) + 256 * int(round(c[1, 0, 0].item() * 255)), 64)
                  for c in first]
    assert any(top % 16 or left % 16 for top, left in tops_lefts)
    for top, left in tops_lefts:  # none overlaps tile (16, 16) or (32, 48)
        assert not (top < 32 and top + 16 > 16 and left < 32 and left + 16 > 16)
        assert not (top < 48 and top + 16 > 32 and left < 64 and left + 16 > 48)
    assert torch.equal(first, crops_avoiding([marked_rgb], corners, 200, 16, _gen(1)))  # the generator fixes them
    with pytest.raises(ValueError, match="no image has room for a 16x16 crop"):
        crops_avoiding([image[:16, :32]], [np.array([[0, 0], [0, 16]])], 3, 16, _gen(0))


def test_tiles_layout_scores_exactly_the_held_out_tiles_and_trains_around_them():
    from semfed.config import load_config
    from semfed.jscc.federation import evaluation_crops, training_batches

    image = np.zeros((64, 96, 3), np.uint8)  # 4 x 6 tiles of 16 px; 0.25 of 24: 6 held out
    cfg = load_config(task="jscc", jscc_crop_size=16, jscc_batch_size=8, jscc_steps_per_round=25, jscc_holdout=0.25,
                      jscc_holdout_layout="tiles")
    for top, left in held_out_tiles([image], 0.25, 16)[0]:
        image[top:top + 16, left:left + 16] = 255
    assert torch.equal(evaluation_crops(cfg, [image]), torch.ones(6, 3, 16, 16))
    assert max(b.max().item() for b in training_batches(cfg, [image], _gen(0), "cpu")) == 0


def test_folder_of_pngs_and_jpeg_loads_sorted_as_rgb(tmp_path):
    rows, cols = np.mgrid[0:40, 0:50]
    rgb = np.stack([rows * 6, cols * 5, (rows + cols) * 2], axis=2).astype(np.uint8)  # smooth: JPEG keeps it
    grey = np.arange(48 * 36, dtype=np.uint8).reshape(48, 36)
    Image.fromarray(rgb).save(tmp_path / "b.png")
    Image.fromarray(grey).save(tmp_path / "a.PNG")
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_images(str(tmp_path))
    assert [im.shape for im in images] == [(48, 36, 3), (40, 50, 3), (40, 50, 3)]
    assert np.array_equal(images[0], np.repeat(grey[:, :, None], 3, axis=2))
    assert np.array_equal(images[1], rgb)  # PNG is lossless
    assert np.abs(images[2].astype(int) - rgb).mean() < 3  # JPEG is close


def test_bad_folders_and_files_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        load_images(str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="empty.*holds no"):
        load_images(str(empty))
    (empty / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_images(str(empty))
    with pytest.raises(ValueError, match="broken.png"):
        image_sizes(str(empty))


def test_image_sizes_read_the_headers_only(tmp_path):
    """The config check's sizes: a PNG whose pixel data is cut off still has its size (load_images would
    fail on it), in load_images' order; the bundled default's sizes are its images' shapes."""
    Image.new("RGB", (30, 20)).save(tmp_path / "b.png")
    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(whole)
    (tmp_path / "a.png").write_bytes(whole.read_bytes()[:200])  # the header and a little of the data
    whole.unlink()
    assert image_sizes(str(tmp_path)) == [(90, 70), (20, 30)]
    with pytest.raises(ValueError, match="a.png"):
        load_images(str(tmp_path))
    assert image_sizes(None) == [image.shape[:2] for image in load_images(None)]


# --- training frameworks ---------------------------------------------------------------

def test_transmit_is_seeded_and_loss_is_mse():
    enc, (dec,) = _encoder(), _decoders("attention")
    x = _batches(1)[0]
    a, b = transmit(enc, x, 7.0, "rayleigh", _gen(5)), transmit(enc, x, 7.0, "rayleigh", _gen(5))
    assert a.shape == (4, 2 * ch.bandwidth_symbols((3, 32, 32), RATIO)) and torch.equal(a, b)
    received = transmit(enc, x, 7.0, "awgn", _gen(6))
    expected = torch.nn.functional.mse_loss(dec(received, 7.0, image_size=(32, 32)), x)
    assert torch.allclose(decoder_loss(enc, dec, x, 7.0, "awgn", _gen(6)), expected)


def test_stage2_keeps_the_anchor_bit_identical_and_trains_the_decoder():
    enc, (dec,) = _encoder(), _decoders("resnet")
    enc_before, dec_before = _state(enc), _state(dec)
    losses = train_decoder_against_anchor(enc, dec, _batches(3), generator=_gen(0), lr=1e-3)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert _equal(_state(enc), enc_before)
    assert all(p.grad is None and not p.requires_grad for p in enc.parameters())
    assert _params_changed(dec, dec_before)
    train_stage1(enc, dec, _batches(1), generator=_gen(0), lr=1e-3)  # a later joint stage unfreezes it
    assert _params_changed(enc, enc_before)


def test_stage1_changes_encoder_and_decoder_and_is_reproducible():
    runs = []
    for _ in range(2):
        enc, (dec,) = _encoder(), _decoders("attention")
        enc_before, dec_before = _state(enc), _state(dec)
        losses = train_stage1(enc, dec, _batches(3), generator=_gen(0), channel="rayleigh",
                              channel_options={"block": False}, lr=1e-3)
        assert _params_changed(enc, enc_before) and _params_changed(dec, dec_before)
        runs.append((losses, _state(enc)))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(v, runs[1][1][k]) for k, v in runs[0][1].items())


def test_iterative_touches_each_decoder_only_in_its_own_round():
    enc, decoders = _encoder(), _decoders("conv", "resnet", "vgg")
    snapshots = []

    def batches():  # record every model before each step; the last record follows the last step
        for images in [*_batches(8), None]:
            snapshots.append((_state(enc), [_state(d) for d in decoders]))
            if images is not None:
                yield images

    losses = train_iterative(enc, decoders, batches(), steps_per_round=2, generator=_gen(0), lr=1e-3)
    assert len(losses) == 8
    for step in range(8):
        (enc_before, before), (enc_after, after) = snapshots[step], snapshots[step + 1]
        changed = [i for i in range(3) if not _equal(before[i], after[i])]
        assert changed == [(step // 2) % 3], step  # rounds of 2 steps: conv, resnet, vgg, conv
        assert not _equal(enc_before, enc_after)
    with pytest.raises(ValueError, match="steps_per_round"):
        train_iterative(enc, decoders, _batches(1), steps_per_round=0, generator=_gen(0))


def test_simultaneous_changes_every_decoder_and_the_encoder():
    enc, decoders = _encoder(), _decoders("attention", "conv", "vgg")
    enc_before, before = _state(enc), [_state(d) for d in decoders]
    losses = train_simultaneous(enc, decoders, _batches(2), generator=_gen(0), lr=1e-3)
    assert len(losses) == 2
    assert _params_changed(enc, enc_before)
    assert all(_params_changed(d, s) for d, s in zip(decoders, before))
    with pytest.raises(ValueError, match="at least one decoder"):
        train_simultaneous(enc, [], _batches(1), generator=_gen(0))


def test_stage1_learns_to_reconstruct(default_images):
    enc, (dec,) = _encoder(), _decoders("attention")
    fixed = random_crops(default_images, 8, 32, _gen(1))

    def loss() -> float:
        with torch.no_grad():
            return decoder_loss(enc, dec, fixed, 7.0, "awgn", _gen(2)).item()

    before = loss()
    gen = _gen(0)
    batches = [random_crops(default_images, 8, 32, gen) for _ in range(40)]
    train_stage1(enc, dec, batches, generator=gen, lr=3e-3)
    assert loss() < 0.6 * before


def test_evaluate_decoder_reports_mean_psnr_and_ms_ssim():
    enc, (dec,) = _encoder(), _decoders("conv")
    x = _batches(1, size=48)[0]
    scores = evaluate_decoder(enc, dec, x, 10.0, "awgn", _gen(7), batch_size=3)
    restored = dec(transmit(enc, x, 10.0, "awgn", _gen(7)), 10.0, image_size=(48, 48))
    assert scores["psnr"] == pytest.approx(psnr(restored, x).mean().item(), abs=1e-4)
    assert 0 < scores["ms_ssim"] < 1 and set(scores) == {"psnr", "ms_ssim"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_frameworks_follow_the_images_device():
    enc, decoders = _encoder().cuda(), [d.cuda() for d in _decoders("attention", "resnet")]
    batches = [b.cuda() for b in _batches(2, size=48)]
    train_simultaneous(enc, decoders, batches, generator=_gen(0), channel="rayleigh", lr=1e-3)
    train_decoder_against_anchor(enc, decoders[1], batches, generator=_gen(0), lr=1e-3)
    scores = evaluate_decoder(enc, decoders[1], batches[0], 10.0, "awgn", _gen(1))
    assert all(p.is_cuda for p in enc.parameters()) and math.isfinite(scores["psnr"])


# --- separation baseline -----------------------------------------------------------------

def test_separation_baseline_has_a_cliff_and_respects_the_bit_budget(default_images):
    image = center_crops(default_images, 128)[DEFAULT_IMAGES.index("chelsea")]
    pixels = image.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    ratio, k = 1 / 12, ch.bandwidth_symbols((3, 128, 128), 1 / 12)
    qualities, scores = [], []
    for snr in (-5.0, 0.0, 4.0, 7.0, 10.0, 13.0, 20.0):
        restored, quality = separation_baseline(image, ratio, snr)
        assert restored.shape == image.shape
        if quality:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
            assert 8 * len(buffer.getvalue()) <= k * ch.channel_capacity_bits(snr)
        qualities.append(quality)
        scores.append(psnr(restored[None], image[None]).item())
    assert qualities[0] == 0 and qualities[-1] > 50
    assert qualities == sorted(qualities) and len(set(qualities)) >= 4
    assert (separation_baseline(image, ratio, -5.0)[0] == FAILURE_GREY).all()
    constant = psnr(torch.full_like(image, FAILURE_GREY)[None], image[None]).item()
    assert scores[0] == pytest.approx(constant) and scores[-1] > constant + 10
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        separation_baseline(image[None], ratio, 10.0)
