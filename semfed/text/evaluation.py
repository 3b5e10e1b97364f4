"""The access point's reading of the text codec (task = text): the test sentences sent at every output
dimension of text-output-dims and every SNR of text-eval-snrs, scored by BLEU-1..4, sentence similarity
and word-piece accuracy (seed 003's Fig. 5(b))."""

from __future__ import annotations

import torch

from semfed.config_values import BLEU_ORDERS
from semfed.text.codec import TextCodec
from semfed.text.corpus import PAD, to_text
from semfed.text.data import Split
from semfed.text.metrics import SentenceSimilarity, bleu

EVAL_BATCH = 256  # sentences decoded at once


@torch.no_grad()
def received_ids(codec: TextCodec, feats: torch.Tensor, dim: int, snr_db: float, channel: str,
                 generator: torch.Generator, device: str) -> torch.Tensor:
    """[N, W] vocabulary ids the receiver reads from feats [N, W, F] sent at `dim` over `channel`."""
    codec.eval()
    out = []
    for lo in range(0, len(feats), EVAL_BATCH):
        batch = feats[lo:lo + EVAL_BATCH].to(device)
        dims = torch.full((len(batch),), dim, device=device)
        snr = torch.full((len(batch),), float(snr_db), device=device)
        out.append(codec(batch, dims, snr, channel, generator).argmax(dim=-1).cpu())
    return torch.cat(out)


def evaluate_codec(codec: TextCodec, test: Split, vocabulary, similarity: SentenceSimilarity, dims: tuple[int, ...],
                   snrs: tuple[float, ...], channels: tuple[str, ...], seed: int, device: str) -> list[dict]:
    """One row per (channel, snr, dim): bleu1..bleu4 (corpus BLEU in [0, 1]), similarity (the mean of
    `similarity` over the sentences) and word_accuracy (the share of the sentences' word
    pieces read right, padding excluded). The channel noise comes from a generator seeded by `seed`."""
    rows = []
    words = test.ids != PAD
    for channel in channels:
        for snr in snrs:
            for dim in dims:
                generator = torch.Generator(device=device).manual_seed(seed)
                ids = received_ids(codec, test.feats, dim, snr, channel, generator, device)
                texts = to_text(similarity.encoder.tokenizer, vocabulary.decode(ids))
                row = {"channel": channel, "snr": float(snr), "dim": dim}
                row.update({f"bleu{n}": bleu(texts, test.references, n) for n in BLEU_ORDERS})
                row["similarity"] = similarity(texts, test.references).mean().item()
                row["word_accuracy"] = ((ids == test.ids) & words).sum().item() / max(words.sum().item(), 1)
                rows.append(row)
    return rows
