"""A concept vocabulary counted from captions (for datasets without one, e.g. Flickr30K).

The concepts are the K most frequent content words of the training captions: lower-cased
runs of letters, at least two long, not in :data:`STOP_WORDS`; a word ending in "s" whose
stem also occurs is counted as that stem, with the plural as its synonym ("dogs" -> dog).
Ties are broken alphabetically, so the vocabulary is a deterministic function of the captions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from semfed.data.scene_vocabulary import Concept, concept_spans

#: Category of a concept counted from captions: no known alternatives (see skb.concept_relations).
WORD_CATEGORY = "word"

#: English function words, auxiliaries and pronouns: never concepts.
STOP_WORDS = frozenset("""
a about above across after against along among an and another any are around as at away back be
been before behind being below beneath beside besides between both but by can could did do does
doing down during each either for from front further get gets getting had has have having he her
here hers him his how if in inside into is it its itself just like may me might more most much
my near next nor not of off on one onto or other our out outside over own she should so some
such than that the their theirs them then there these they this those through to too toward
towards under up upon us very was we were what when where which while who whom whose why will
with within without would you your
""".split())

_WORD = re.compile(r"[a-z]+")


def content_words(text: str) -> list[str]:
    """Lower-cased words of `text` that can be concepts (letters only, >= 2 long, not stop words)."""
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOP_WORDS]


def caption_word_concepts(captions: Iterable[str], k: int) -> tuple[Concept, ...]:
    """The k most frequent content words of `captions` as concepts, most frequent first."""
    counts = Counter(w for caption in captions for w in content_words(caption))
    plurals = {w[:-1]: w for w in counts if w.endswith("s") and w[:-1] in counts}
    for stem, plural in plurals.items():
        counts[stem] += counts.pop(plural)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[:k]
    return tuple(Concept(w, WORD_CATEGORY, (w, plurals[w]) if w in plurals else (w,)) for w in ranked)


def main_concepts(captions: Sequence[Sequence[str]], concepts: Sequence[Concept]) -> np.ndarray:
    """[N] int: per image, the concept its captions mention most often (ties: the lower index);
    len(concepts) for an image whose captions name none."""
    out = []
    for image_captions in captions:
        mentions = Counter(i for caption in image_captions for _, _, i in concept_spans(caption, concepts))
        out.append(min(mentions, key=lambda i: (-mentions[i], i)) if mentions else len(concepts))
    return np.asarray(out, dtype=np.int64)
