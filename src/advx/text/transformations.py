"""Transformations: the perturbation space of a text attack.

A transformation proposes, for a sentence and a set of word positions, sentences that
differ from it in exactly one of those words. Constraints then filter the proposals and
the search picks among them (STYLE.md §4). Four families:

* character edits (DeepWordBug, Gao et al. 2018; homoglyphs and keyboard typos as in
  TextBugger, Li et al. 2019, and Pruthi et al. 2019): :class:`CharEdit`;
* WordNet synonyms (PWWS, Ren et al. 2019): :class:`WordNetSynonyms`;
* nearest neighbours in a word-embedding space (TextFooler, Jin et al. 2020):
  :class:`EmbeddingNeighbours`;
* gradient-guided token flips (HotFlip, Ebrahimi et al. 2018): :class:`GradientFlip`.

Every transformation takes a ``random.Random`` for its random choices, so a seed fixes
the attack.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from advx.errors import AccessError, InputError
from advx.text.sentence import Sentence, is_word, match_case

if TYPE_CHECKING:
    from advx.text.embeddings import WordEmbeddings
    from advx.text.goal import Scorer
    from advx.text.wordnet import WordNet


class Transformation:
    """Base: propose one-word changes of ``s`` at ``indices``.

    Subclasses implement :meth:`words` (replacement words for one position); the base
    turns them into sentences, dropping no-ops and replacements that would not stay one
    word. ``needs_gradients`` tells the attack that the transformation asks the model for
    gradients (white-box only).
    """

    needs_gradients: ClassVar[bool] = False

    def __call__(
        self,
        s: Sentence,
        indices: Sequence[int],
        *,
        rng: random.Random,
        scorer: Scorer | None = None,
    ) -> list[Sentence]:
        """Candidates: ``s`` with one word at a position in ``indices`` replaced."""
        out: list[Sentence] = []
        for i in indices:
            seen = {s.words[i]}
            for w in self.words(s, i, rng=rng):
                if w not in seen and is_word(w):
                    seen.add(w)
                    out.append(s.replace(i, w))
        return out

    def words(self, s: Sentence, index: int, *, rng: random.Random) -> list[str]:
        """Replacement words for word ``index`` of ``s``."""
        raise NotImplementedError


# ----------------------------------------------------------------------- characters
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Adjacent keys on a QWERTY keyboard (rows are staggered by about half a key)."""
    pos = {c: (r, k) for r, row in enumerate(_ROWS) for k, c in enumerate(row)}
    out: dict[str, str] = {}
    for c, (r, k) in pos.items():
        near = []
        for rr, cols in ((r, (k - 1, k + 1)), (r - 1, (k, k + 1)), (r + 1, (k - 1, k))):
            if 0 <= rr < len(_ROWS):
                near += [_ROWS[rr][j] for j in cols if 0 <= j < len(_ROWS[rr])]
        out[c] = "".join(near)
    return out


KEYBOARD: dict[str, str] = _keyboard_neighbours()

# Latin letters and look-alikes from other scripts (Cyrillic, Latin extensions).
HOMOGLYPHS: dict[str, str] = {
    "a": "\u0430", "c": "\u0441", "d": "\u0501", "e": "\u0435", "g": "\u0261",
    "h": "\u04bb", "i": "\u0456", "j": "\u0458", "l": "\u04cf", "o": "\u043e",
    "p": "\u0440", "q": "\u051b", "s": "\u0455", "w": "\u051d", "x": "\u0445",
    "y": "\u0443", "A": "\u0410", "B": "\u0412", "C": "\u0421", "E": "\u0415",
    "H": "\u041d", "I": "\u0406", "J": "\u0408", "K": "\u041a", "M": "\u041c",
    "O": "\u041e", "P": "\u0420", "S": "\u0405", "T": "\u0422", "X": "\u0425",
    "Y": "\u04ae",
}  # fmt: skip

CHAR_EDITS = ("swap", "substitute", "delete", "insert", "keyboard", "homoglyph")


def _like(c: str, ref: str) -> str:
    return c.upper() if ref.isupper() else c


