"""A text run's data (task = text): the corpus's sentences, their word pieces as vocabulary ids, and the
frozen text encoder's features of those word pieces, computed once into work-dir/features."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import AutoTokenizer

from semfed.config import SemfedConfig
from semfed.data.features import feature_dir, scene_spec
from semfed.data.scenes import load_scenes
from semfed.encoders.feature_cache import cached_features, encode_in_batches, feature_key
from semfed.encoders.tokens import TokenEncoder, resolve_model_dir
from semfed.text.corpus import FEATURE_BATCH, Sentences, Vocabulary, read_sentences, to_text, word_pieces


@dataclass(frozen=True)
class Split:
    """ids: [N, W] int64 vocabulary ids (PAD after the end); feats: [N, W, F] float16 frozen features of
    the word pieces (zero after the end); references: the N sentences as their W word pieces spell them."""

    ids: Tensor
    feats: Tensor
    references: tuple[str, ...]


@dataclass(frozen=True)
class TextData:
    train: Split
    test: Split
    vocabulary: Vocabulary
    feature_dim: int


def corpus_sentences(cfg: SemfedConfig) -> Sentences:
    """text-corpus's sentences ('' = the scenes' captions: train split to train on, test split to test),
    at most text-train-sentences / text-eval-sentences of them."""
    if cfg.text_corpus:
        train, test = read_sentences(cfg.text_corpus, cfg.seed)
    else:
        scenes = load_scenes(cfg.root / "data", scene_spec(cfg))
        train, test = scenes.splits["train"].flat_captions(), scenes.splits["test"].flat_captions()
    return Sentences(tuple(train[:cfg.text_train_sentences]), tuple(test[:cfg.text_eval_sentences]))


@functools.lru_cache(maxsize=2)
def text_encoder(name: str, words: int) -> TokenEncoder:
    """The frozen text encoder, loaded once per process (only where features are computed or sentences judged)."""
    return TokenEncoder(name, words)


@functools.lru_cache(maxsize=2)
def text_tokenizer(name: str):
    """The frozen text encoder's tokenizer alone: a device with cached features never loads the model."""
    return AutoTokenizer.from_pretrained(resolve_model_dir(name), local_files_only=True)


def load_text_data(cfg: SemfedConfig) -> TextData:
    """The run's sentences as vocabulary ids and frozen features (features cached by encoder and content)."""
    sentences = corpus_sentences(cfg)
    tokenizer = text_tokenizer(cfg.text_encoder)

    def compute(texts: tuple[str, ...], name: str) -> dict[str, Tensor]:
        encoder = text_encoder(cfg.text_encoder, cfg.text_words)
        return encode_in_batches(len(texts), cfg.text_words, encoder.out_dim, lambda lo, hi: encoder.encode(list(texts[lo:hi])),
                                 FEATURE_BATCH, f"{cfg.text_encoder} features of the {name} sentences")

    splits, pieces = {}, {}
    for name, texts in (("train", sentences.train), ("test", sentences.test)):
        pieces[name] = word_pieces(tokenizer, texts, cfg.text_words)
        spec = {"kind": "tokens", "name": cfg.text_encoder, "max_tokens": cfg.text_words}
        key = feature_key(spec, f"text-{sentences.fingerprint}", name)
        splits[name] = cached_features(feature_dir(cfg), key, lambda texts=texts, name=name: compute(texts, name))["feats"]
    vocabulary = Vocabulary(pieces["train"])
    split = {name: Split(vocabulary.encode(pieces[name]), splits[name], tuple(to_text(tokenizer, pieces[name])))
             for name in splits}
    return TextData(split["train"], split["test"], vocabulary, splits["train"].shape[-1])


def shard(cfg: SemfedConfig, train: Split, device_id: int) -> Tensor:
    """Device `device_id`'s training sentences: a seeded, even share of the training split (indices [n])."""
    order = torch.randperm(len(train.ids), generator=torch.Generator().manual_seed(cfg.seed))
    return torch.sort(order.tensor_split(cfg.text_devices)[device_id]).values
