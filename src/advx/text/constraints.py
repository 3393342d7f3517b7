"""Constraints: what keeps a text attack honest (meaning kept, edits small).

A constraint has two hooks, both optional:

* :meth:`Constraint.allowed` (before transforming): the word positions that may still be
  changed in the current sentence (None: no restriction). Stop words, positions already
  changed, an exhausted word budget are expressed here and cost nothing.
* :meth:`Constraint.keep` (after transforming): which candidates pass. Edit distance,
  word-embedding distance, sentence similarity live here.

Constraints never query the attacked model; the sentence-similarity constraint runs its
own encoder (MiniLM), which is not charged as a query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Protocol

from advx.errors import InputError
from advx.text.sentence import Sentence

if TYPE_CHECKING:
    from torch import Tensor

    from advx.text.embeddings import WordEmbeddings
    from advx.text.wordnet import WordNet


class SentenceEncoder(Protocol):
    """What :class:`SentenceSimilarity` needs of an encoder (:class:`MiniLMEncoder` is one)."""

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Embeddings ``(N, d)``, unit length, of ``texts``."""
        ...


@lru_cache(maxsize=1)
def default_stopwords() -> frozenset[str]:
    """The bundled English stop-word list (``advx/text/stopwords.txt``), lower case."""
    raw = resources.files("advx.text").joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(
        w.strip().lower() for w in raw.splitlines() if w.strip() and not w.startswith("#")
    )


