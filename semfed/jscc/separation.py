"""Separation baselines (seed 001's cliff effect): an image codec at the channel's capacity.

The channel carries k = semfed.channels.bandwidth_symbols(image shape, ratio) complex symbols,
each worth the Shannon capacity log2(1 + SNR) bits (semfed.channels.channel_capacity_bits).
That idealises the channel code: any encoding within the budget arrives error-free, any over it
cannot be sent. So quality falls in steps with the SNR and collapses below the SNR where even the
codec's lowest quality does not fit, instead of degrading gracefully like D-JSCC.

CODECS (name -> SeparationCodec) says what counts against the budget:
- 'jpeg': the whole JPEG file (Pillow's defaults: baseline, standard Huffman tables, 4:2:0).
  Its marker segments (SOI, APP0, 2 DQT, SOF0, 4 DHT, SOS: 623 bytes at any size, + 2 for EOI)
  set the cliff on small images.
- 'jpeg-payload': what a receiver that already knows the image size and the standard tables
  cannot know in advance: one byte naming the quality (which picks the quantisation tables) and
  the entropy-coded data. The receiver rebuilds the file from the header that quality and size
  give (identical for every image: encode checks it) and decodes it; the decode equals the whole
  file's bit for bit. (Pillow's abbreviated stream, streamtype=2, leaves out only DQT and DHT:
  it still carries SOI, APP0, SOF0, SOS and EOI, 55 bytes more than this payload.)
- 'webp': the whole lossy WebP file (RIFF + VP8 chunk: 30 bytes of headers; Pillow's defaults,
  method 4).
- 'jpeg2000': the whole JPEG 2000 codestream (.j2k, no JP2 boxes; 9/7 irreversible wavelet,
  OpenJPEG's PSNR-targeted rate allocation; its main header is about 150 bytes).
Pillow's PyPI wheels ship WebP and OpenJPEG (PIL.features.check('webp') and
check('jpg_2000') are true in this project's venv); a Pillow built without them fails on encode.

Every codec's quality levels are positive ints, worst first; quality 0 means nothing fitted.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from semfed.channels import bandwidth_symbols, channel_capacity_bits

MAX_JPEG_QUALITY = 95
FAILURE_GREY = 0.5  # what the receiver shows when nothing gets through: constant mid-grey
JPEG_EOI = b"\xff\xd9"


@dataclass(frozen=True)
class SeparationCodec:
    """One source code for the separation baseline.

    label: its method name in the cliff table. qualities: its quality levels, worst first (positive
    ints). encode(pixels uint8 [H, W, 3], quality) -> the bytes that count against the channel's
    budget; decode(those bytes, (H, W)) -> uint8 [H, W, 3] (the receiver knows the image size)."""

    label: str
    qualities: range
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[bytes, tuple[int, int]], np.ndarray]


def channel_bit_budget(image_shape: tuple[int, int, int], bandwidth_ratio: float, snr_db: float) -> float:
    """Bits the channel delivers for one image of shape (C, H, W): k * log2(1 + 10^(SNR/10))."""
    return bandwidth_symbols(image_shape, bandwidth_ratio) * channel_capacity_bits(float(snr_db))


def fit_snr_db(num_bytes: int, image_shape: tuple[int, int, int], bandwidth_ratio: float) -> float:
    """The lowest SNR (dB) at which num_bytes fit the channel of an image of shape (C, H, W):
    10 log10(2^(8 num_bytes / k) - 1)."""
    bits_per_symbol = 8 * num_bytes / bandwidth_symbols(image_shape, bandwidth_ratio)
    return 10 * math.log10(2 ** bits_per_symbol - 1)


def _pixels(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [0, 1] -> uint8 [H, W, 3] (rounded)."""
    return image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _save(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, **options)
    return buffer.getvalue()


