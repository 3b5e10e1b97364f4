"""The separation codecs (semfed.jscc.separation.CODECS): what each one counts against the channel,
that each decodes what it sent, and that the cliff sits where those bytes first fit."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from semfed.data.image_folder import DEFAULT_IMAGES, load_images
from semfed.jscc import psnr
from semfed.jscc.cliff import cliff_curve, separation_scores
from semfed.jscc.separation import (
    CODECS,
    Ladder,
    SeparationCodec,
    fit_snr_db,
    jpeg_header_length,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # psnr / ms_ssim on tiny images

GREY = np.full((256, 256, 3), 128, np.uint8)


@pytest.fixture(scope="module")
def photo():
    """An 80 x 56 crop of scikit-image's cat (sides not multiples of the 16-px MCU): uint8 [80, 56, 3]."""
    return np.ascontiguousarray(load_images(None)[DEFAULT_IMAGES.index("chelsea")][110:190, 200:256])


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _marker_segments(data: bytes) -> list[tuple[int, int]]:
    """(marker, bytes with its 2-byte marker) of every segment from SOI to SOS, read by hand."""
    segments, position = [(0xD8, 2)], 2
    while segments[-1][0] != 0xDA:
        assert data[position] == 0xFF
        size = 2 + int.from_bytes(data[position + 2:position + 4], "big")
        segments.append((data[position + 1], size))
        position += size
    return segments


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255


def test_jpeg_payload_of_a_flat_grey_image_is_the_file_without_its_marker_segments():
    whole = _jpeg(GREY, 50)
    # SOI; APP0 JFIF (2 + 16); DQT luma, chroma (2 + 2 + 1 + 64 each); SOF0 (2 + 8 + 3 components x 3);
    # DHT DC, AC luma then chroma (2 + 2 + 1 + 16 + 12 symbols, 2 + 2 + 1 + 16 + 162 symbols); SOS (2 + 6 + 3 x 2)
    assert _marker_segments(whole) == [(0xD8, 2), (0xE0, 18), (0xDB, 69), (0xDB, 69), (0xC0, 19),
                                       (0xC4, 33), (0xC4, 183), (0xC4, 33), (0xC4, 183), (0xDA, 14)]
    header = 2 + 18 + 2 * 69 + 19 + 2 * 33 + 2 * 183 + 14
    assert header == jpeg_header_length(whole) == 623 and whole.endswith(b"\xff\xd9")
    # Grey 128 is Y = Cb = Cr = 128: every DCT coefficient is 0 after the level shift. One 16 x 16 MCU
    # (4:2:0) is 4 luma blocks of DC '00' + EOB '1010' and 2 chroma blocks of DC '00' + EOB '00':
    # 00101000 10100010 10001010 00000000 = 28 a2 8a 00, 4 bytes x 256 MCUs, byte-aligned, no 0xff to stuff.
    entropy_coded = bytes.fromhex("28a28a00") * 256
    assert whole == whole[:header] + entropy_coded + b"\xff\xd9" and len(whole) == 623 + 1024 + 2
    payload = CODECS["jpeg-payload"].encode(GREY, 50)
    assert payload == bytes([50]) + entropy_coded  # one byte names the quality (so the tables), nothing else
    assert len(payload) == len(whole) - header - 2 + 1
    assert CODECS["jpeg"].encode(GREY, 50) == whole
    assert np.array_equal(CODECS["jpeg-payload"].decode(payload, (256, 256)), GREY)


@pytest.mark.parametrize("quality", [1, 37, 95])
def test_jpeg_payload_decodes_exactly_like_the_whole_file(photo, quality):
    whole, payload = CODECS["jpeg"].encode(photo, quality), CODECS["jpeg-payload"].encode(photo, quality)
    assert len(payload) == len(whole) - jpeg_header_length(whole) - 2 + 1
    from_payload = CODECS["jpeg-payload"].decode(payload, photo.shape[:2])
    from_whole = CODECS["jpeg"].decode(whole, photo.shape[:2])
    assert from_payload.shape == photo.shape and np.array_equal(from_payload, from_whole)


def test_webp_is_lossy_vp8_and_grows_with_its_quality(photo):
    webp = CODECS["webp"]
    files = {level: webp.encode(photo, level) for level in (1, 2, 50, 101)}
    for data in files.values():
        assert data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8 "  # lossy VP8 (lossless would be 'VP8L')
    sizes = [len(data) for data in files.values()]
    assert sizes == sorted(sizes) and sizes[0] < sizes[1]  # level 1 = libwebp quality 0, smaller than 1
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="WEBP", quality=0)
    assert files[1] == buffer.getvalue()
    scores = [psnr(_to_tensor(webp.decode(data, photo.shape[:2]))[None], _to_tensor(photo)[None]).item()
              for data in files.values()]
    assert scores == sorted(scores) and scores[-1] > 35


def test_jpeg2000_is_a_codestream_that_meets_its_psnr_target(photo):
    codec = CODECS["jpeg2000"]
    low, high = codec.encode(photo, codec.qualities[0]), codec.encode(photo, 30)
    assert low[:4] == high[:4] == b"\xff\x4f\xff\x51" and len(low) < len(high)  # SOC, SIZ: no JP2 boxes
    assert psnr(_to_tensor(codec.decode(high, photo.shape[:2]))[None], _to_tensor(photo)[None]).item() > 29.5


@pytest.mark.parametrize("codec", ["jpeg", "jpeg-payload"])
def test_the_cliff_sits_where_the_lowest_quality_first_fits(photo, codec):
    image, ratio = _to_tensor(photo), 1 / 12
    smallest = min(len(CODECS[codec].encode(photo, q)) for q in CODECS[codec].qualities)  # q1 or q2 here
    threshold = fit_snr_db(smallest, tuple(image.shape), ratio)
    below = separation_scores(image[None], ratio, threshold - 0.05, codec)
    above = separation_scores(image[None], ratio, threshold + 0.05, codec)
    assert below["failed"] == 1.0 and above["failed"] == 0.0 and 1 <= above["quality"] <= 2
    whole_threshold = fit_snr_db(len(_jpeg(photo, 2)), tuple(image.shape), ratio)
    assert (threshold < whole_threshold - 10) == (codec == "jpeg-payload")


def test_a_registered_codec_is_plotted_and_encodes_each_quality_once(monkeypatch, photo):
    calls = []

    def encode(pixels, quality):
        calls.append(quality)
        return bytes(10 * quality)

    monkeypatch.setitem(CODECS, "toy", SeparationCodec("toy separation", range(1, 6), encode,
                                                       lambda data, shape: np.full((*shape, 3), 20 * len(data) // 10,
                                                                                   np.uint8)))
    image = _to_tensor(photo[:48, :48])  # 576 symbols at ratio 1/12; quality q sends 10 q bytes
    table = cliff_curve(None, {}, image[None], [30.0, -4.4, -10.0, 5.0], 1 / 12, codecs=["toy"]).set_index("snr")
    assert (table["method"] == "toy separation").all() and (table["channel"] == "awgn").all()
    # 576 log2(1 + SNR) bits: 79 at -10 dB (< 80), 257 at -4.4 dB (30 bytes fit, 40 do not), 1186 at 5 dB
    assert table["quality"].to_dict() == {30.0: 5.0, -4.4: 3.0, -10.0: 0.0, 5.0: 5.0}
    assert calls == [5, 4, 3, 2, 1]  # best first, only as far down as needed, each quality once for the sweep
    assert Ladder(image, "toy").send(8 * 30)[0].mul(255).round().eq(60).all()  # exactly fits: quality 3
