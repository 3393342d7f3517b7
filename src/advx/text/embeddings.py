"""Word-embedding spaces for neighbour swaps (TextFooler) and word-distance constraints.

TextFooler (Jin et al. 2020) draws replacement words from the nearest neighbours of
counter-fitted GloVe vectors (Mrkšić et al. 2016). Those vectors are not shipped here, so
advx offers two offline spaces:

* :meth:`WordEmbeddings.minilm`: the input token embeddings of all-MiniLM-L6-v2,
  restricted to whole-word WordPiece tokens (about 20k English words). Neighbours are
  close in meaning but, as with plain GloVe, antonyms can be near too (``good``/``bad``);
  the TextFooler recipe therefore also rejects WordNet antonyms, which is what
  counter-fitting achieves with its antonym constraints;
* :meth:`WordEmbeddings.from_model`: the embedding table of the attacked model itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import torch
from torch import Tensor

from advx.errors import InputError

_ALPHA = re.compile(r"[a-z]{2,}")

#: Cosine floor for "near-synonym" neighbours in :meth:`WordEmbeddings.minilm` space
#: (TextFooler's and HotFlip's recipes). Counter-fitted GloVe, which TextFooler uses
#: with a floor of 0.5, pulls synonyms close together; MiniLM's token embeddings do not,
#: and their cosines run much lower. Measured on the content words of the tweet test
#: split (50 neighbours at most), a word keeps a median of 2 neighbours at 0.5, 4 at
#: 0.4, 16 at 0.3 and 40 at 0.25; 0.3 keeps lists of a useful length whose words are
#: still near in meaning (``good``: excellent, great, nice, terrific, decent,
#: wonderful...; antonyms such as ``bad`` are removed by the recipes' WordNet check).
MINILM_SYNONYM_COS = 0.3


class WordEmbeddings:
    """A vocabulary with unit-normalised vectors and cosine nearest neighbours.

    Args:
        words: the vocabulary, ``V`` distinct lower-case words.
        vectors: ``(V, d)`` float tensor (normalised here).

    Example:
        >>> space = WordEmbeddings(["good", "great", "bad"],
        ...                        torch.tensor([[1.0, 0.1], [0.9, 0.2], [-1.0, 0.0]]))
        >>> [w for w, _ in space.neighbours("good", k=1)]
        ['great']
    """

    _minilm: WordEmbeddings | None = None
    _lock = threading.Lock()

    def __init__(self, words: Sequence[str], vectors: Tensor) -> None:
        if vectors.dim() != 2 or vectors.shape[0] != len(words):
            raise InputError(
                f"vectors must be (len(words), d) = ({len(words)}, d), got {tuple(vectors.shape)}"
            )
        self.words = [w.lower() for w in words]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.vectors = torch.nn.functional.normalize(vectors.float(), dim=1)
        self._cache: dict[tuple[str, int, float], list[tuple[str, float]]] = {}

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self.index

    def __len__(self) -> int:
        return len(self.words)

    def neighbours(self, word: str, k: int = 50, min_cos: float = 0.0) -> list[tuple[str, float]]:
        """Up to ``k`` nearest words to ``word`` (itself excluded) with cosine >= ``min_cos``,
        closest first, as ``(word, cosine)``; empty if ``word`` is out of vocabulary."""
        key = (word.lower(), k, min_cos)
        if key in self._cache:
            return self._cache[key]
        i = self.index.get(key[0])
        out: list[tuple[str, float]] = []
        if i is not None and k > 0:
            sims = self.vectors @ self.vectors[i]  # (V,)
            sims[i] = -2.0
            val, idx = sims.topk(min(k, len(self.words) - 1))
            out = [
                (self.words[j], float(v))
                for v, j in zip(val.tolist(), idx.tolist(), strict=True)
                if v >= min_cos
            ]
        self._cache[key] = out
        return out

    def cosine(self, a: str, b: str) -> float | None:
        """Cosine similarity of two words, or None if either is out of vocabulary."""
        i, j = self.index.get(a.lower()), self.index.get(b.lower())
        if i is None or j is None:
            return None
        return float(self.vectors[i] @ self.vectors[j])

    @classmethod
    def minilm(cls) -> WordEmbeddings:
        """Whole-word tokens (letters only, length >= 2) of MiniLM's input embedding table
        (shared per process; reading it takes about a second)."""
        with cls._lock:
            if cls._minilm is None:
                from advx.text.minilm import token_embeddings

                vocab, table = token_embeddings()
                keep = [i for i, w in enumerate(vocab) if _ALPHA.fullmatch(w)]
                cls._minilm = cls([vocab[i] for i in keep], table[keep])
            return cls._minilm

    @classmethod
    def from_model(cls, model: object) -> WordEmbeddings:
        """The embedding table of a white-box text model (one exposing
        ``embedding_table()``, e.g. :class:`advx.text.models.TextClassifier`), restricted
        to its real words (no padding/unknown tokens)."""
        fn = getattr(model, "embedding_table", None)
        if fn is None:
            raise InputError(
                f"{type(model).__name__} has no embedding table; use WordEmbeddings.minilm()"
            )
        table, vocab, valid = fn()
        keep = [i for i in range(len(vocab)) if bool(valid[i])]
        return cls([vocab[i] for i in keep], table[keep].detach())