@lru_cache(maxsize=65536)
def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1).

    Example:
        >>> levenshtein("kitten", "sitting")
        3
    """
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def changed_positions(c: Sentence, ref: Sentence) -> list[int]:
    """Positions where ``c`` and ``ref`` (same word count) differ."""
    return [i for i, (a, b) in enumerate(zip(c.words, ref.words, strict=True)) if a != b]


class Constraint:
    """Base class; see the module docstring. Subclasses override one or both hooks."""

    def allowed(self, s: Sentence, original: Sentence) -> set[int] | None:
        """Word positions of ``s`` that may be changed next (None: all)."""
        return None

    def keep(
        self, candidates: Sequence[Sentence], current: Sentence, original: Sentence
    ) -> list[bool]:
        """One bool per candidate (a one-word change of ``current``): True if it passes."""
        return [True] * len(candidates)


def allowed_positions(
    constraints: Iterable[Constraint], s: Sentence, original: Sentence
) -> list[int]:
    """Positions every constraint allows, in order."""
    ok = set(range(len(s)))
    for c in constraints:
        a = c.allowed(s, original)
        if a is not None:
            ok &= a
    return sorted(ok)


def apply(
    constraints: Iterable[Constraint],
    candidates: Sequence[Sentence],
    current: Sentence,
    original: Sentence,
) -> list[Sentence]:
    """The candidates passing every constraint (each constraint sees only the survivors
    of the previous ones, so put cheap constraints first)."""
    out = list(candidates)
    for c in constraints:
        if not out:
            break
        mask = c.keep(out, current, original)
        out = [x for x, k in zip(out, mask, strict=True) if k]
    return out


# ------------------------------------------------------------------- pre-transformation
@dataclass(frozen=True)
class NoRepeat(Constraint):
    """Each word position is modified at most once (no edits on top of edits)."""

    def allowed(self, s: Sentence, original: Sentence) -> set[int] | None:
        return set(range(len(s))) - set(s.changed)


@dataclass(frozen=True)
class StopwordsUntouched(Constraint):
    """Stop words of the original sentence are never changed.

    Args:
        stopwords: lower-case words (default: the bundled list, :func:`default_stopwords`,
            which includes negations so their meaning-reversing removal is impossible).
    """

    stopwords: frozenset[str] | None = None

    def allowed(self, s: Sentence, original: Sentence) -> set[int] | None:
        stop = self.stopwords if self.stopwords is not None else default_stopwords()
        return {i for i, w in enumerate(original.words) if w.lower() not in stop}


@dataclass(frozen=True)
class MaxWordsChanged(Constraint):
    """At most a share (or a number) of the sentence's words may differ from the original.

    The budget for an ``n``-word sentence is ``max(1, floor(share * n))`` words (one word
    may always change), and at most ``count`` if given; with both, the smaller.

    Args:
        share: fraction of words in (0, 1].
        count: absolute number of words >= 1.
    """

    share: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if self.share is None and self.count is None:
            raise InputError("MaxWordsChanged needs share= or count=")
        if self.share is not None and not 0 < self.share <= 1:
            raise InputError(f"share must be in (0, 1], got {self.share}")
        if self.count is not None and self.count < 1:
            raise InputError(f"count must be >= 1, got {self.count}")

    def budget(self, n_words: int) -> int:
        """Words that may change in an ``n_words``-word sentence."""
        b = n_words
        if self.share is not None:
            b = min(b, max(1, int(self.share * n_words + 1e-9)))
        if self.count is not None:
            b = min(b, self.count)
        return b

    def allowed(self, s: Sentence, original: Sentence) -> set[int] | None:
        if s.diff_count(original) >= self.budget(len(original)):
            return set()
        return None

    def keep(
        self, candidates: Sequence[Sentence], current: Sentence, original: Sentence
    ) -> list[bool]:
        b = self.budget(len(original))
        return [c.diff_count(original) <= b for c in candidates]


# ------------------------------------------------------------------ post-transformation
@dataclass(frozen=True)
class MaxEditDistance(Constraint):
    """Character edit distance (Levenshtein) between original and new words.

    Args:
        per_word: the most any one word may move (None: no limit).
        total: the most all changed words together may move (DeepWordBug: 30).
    """

    per_word: int | None = None
    total: int | None = None

    def keep(
        self, candidates: Sequence[Sentence], current: Sentence, original: Sentence
    ) -> list[bool]:
        out = []
        for c in candidates:
            d = [levenshtein(original.words[i], c.words[i]) for i in changed_positions(c, original)]
            ok = (self.per_word is None or all(x <= self.per_word for x in d)) and (
                self.total is None or sum(d) <= self.total
            )
            out.append(ok)
        return out


@dataclass(frozen=True)
class WordEmbeddingCosine(Constraint):
    """Each new word must be within a cosine distance of the word it replaced, in a word
    embedding space (words outside the space are rejected).

    Args:
        space: the embedding space.
        min_cos: cosine floor (TextAttack's HotFlip recipe: 0.8 in counter-fitted space).
    """

    space: WordEmbeddings = field(compare=False)
    min_cos: float = 0.5

    def keep(
        self, candidates: Sequence[Sentence], current: Sentence, original: Sentence
    ) -> list[bool]:
        out = []
        for c in candidates:
            ok = True
            for i in changed_positions(c, original):
                cos = self.space.cosine(original.words[i], c.words[i])
                ok = ok and cos is not None and cos >= self.min_cos
            out.append(ok)
        return out


@dataclass(frozen=True)
class SamePartOfSpeech(Constraint):
    """The new word must share a part of speech with the old one, as far as WordNet
    knows both (a context-free stand-in for the POS tagger of TextFooler/PWWS: it
    rejects e.g. a noun for an adjective but cannot tell which sense the context uses).
    Words WordNet does not know (function words, slang) are not judged."""

    wordnet: WordNet | None = field(default=None, compare=False)

    def keep(
        self, candidates: Sequence[Sentence], current: Sentence, original: Sentence
    ) -> list[bool]:
        from advx.text.wordnet import WordNet

        wn = self.wordnet or WordNet.default()
        out = []
        for c in candidates:
            ok = True
            for i in changed_positions(c, current):
                a = wn.parts_of_speech(current.words[i])
                b = wn.parts_of_speech(c.words[i])
                ok = ok and (not a or not b or bool(a & b))
            out.append(ok)
        return out


@dataclass(frozen=True)
class NotAntonym(Constraint):
    """Reject a new word that WordNet lists as an antonym of the old one (embedding
    neighbours include antonyms: ``good``/``bad``; counter-fitted vectors, which
    TextFooler uses, were built to push them apart)."""

    wordnet: WordNet | None = field(default=None, compare=False)

    def keep(
        self, candidates: Sequence[Sentence], current: Sentence, original: Sentence
    ) -> list[bool]:
        from advx.text.wordnet import WordNet

        wn = self.wordnet or WordNet.default()
        out = []
        for c in candidates:
            ok = True
            for i in changed_positions(c, original):
                old, new = original.words[i].lower(), c.words[i].lower()
                ok = ok and new not in wn.antonyms(old) and old not in wn.antonyms(new)
            out.append(ok)
        return out


@dataclass(frozen=True)
class SentenceSimilarity(Constraint):
    """Cosine similarity of sentence embeddings between the original and the candidate
    must be at least ``min_cos`` (TextFooler uses the Universal Sentence Encoder; advx
    uses all-MiniLM-L6-v2, which runs offline).

    Args:
        min_cos: similarity floor in [-1, 1] (TextFooler's released code: 0.7 on a window).
        window: compare only ``window`` words around the word being changed (TextFooler:
            15), or the whole sentences when None.
        skip_short: do not check texts of at most ``window`` words (TextFooler's
            released code and TextAttack's ``skip_text_shorter_than_window``; default
            False: every text is checked on the whole sentence).
        encoder: the sentence encoder, any object with ``encode(texts) -> (N, d)`` unit
            embeddings (default :meth:`MiniLMEncoder.default`).
    """

    min_cos: float = 0.8
    window: int | None = None
    skip_short: bool = False
    encoder: SentenceEncoder | None = field(default=None, compare=False)

    def keep(
        self, candidates: Sequence[Sentence], current: Sentence, original: Sentence
    ) -> list[bool]:
        from advx.text.minilm import MiniLMEncoder

        if not candidates:
            return []
        if self.skip_short and self.window is not None and len(original) <= self.window:
            return [True] * len(candidates)
        enc = self.encoder or MiniLMEncoder.default()
        pairs = []
        for c in candidates:
            where = changed_positions(c, current) or [0]
            pairs.append((self._span(original, where[0]), self._span(c, where[0])))
        emb = enc.encode([t for pair in pairs for t in pair])  # (2K, d)
        cos = (emb[0::2] * emb[1::2]).sum(dim=1)
        return [bool(v >= self.min_cos - 1e-6) for v in cos]

    def _span(self, s: Sentence, i: int) -> str:
        if self.window is None or len(s) <= self.window:
            return s.text
        half = self.window // 2
        lo = max(0, min(i - half, len(s) - self.window))
        return " ".join(s.words[lo : lo + self.window])


def describe(c: Constraint) -> str:
    """A short description for reports, e.g. ``MaxWordsChanged(share=0.15)``."""
    from dataclasses import fields, is_dataclass

    if not is_dataclass(c):
        return type(c).__name__
    parts = [
        f"{f.name}={getattr(c, f.name)!r}"
        for f in fields(c)
        if f.compare and getattr(c, f.name) is not None and f.name != "stopwords"
    ]
    return f"{type(c).__name__}({', '.join(parts)})"