def _decode_file(data: bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A whole image file -> uint8 [H, W, 3] (shape unused: the file says it)."""
    with Image.open(io.BytesIO(data)) as received:
        return np.array(received.convert("RGB"))


def _jpeg_bytes(pixels: np.ndarray, quality: int) -> bytes:
    """uint8 [H, W, 3] -> JPEG file bytes at `quality` (Pillow's defaults otherwise)."""
    return _save(pixels, format="JPEG", quality=quality)


def jpeg_header_length(data: bytes) -> int:
    """Bytes of a single-scan JPEG file before its entropy-coded data: SOI and every marker segment
    up to and including SOS. ValueError if data is not a JPEG file."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file: no SOI marker")
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {position}")
        marker = data[position + 1]
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xDA:  # SOS: its header ends here, the entropy-coded data follows
            return position
    raise ValueError("JPEG file without an SOS marker")


@functools.lru_cache(maxsize=512)
def _jpeg_header(quality: int, height: int, width: int) -> bytes:
    """The header every image of this size gets at this quality (encoded from a black image)."""
    data = _jpeg_bytes(np.zeros((height, width, 3), np.uint8), quality)
    return data[:jpeg_header_length(data)]


def _jpeg_payload_encode(pixels: np.ndarray, quality: int) -> bytes:
    """One byte for the quality, then the JPEG file's entropy-coded data (no header, no EOI)."""
    data = _jpeg_bytes(pixels, quality)
    header = _jpeg_header(quality, *pixels.shape[:2])
    if not (data.startswith(header) and data.endswith(JPEG_EOI) and 1 <= quality <= 255):
        raise RuntimeError(f"JPEG header at quality {quality} depends on the image: the payload would not decode")
    return bytes([quality]) + data[len(header):-len(JPEG_EOI)]


def _jpeg_payload_decode(payload: bytes, shape: tuple[int, int]) -> np.ndarray:
    """The receiver's side of 'jpeg-payload': header for (quality, size) + entropy-coded data + EOI."""
    return _decode_file(_jpeg_header(payload[0], *shape) + payload[1:] + JPEG_EOI)


def _webp_encode(pixels: np.ndarray, quality: int) -> bytes:
    return _save(pixels, format="WEBP", quality=quality - 1)


def _jpeg2000_encode(pixels: np.ndarray, quality: int) -> bytes:
    return _save(pixels, format="JPEG2000", no_jp2=True, irreversible=True, quality_mode="dB",
                 quality_layers=[quality])


#: The separation codecs, name -> SeparationCodec (module docstring: what each one counts).
#: Quality levels: JPEG quality 1-95; WebP level 1-101 = libwebp quality 0-100 (level - 1: 0 stays
#: 'nothing fitted', and libwebp's quality 0 is much smaller than 1); JPEG 2000: the PSNR (dB) the
#: rate allocation aims at, 1-50 (below about 15 dB every photo gets the smallest codestream).
CODECS: dict[str, SeparationCodec] = {
    "jpeg": SeparationCodec("JPEG separation (whole file)", range(1, MAX_JPEG_QUALITY + 1), _jpeg_bytes,
                            _decode_file),
    "jpeg-payload": SeparationCodec("JPEG separation (payload)", range(1, MAX_JPEG_QUALITY + 1),
                                    _jpeg_payload_encode, _jpeg_payload_decode),
    "webp": SeparationCodec("WebP separation (whole file)", range(1, 102), _webp_encode, _decode_file),
    "jpeg2000": SeparationCodec("JPEG 2000 separation (whole file)", range(1, 51), _jpeg2000_encode, _decode_file),
}


def _codec(name: str) -> SeparationCodec:
    if name not in CODECS:
        raise ValueError(f"separation codec {name!r} is not one of {tuple(CODECS)}")
    return CODECS[name]


class Ladder:
    """One image under one codec: its encodings, made at most once per quality (best first, only as
    far down as a budget needs), so that a sweep over SNRs encodes each quality once.

    image: [3, H, W] in [0, 1] (rounded to 8 bits)."""

    def __init__(self, image: torch.Tensor, codec: str = "jpeg"):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected one RGB image [3, H, W], got shape {tuple(image.shape)}")
        self.image, self.codec = image, _codec(codec)
        self.pixels = _pixels(image)
        self._encoded: dict[int, bytes] = {}
        self._received: dict[int, torch.Tensor] = {}

    def encoded(self, quality: int) -> bytes:
        """The bytes sent at `quality`."""
        if quality not in self._encoded:
            self._encoded[quality] = self.codec.encode(self.pixels, quality)
        return self._encoded[quality]

    def best_quality(self, budget_bits: float) -> int:
        """The highest quality whose encoding fits budget_bits, or 0. Scans every quality from the
        best down: exact where size is not monotonic in quality (Pillow's sizes dip at times)."""
        return next((q for q in reversed(self.codec.qualities) if 8 * len(self.encoded(q)) <= budget_bits), 0)

    def send(self, budget_bits: float) -> tuple[torch.Tensor, int]:
        """(reconstruction [3, H, W] with the image's dtype and device, quality used). If no quality
        fits the transmission fails: quality 0 and a constant FAILURE_GREY image."""
        quality = self.best_quality(budget_bits)
        if quality == 0:
            return torch.full_like(self.image, FAILURE_GREY), 0
        if quality not in self._received:
            decoded = self.codec.decode(self.encoded(quality), self.pixels.shape[:2])
            restored = torch.from_numpy(decoded).permute(2, 0, 1)
            self._received[quality] = restored.to(device=self.image.device, dtype=self.image.dtype) / 255.0
        return self._received[quality], quality


def separation_baseline(image: torch.Tensor, bandwidth_ratio: float, snr_db: float,
                        codec: str = "jpeg") -> tuple[torch.Tensor, int]:
    """The codec (CODECS; default the whole JPEG file) at the highest quality whose encoding fits
    the channel's bit budget, decoded at the receiver.

    image: [3, H, W] in [0, 1] (rounded to 8 bits). Returns (reconstruction [3, H, W] with image's
    dtype and device, quality used). If no quality fits (not even the lowest) the transmission
    fails: quality 0 and a constant FAILURE_GREY image, so the PSNR is that of a constant image.
    """
    return Ladder(image, codec).send(channel_bit_budget(tuple(image.shape), bandwidth_ratio, snr_db))
