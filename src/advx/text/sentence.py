"""A sentence as the text attacks see it: words with the exact text between them.

Attacks change one word at a time and must give back text that reads exactly like the
input everywhere else (punctuation, spacing, hashtags, URLs). :class:`Sentence` keeps the
words and the ``gaps`` between them, so ``Sentence.parse(t).text == t`` always holds and a
replacement touches only its word. It also remembers which word positions were modified,
which is what the constraints and the word-change budget look at.

Words are runs of letters/digits, with inner apostrophes (``don't``); URLs and
``@mentions`` are kept in the gaps and never attacked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property

from advx.errors import InputError

_WORD = r"[^\W_]+(?:['\u2019][^\W_]+)*"
_TOKEN = re.compile(rf"(https?://\S+|www\.\S+|@\w+)|({_WORD})")
_ONE_WORD = re.compile(_WORD)


def is_word(s: str) -> bool:
    """True when ``s`` is exactly one attackable word (letters/digits, inner apostrophes),
    i.e. a replacement that keeps the sentence's word count."""
    return bool(_ONE_WORD.fullmatch(s))


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """Validate a list of non-empty strings (one text per example) and return it as a list.

    Raises :class:`~advx.errors.InputError` for a bare string, a non-string item or an
    empty/blank text, saying which item is wrong.
    """
    if isinstance(texts, str):
        raise InputError(f"{what} must be a list of strings, got one string; wrap it: [text]")
    if not isinstance(texts, Iterable):
        raise InputError(f"{what} must be a list of strings, got {type(texts).__name__}")
    out = list(texts)
    if not out:
        raise InputError(f"{what} is empty; give at least one text")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InputError(f"{what}[{i}] must be a str, got {type(t).__name__}")
        if not t.strip():
            raise InputError(f"{what}[{i}] is empty or blank; text attacks need words to change")
    return out


@dataclass(frozen=True)
class Sentence:
    """Words of a text, the gaps between them, and the positions modified so far.

    Attributes:
        words: the attackable words, in order.
        gaps: ``len(words) + 1`` strings: text before the first word, between words, and
            after the last one; ``text`` is ``gaps[0] + words[0] + gaps[1] + ...``.
        changed: word positions modified relative to the original sentence.

    Example:
        >>> s = Sentence.parse("I love this car!")
        >>> s.words
        ('I', 'love', 'this', 'car')
        >>> s.replace(1, "adore").text
        'I adore this car!'
    """

    words: tuple[str, ...]
    gaps: tuple[str, ...]
    changed: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str) -> Sentence:
        """Split ``text`` into words and gaps (lossless: ``parse(t).text == t``)."""
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}")
        words: list[str] = []
        gaps: list[str] = []
        pos = 0
        for m in _TOKEN.finditer(text):
            if m.group(2) is None:  # URL or @mention: part of the gap
                continue
            gaps.append(text[pos : m.start()])
            words.append(m.group(2))
            pos = m.end()
        gaps.append(text[pos:])
        return cls(tuple(words), tuple(gaps))

    @cached_property
    def text(self) -> str:
        """The sentence as a string (computed once)."""
        parts = [self.gaps[0]]
        for w, g in zip(self.words, self.gaps[1:], strict=True):
            parts.append(w)
            parts.append(g)
        return "".join(parts)

    def __len__(self) -> int:
        return len(self.words)

    def replace(self, index: int, word: str) -> Sentence:
        """A copy with word ``index`` replaced by ``word`` (marked as changed)."""
        if not 0 <= index < len(self.words):
            raise InputError(f"word index {index} out of range for {len(self.words)} words")
        if not word:
            raise InputError("a replacement word must not be empty")
        words = list(self.words)
        words[index] = word
        return replace(self, words=tuple(words), changed=self.changed | {index})

    def with_word(self, index: int, word: str) -> str:
        """The text with word ``index`` replaced by ``word`` (which may be empty: the word
        is then deleted with one adjacent space). Used to score word importance."""
        words = list(self.words)
        words[index] = word
        gaps = list(self.gaps)
        if not word:
            left, right = gaps[index], gaps[index + 1]
            if left.endswith(" ") and right.startswith(" "):
                gaps[index + 1] = right[1:]
        return Sentence(tuple(words), tuple(gaps)).text

    def diff_count(self, original: Sentence) -> int:
        """Number of word positions whose word differs from ``original``."""
        return sum(a != b for a, b in zip(self.words, original.words, strict=True))

    def lower_words(self) -> tuple[str, ...]:
        """Words lower-cased (for vocabulary and stop-word look-ups)."""
        return tuple(w.lower() for w in self.words)


def match_case(word: str, like: str) -> str:
    """``word`` with the casing pattern of ``like`` (``UPPER``, ``Title`` or as is).

    Example:
        >>> match_case("great", "Good")
        'Great'
    """
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