def char_edits(word: str, kind: str) -> list[str]:
    """Every word one character edit of ``kind`` away from ``word``, in a fixed order.

    Kinds: ``swap`` (two adjacent characters), ``substitute`` (a letter by another
    letter), ``delete``, ``insert`` (a letter), ``keyboard`` (a letter by a QWERTY
    neighbour), ``homoglyph`` (a letter by a look-alike from another script).

    Example:
        >>> char_edits("cat", "swap")
        ['act', 'cta']
    """
    n = len(word)
    out: list[str] = []
    if kind == "swap":
        for j in range(n - 1):
            if word[j] != word[j + 1]:
                out.append(word[:j] + word[j + 1] + word[j] + word[j + 2 :])
    elif kind == "delete":
        if n >= 2:
            out = [word[:j] + word[j + 1 :] for j in range(n)]
    elif kind == "insert":
        for j in range(n + 1):
            ref = word[j - 1] if j else word[0]
            out += [word[:j] + _like(c, ref) + word[j:] for c in string.ascii_lowercase]
    elif kind == "substitute":
        for j, ch in enumerate(word):
            if ch.isascii() and ch.isalpha():
                subs = [_like(c, ch) for c in string.ascii_lowercase if c != ch.lower()]
                out += [word[:j] + c + word[j + 1 :] for c in subs]
    elif kind == "keyboard":
        for j, ch in enumerate(word):
            for c in KEYBOARD.get(ch.lower(), ""):
                out.append(word[:j] + _like(c, ch) + word[j + 1 :])
    elif kind == "homoglyph":
        for j, ch in enumerate(word):
            if ch in HOMOGLYPHS:
                out.append(word[:j] + HOMOGLYPHS[ch] + word[j + 1 :])
    else:
        raise InputError(f"unknown character edit {kind!r}; choose from {CHAR_EDITS}")
    seen: set[str] = {word}
    uniq = []
    for w in out:
        if w not in seen:
            seen.add(w)
            uniq.append(w)
    return uniq


def random_char_edit(word: str, kind: str, rng: random.Random) -> str | None:
    """One random edit of ``kind`` of ``word`` (position, then character, uniformly), or
    None when ``word`` admits none. Same edits as :func:`char_edits`, without listing
    them all (an insertion alone has ``26 * (len + 1)``)."""
    n = len(word)
    if kind == "swap":
        spots = [j for j in range(n - 1) if word[j] != word[j + 1]]
        if not spots:
            return None
        j = spots[rng.randrange(len(spots))]
        return word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    if kind == "delete":
        if n < 2:
            return None
        j = rng.randrange(n)
        return word[:j] + word[j + 1 :]
    if kind == "insert":
        j = rng.randrange(n + 1)
        ref = word[j - 1] if j else word[0]
        return word[:j] + _like(rng.choice(string.ascii_lowercase), ref) + word[j:]
    if kind in ("substitute", "keyboard", "homoglyph"):
        options: list[tuple[int, str]] = []
        for j, ch in enumerate(word):
            if kind == "substitute" and ch.isascii() and ch.isalpha():
                options.append((j, "".join(c for c in string.ascii_lowercase if c != ch.lower())))
            elif kind == "keyboard" and KEYBOARD.get(ch.lower()):
                options.append((j, KEYBOARD[ch.lower()]))
            elif kind == "homoglyph" and ch in HOMOGLYPHS:
                options.append((j, HOMOGLYPHS[ch]))
        if not options:
            return None
        j, chars = options[rng.randrange(len(options))]
        c = chars[rng.randrange(len(chars))]
        return word[:j] + (c if kind == "homoglyph" else _like(c, word[j])) + word[j + 1 :]
    raise InputError(f"unknown character edit {kind!r}; choose from {CHAR_EDITS}")


