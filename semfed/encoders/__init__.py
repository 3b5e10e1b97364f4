"""Frozen pretrained encoders (detector regions, transformer tokens) and their on-disk feature cache."""

from .feature_cache import cached_features, encode_images, encode_texts, feature_key
from .regions import RegionEncoder
from .tokens import TokenEncoder

__all__ = [
    "RegionEncoder",
    "TokenEncoder",
    "cached_features",
    "encode_images",
    "encode_texts",
    "feature_key",
]
