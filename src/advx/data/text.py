"""A small, documented tokenizer for tweets and a vocabulary that maps tokens to ids.

Tokenizer rules (:func:`tokenize`), applied in this order to the NFKC-normalised,
lower-cased text:

* a URL (``http://…``, ``https://…``, ``www.…``) becomes the single token ``<url>``;
* an @mention (``@united``) becomes ``<user>``: who is addressed says little about the
  sentiment and would otherwise fill the vocabulary with one-off names;
* a word is a run of letters, digits and ``_``, optionally joined by apostrophes, so
  ``don't`` and ``driver's`` stay one token (negation matters for sentiment);
  curly apostrophes are read as ``'``;
* a run of the same punctuation character is one token (``!!!``, ``...``), and every
  other non-space character (``#``, emoji) is a token of its own; the emoji variation
  selector and zero-width joiner are dropped.

So ``"@united Flight delayed AGAIN!!! #fail https://t.co/x 😡"`` becomes
``['<user>', 'flight', 'delayed', 'again', '!!!', '#', 'fail', '<url>', '😡']``.

:class:`Vocab` reserves id 0 for ``<pad>`` and 1 for ``<unk>``; the rest are ordered by
decreasing frequency (ties alphabetically), so a vocabulary is reproducible from its data.
It serialises to a JSON-able dict (no pickle).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from advx.errors import InputError

PAD = "<pad>"
UNK = "<unk>"
URL = "<url>"
USER = "<user>"

_TOKEN = re.compile(
    r"(?P<url>(?:https?://|www\.)\S+)"
    r"|(?P<user>@\w+)"
    r"|(?P<word>\w+(?:'\w+)*)"
    r"|(?P<punct>([^\w\s])\5*)"
)
_DROP = str.maketrans(
    {"\ufe0f": None, "\ufe0e": None, "\u200d": None, "\u2019": "'", "\u2018": "'"}
)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-case tokens (rules in the module docstring).

    Example:
        >>> tokenize("@VirginAmerica I can't believe it... 2 hrs late! http://t.co/abc")
        ['<user>', 'i', "can't", 'believe', 'it', '...', '2', 'hrs', 'late', '!', '<url>']
    """
    if not isinstance(text, str):
        raise InputError(f"tokenize() needs a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).translate(_DROP).lower()
    tokens: list[str] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "url":
            tokens.append(URL)
        elif kind == "user":
            tokens.append(USER)
        else:
            tokens.append(m.group())
    return tokens


class Vocab:
    """Token <-> id mapping with ``<pad>`` = 0 and ``<unk>`` = 1.

    Build one from training texts with :meth:`build`; encode with :meth:`encode` (one
    text) or :meth:`encode_batch` (padded ``LongTensor`` plus lengths, ready for an
    embedding layer or ``pack_padded_sequence``).

    Args:
        tokens: the id-ordered token list; must start with ``<pad>``, ``<unk>``.

    Example:
        >>> v = Vocab.build(["good good movie", "bad movie"], min_freq=1)
        >>> v.encode("good bad film")
        [2, 4, 1]
        >>> v.decode([2, 4, 1, 0])
        ['good', 'bad', '<unk>']
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise InputError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {tokens[:2]}")
        index: dict[str, int] = {}
        for i, t in enumerate(tokens):
            if not isinstance(t, str) or t in index:
                raise InputError(f"vocabulary token {i} ({t!r}) is not a new string")
            index[t] = i
        self._tokens = tuple(tokens)
        self._index = index

    @classmethod
    def build(
        cls,
        texts: Iterable[str | Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Count tokens over ``texts`` (strings are tokenised, lists used as they are).

        Args:
            texts: training texts; never build from test data.
            min_freq: keep tokens seen at least this many times (default 1).
            max_size: maximum vocabulary size *including* ``<pad>`` and ``<unk>``
                (``None``: no limit); the most frequent tokens are kept.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise InputError(f"min_freq must be a positive integer, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < 2):
            raise InputError(f"max_size must be >= 2 (room for {PAD} and {UNK}), got {max_size!r}")
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(tokenize(t) if isinstance(t, str) else t)
        for special in (PAD, UNK):
            counts.pop(special, None)
        ranked = sorted(
            (tok for tok, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD, UNK, *ranked])

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>`` (0)."""
        return 0

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>`` (1)."""
        return 1

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._tokens == other._tokens

    def __hash__(self) -> int:
        return hash(self._tokens)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"

    def id_of(self, token: str) -> int:
        """Id of ``token``, or ``<unk>``'s id if it is not in the vocabulary."""
        return self._index.get(token, 1)

    def token_of(self, i: int) -> str:
        """Token with id ``i``."""
        if not 0 <= i < len(self._tokens):
            raise InputError(f"token id {i} is out of range for a vocabulary of {len(self)}")
        return self._tokens[i]

    def encode(self, text: str | Sequence[str]) -> list[int]:
        """Ids of a text (tokenised with :func:`tokenize`) or of a token list."""
        tokens = tokenize(text) if isinstance(text, str) else text
        return [self._index.get(t, 1) for t in tokens]

    def decode(self, ids: Iterable[int] | Tensor, *, skip_pad: bool = True) -> list[str]:
        """Tokens of ``ids``; ``<pad>`` is skipped unless ``skip_pad=False``."""
        seq = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return [self.token_of(int(i)) for i in seq if not (skip_pad and int(i) == 0)]

    def encode_batch(
        self, texts: Sequence[str | Sequence[str]], *, max_len: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Encode several texts into one right-padded batch.

        Args:
            texts: ``N`` texts (or token lists).
            max_len: truncate each text to at most this many tokens (default: no limit).

        Returns:
            ``ids (N, L)`` int64 padded with ``<pad>`` = 0, where ``L`` is the longest
            encoded length, and ``lengths (N,)`` int64. An empty text is encoded as one
            ``<unk>`` so every length is >= 1 (packed RNN sequences require it).
        """
        if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
            raise InputError(f"max_len must be a positive integer, got {max_len!r}")
        encoded = [self.encode(t)[:max_len] or [1] for t in texts]
        lengths = torch.tensor([len(e) for e in encoded], dtype=torch.int64)  # (N,)
        width = int(lengths.max()) if encoded else 0
        ids = torch.zeros(len(encoded), width, dtype=torch.int64)  # (N, L)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e, dtype=torch.int64)
        return ids, lengths

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (store it next to a checkpoint)."""
        return {"tokens": list(self._tokens)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise InputError("a vocabulary dict needs a 'tokens' list")
        return cls(data["tokens"])