@dataclass(frozen=True)
class CharEdit(Transformation):
    """Character edits of one word, as in DeepWordBug (Gao et al. 2018, "Black-box
    generation of adversarial text sequences to evade deep learning classifiers").

    Args:
        kinds: edits to use, from ``swap``, ``substitute``, ``delete``, ``insert``,
            ``keyboard``, ``homoglyph`` (default: DeepWordBug's four).
        random_one: propose random edits of each kind per word (DeepWordBug's
            transformer; cheap in queries) instead of every possible edit.
        draws: with ``random_one``, how many random edits of each kind to propose per
            word (default 1, the paper's; duplicates are drawn again, so a word gets
            ``min(draws, its edits of that kind)`` distinct ones). More draws search a
            word's edits more widely at ``draws`` times the queries per word.
        min_length: words shorter than this are left alone (default 2: single letters
            carry little and their edits read as noise).

    Example:
        >>> import random
        >>> t = CharEdit(kinds=("swap",), random_one=False)
        >>> [c.text for c in t(Sentence.parse("a cat"), [1], rng=random.Random(0))]
        ['a act', 'a cta']
    """

    kinds: tuple[str, ...] = ("swap", "substitute", "delete", "insert")
    random_one: bool = True
    min_length: int = 2
    draws: int = 1

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in CHAR_EDITS]
        if bad or not self.kinds:
            raise InputError(f"unknown character edits {bad}; choose from {CHAR_EDITS}")
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
            raise InputError(f"draws must be an int >= 1, got {self.draws!r}")

    def words(self, s: Sentence, index: int, *, rng: random.Random) -> list[str]:
        word = s.words[index]
        if len(word) < self.min_length:
            return []
        out: list[str] = []
        for kind in self.kinds:
            if not self.random_one:
                out += char_edits(word, kind)
            elif self.draws == 1:  # the paper's transformer: one draw (kept bit-for-bit)
                w = random_char_edit(word, kind, rng)
                if w is not None and w != word:
                    out.append(w)
            else:
                out += _distinct_draws(word, kind, self.draws, rng)
        return out


def _distinct_draws(word: str, kind: str, k: int, rng: random.Random) -> list[str]:
    """Up to ``k`` distinct random edits of ``kind`` (uniform over positions, then
    characters, as :func:`random_char_edit`); a bounded number of redraws, so a kind
    with fewer than ``k`` edits returns them all without looping for long."""
    got: list[str] = []
    seen = {word}
    for _ in range(4 * k):
        if len(got) == k:
            break
        w = random_char_edit(word, kind, rng)
        if w is None:
            break
        if w not in seen:
            seen.add(w)
            got.append(w)
    return got


# ----------------------------------------------------------------------------- words
@dataclass(frozen=True)
class WordNetSynonyms(Transformation):
    """Replace a word by one of its WordNet synonyms (PWWS, Ren et al. 2019,
    "Generating natural language adversarial examples through probability weighted
    word saliency", ACL).

    Synonyms are the single-word lemmas of every synset of the word's base forms
    (:meth:`advx.text.wordnet.WordNet.synonyms`), cased like the original.

    Args:
        wordnet: the reader (default :meth:`WordNet.default`).
        max_candidates: keep at most this many synonyms per word (None: all).
    """

    wordnet: WordNet | None = field(default=None, compare=False)
    max_candidates: int | None = None

    def words(self, s: Sentence, index: int, *, rng: random.Random) -> list[str]:
        from advx.text.wordnet import WordNet

        wn = self.wordnet or WordNet.default()
        word = s.words[index]
        syns = wn.synonyms(word)
        if self.max_candidates is not None:
            syns = syns[: self.max_candidates]
        return [match_case(w, word) for w in syns]


@dataclass(frozen=True)
class EmbeddingNeighbours(Transformation):
    """Replace a word by a nearest neighbour in a word-embedding space (TextFooler, Jin
    et al. 2020, "Is BERT really robust?", AAAI).

    Args:
        space: the embedding space (:class:`advx.text.embeddings.WordEmbeddings`, e.g.
            ``WordEmbeddings.minilm()`` or a model's own table).
        k: at most this many neighbours per word (TextFooler: 50).
        min_cos: cosine floor between the word and a neighbour (TextFooler: 0.5).
    """

    space: WordEmbeddings = field(compare=False)
    k: int = 50
    min_cos: float = 0.5

    def words(self, s: Sentence, index: int, *, rng: random.Random) -> list[str]:
        word = s.words[index]
        return [match_case(w, word) for w, _ in self.space.neighbours(word, self.k, self.min_cos)]


