"""Seed 003's semantic metrics of text (its Table I): BLEU from sacrebleu and sentence similarity, the
cosine of a frozen BERT-family encoder's sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from sacrebleu.metrics import BLEU


def bleu(hypotheses: Sequence[str], references: Sequence[str], max_order: int) -> float:
    """Corpus BLEU-`max_order` of the received sentences against the sent ones, in [0, 1] (sacrebleu's
    13a tokenisation, no smoothing; one reference per sentence)."""
    scorer = BLEU(max_ngram_order=max_order, smooth_method="none")
    return scorer.corpus_score(list(hypotheses), [list(references)]).score / 100.0


class SentenceSimilarity:
    """Seed 003's sentence similarity: cosine of `encoder`'s (a semfed.encoders.tokens.TokenEncoder)
    L2-normalised sentence embeddings, so identical sentences score 1. Each distinct sentence is embedded
    once and remembered: a trained codec mostly returns sentences already seen."""

    def __init__(self, encoder, batch: int = 256):
        self.encoder, self.batch = encoder, batch
        self.embeddings: dict[str, torch.Tensor] = {}

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """[N, dim] embeddings of `texts` (new distinct ones computed in batches)."""
        new = sorted(set(texts) - set(self.embeddings))
        for lo in range(0, len(new), self.batch):
            chunk = new[lo:lo + self.batch]
            self.embeddings.update(zip(chunk, self.encoder.sentence_embedding(chunk).cpu()))
        return torch.stack([self.embeddings[t] for t in texts])

    def __call__(self, hypotheses: Sequence[str], references: Sequence[str]) -> torch.Tensor:
        """[N] cosine similarity of each received sentence with the sent one."""
        if not references:
            return torch.zeros(0)
        return (self.embed(hypotheses) * self.embed(references)).sum(dim=-1)
