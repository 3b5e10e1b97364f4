"""Vocabulary of the synthetic "scenes" dataset: shapes, colours, sizes and relations.

Every concept has a canonical name and a tuple of synonyms (the name first). Captions
are written with randomly chosen synonyms; :func:`concepts_in_text` maps free text back
to concept indices, which lets tests and analyses check which concepts a caption names.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

CATEGORIES = ("shape", "colour", "size", "relation")


@dataclass(frozen=True)
class Concept:
    """One visual concept.

    Attributes:
        name: canonical name, e.g. ``"left"`` or ``"red"``.
        category: one of :data:`CATEGORIES`.
        synonyms: lower-case surface forms, ``name`` (or its phrase) first; may be multi-word.
    """

    name: str
    category: str
    synonyms: tuple[str, ...]


SCENE_CONCEPTS: tuple[Concept, ...] = (
    Concept("circle", "shape", ("circle", "disc")),
    Concept("square", "shape", ("square", "box")),
    Concept("triangle", "shape", ("triangle",)),
    Concept("star", "shape", ("star",)),
    Concept("cross", "shape", ("cross", "plus sign")),
    Concept("hexagon", "shape", ("hexagon",)),
    Concept("red", "colour", ("red", "crimson", "scarlet")),
    Concept("green", "colour", ("green", "emerald")),
    Concept("blue", "colour", ("blue", "azure")),
    Concept("yellow", "colour", ("yellow", "golden")),
    Concept("purple", "colour", ("purple", "violet")),
    Concept("orange", "colour", ("orange", "amber")),
    Concept("white", "colour", ("white", "ivory")),
    Concept("small", "size", ("small", "little", "tiny")),
    Concept("large", "size", ("large", "big")),
    Concept("left", "relation", ("left of", "to the left of")),
    Concept("right", "relation", ("right of", "to the right of")),
    Concept("above", "relation", ("above", "over")),
    Concept("below", "relation", ("below", "under", "beneath")),
)


@functools.lru_cache(maxsize=8)
def _matcher(concepts: tuple[Concept, ...]) -> tuple[re.Pattern[str], dict[str, int]]:
    """Compile one whole-word regex over all synonyms, longest first, plus synonym -> index."""
    index = {syn: i for i, concept in enumerate(concepts) for syn in concept.synonyms}
    ordered = sorted(index, key=len, reverse=True)
    alternatives = (r"\s+".join(map(re.escape, syn.split())) for syn in ordered)
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b"), index


def concept_spans(text: str, concepts: Sequence[Concept] = SCENE_CONCEPTS) -> list[tuple[int, int, int]]:
    """Concept mentions in ``text`` in reading order.

    Matching is case-insensitive, on whole words; multi-word synonyms match as phrases and
    the longest synonym wins at each position (so "to the left of" is one mention of left).

    Returns:
        ``[(start, end, concept_index), ...]`` character offsets into ``text.lower()``, left to right.
    """
    pattern, index = _matcher(tuple(concepts))
    return [
        (m.start(), m.end(), index[" ".join(m.group().split())])
        for m in pattern.finditer(text.lower())
    ]


def concepts_in_text(text: str, concepts: Sequence[Concept] = SCENE_CONCEPTS) -> list[int]:
    """Sorted unique indices into ``concepts`` of every concept mentioned in ``text``."""
    return sorted({i for _, _, i in concept_spans(text, concepts)})