@dataclass(frozen=True)
class GradientFlip(Transformation):
    """Gradient-guided word flips (HotFlip, Ebrahimi et al. 2018, "HotFlip: white-box
    adversarial examples for text classification", ACL).

    With ``g_i`` the gradient of the attacker's loss with respect to the embedding
    ``e_i`` of word ``i``, the first-order gain of replacing it by vocabulary word ``v``
    is ``(e_v - e_i) . g_i``. The transformation proposes the ``top_n`` best
    (position, word) flips over all allowed positions (one gradient = one query).

    Args:
        top_n: flips proposed per call (best first-order gain first).
        per_position: propose the best ``top_n`` words at each position instead of the
            best ``top_n`` flips overall.
        neighbours: if given, a word may only flip to one of its ``k`` nearest
            neighbours in this embedding space with cosine >= ``min_cos`` (keeps flips
            meaningful; without it any vocabulary word is a candidate).
        k, min_cos: neighbourhood size and cosine floor for ``neighbours``.
    """

    needs_gradients: ClassVar[bool] = True
    top_n: int = 5
    per_position: bool = False
    neighbours: WordEmbeddings | None = field(default=None, compare=False)
    k: int = 50
    min_cos: float = 0.4

    def __call__(
        self,
        s: Sentence,
        indices: Sequence[int],
        *,
        rng: random.Random,
        scorer: Scorer | None = None,
    ) -> list[Sentence]:
        import torch

        if scorer is None or not scorer.has_gradients:
            raise AccessError(
                "GradientFlip (HotFlip) needs a white-box text model with an embedding layer "
                "(word_gradients/embedding_table); use a black-box recipe for this model"
            )
        idx = [i for i in indices if i < len(s)]
        if not idx or scorer.exhausted:
            return []
        ids, grads = scorer.word_gradients(s)  # (n,), (n, d)
        table, vocab, valid = scorer.embedding_table()  # (V, d), V words, (V,) bool
        pos = torch.tensor([i for i in idx if int(ids[i]) >= 0], dtype=torch.long)
        if pos.numel() == 0:
            return []
        g = grads[pos]  # (P, d)
        gain = g @ table.T - (g * table[ids[pos]]).sum(1, keepdim=True)  # (P, V)
        gain[:, ~valid] = -torch.inf
        if self.neighbours is not None:
            where = {w: j for j, w in enumerate(vocab)}
            allowed = torch.zeros_like(gain, dtype=torch.bool)
            for p, i in enumerate(pos.tolist()):
                near = self.neighbours.neighbours(s.words[i], self.k, self.min_cos)
                cols = [where[w] for w, _ in near if w in where]
                allowed[p, cols] = True
            gain[~allowed] = -torch.inf
        gain[torch.arange(len(pos)), ids[pos]] = -torch.inf
        k = min(self.top_n, gain.shape[1])
        pairs: list[tuple[float, int, int]] = []
        if self.per_position:
            val, tok = gain.topk(k, dim=1)
            pairs = [
                (float(val[p, j]), int(pos[p]), int(tok[p, j]))
                for p in range(len(pos))
                for j in range(k)
            ]
        else:
            val, flat = gain.flatten().topk(min(k, gain.numel()))
            pairs = [
                (float(v), int(pos[f // gain.shape[1]]), int(f % gain.shape[1]))
                for v, f in zip(val.tolist(), flat.tolist(), strict=True)
            ]
        out = []
        for v, i, t in pairs:
            if v == -float("inf"):
                continue
            word = match_case(vocab[t], s.words[i])
            if word != s.words[i] and is_word(word):
                out.append(s.replace(i, word))
        return out


@dataclass(frozen=True)
class Composite(Transformation):
    """The union of several transformations' proposals (in order)."""

    parts: tuple[Transformation, ...]

    @property
    def needs_gradients(self) -> bool:  # type: ignore[override]
        return any(p.needs_gradients for p in self.parts)

    def __call__(
        self,
        s: Sentence,
        indices: Sequence[int],
        *,
        rng: random.Random,
        scorer: Scorer | None = None,
    ) -> list[Sentence]:
        out: list[Sentence] = []
        seen: set[str] = set()
        for part in self.parts:
            for c in part(s, indices, rng=rng, scorer=scorer):
                if c.text not in seen:
                    seen.add(c.text)
                    out.append(c)
        return out


def describe(t: Any) -> str:
    """A short name of a transformation for reports (class name and key settings)."""
    if isinstance(t, CharEdit):
        # the paper's one random draw keeps its historical name (cached bench runs)
        how = (
            ""
            if t.random_one and t.draws == 1
            else ("; every edit" if not t.random_one else f"; {t.draws} draws")
        )
        return f"char-edit({','.join(t.kinds)}{how})"
    if isinstance(t, Composite):
        return "+".join(describe(p) for p in t.parts)
    if isinstance(t, EmbeddingNeighbours):
        return f"EmbeddingNeighbours(k={t.k}, min_cos={t.min_cos})"
    if isinstance(t, GradientFlip):
        near = "" if t.neighbours is None else f", k={t.k}, min_cos={t.min_cos}"
        return f"GradientFlip(top_n={t.top_n}{near})"
    return type(t).__name__
