"""Semantic knowledge base (SKB): the concept space shared by every user and the receiver.

K concepts with names, categories, synonyms, unit embeddings [K, d] from a frozen text
encoder (d is the dimension of every transmitted token), and relations between concepts.
Its version is a hash of all of that, so server and clients can check they hold the same SKB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from semfed.data.caption_vocabulary import WORD_CATEGORY
from semfed.data.scene_vocabulary import Concept, concepts_in_text
from semfed.encoders.feature_cache import cached_features, feature_key


@dataclass(frozen=True)
class SemanticKnowledgeBase:
    concepts: tuple[Concept, ...]
    embeddings: torch.Tensor  # [K, d] unit rows
    relations: tuple[tuple[int, str, int], ...]  # (concept i, relation, concept j)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    @property
    def version(self) -> str:
        """16 hex chars of sha256 over concepts, relations and embedding bytes."""
        digest = hashlib.sha256(repr((self.concepts, self.relations)).encode())
        digest.update(self.embeddings.float().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def labels(self, texts: list[str]) -> torch.Tensor:
        """Multi-hot concept labels [len(texts), K] float: which concepts each text names."""
        out = torch.zeros(len(texts), len(self.concepts))
        for row, text in enumerate(texts):
            out[row, concepts_in_text(text, self.concepts)] = 1.0
        return out


def concept_relations(concepts: tuple[Concept, ...]) -> tuple[tuple[int, str, int], ...]:
    """'alternative' links concepts of one category (a red thing is not also blue): (i, 'alternative', j), i < j.
    Words counted from captions (WORD_CATEGORY) have no known alternatives."""
    return tuple((i, "alternative", j) for i, a in enumerate(concepts) for j, b in enumerate(concepts)
                 if i < j and a.category == b.category != WORD_CATEGORY)


def load_skb(cache_dir: Path, concepts: tuple[Concept, ...], text_encoder: str, device: str = "cpu") -> SemanticKnowledgeBase:
    """Build the SKB by embedding concept names with a frozen text encoder; cached on disk by content."""
    key = feature_key({"kind": "skb", "name": text_encoder, "concepts": [c.name for c in concepts]}, "skb", "concepts")

    def compute() -> dict[str, torch.Tensor]:
        from semfed.encoders.tokens import TokenEncoder

        encoder = TokenEncoder(text_encoder, max_tokens=8, device=device)
        return {"embeddings": encoder.sentence_embedding([c.name for c in concepts]).cpu()}

    embeddings = cached_features(Path(cache_dir), key, compute)["embeddings"].float()
    return SemanticKnowledgeBase(tuple(concepts), embeddings, concept_relations(tuple(concepts)))
