"""What only a text run checks in its config (the text task's checks, semfed.tasks): the channel against
the registry, no compressed updates; on this machine, that the corpus gives every device a sentence.
ValueError naming the key; the config turns it into a ConfigError."""

from __future__ import annotations

from typing import Any

from semfed.channels import CHANNELS


def check_text(cfg: Any) -> None:
    """The channel is registered; updates are sent whole (compression covers retrieval runs only)."""
    if cfg.text_channel not in CHANNELS:
        raise ValueError(f"text-channel: {cfg.text_channel!r} is not one of {tuple(CHANNELS)}")
    if cfg.compression.active:
        raise ValueError("update-compression: compressed updates cover retrieval runs only; set it to 'none'")


def check_text_corpus(cfg: Any) -> None:
    """Each of text-devices gets at least one training sentence from text-corpus (read here)."""
    from semfed.text.data import corpus_sentences

    sentences = corpus_sentences(cfg)
    if len(sentences.train) < cfg.text_devices:
        raise ValueError(f"text-devices: {cfg.text_devices} devices need at least as many training sentences; "
                         f"the corpus gives {len(sentences.train)}")
