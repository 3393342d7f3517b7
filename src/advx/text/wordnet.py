"""WordNet 3.0 read straight from its database files, offline.

The Debian package ``wordnet-base`` installs the database under ``/usr/share/wordnet``
(override with ``$ADVX_DATA_DIR/wordnet``). NLTK's reader also wants a ``lexnames`` file
that the package lacks, so this module reads the files itself: they are plain text.

* ``index.<pos>``: ``lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt
  synset_offset...`` (one line per lemma, sorted; offsets in sense-frequency order);
* ``data.<pos>``: one line per synset at byte ``offset``: ``offset lex_filenum ss_type
  w_cnt(hex) word lex_id ... p_cnt ptr... | gloss``; a pointer is ``symbol offset pos
  source/target``; ``!`` marks antonyms, ``&`` "similar to" (satellite adjectives);
* ``<pos>.exc``: irregular inflections (``better good``), used with the detachment rules
  of WordNet's ``morphy`` to find base forms.

Reference: Miller (1995), "WordNet: a lexical database for English", CACM 38(11);
Fellbaum (ed.) (1998), *WordNet: An Electronic Lexical Database*, MIT Press.

Example:
    >>> wn = WordNet.default()                       # doctest: +SKIP
    >>> "car" in wn.synonyms("automobile")            # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from advx.errors import DataError, DataNotFoundError

POS = ("n", "v", "a", "r")
_FILE = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}

# The 45 lexicographer files of WordNet 3.0, by number (the ``lexnames`` file NLTK wants).
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition", "noun.communication",
    "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
    "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)  # fmt: skip

# Detachment rules of morphy(7WN): (suffix, replacement) per part of speech.
_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "n": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
          ("shes", "sh"), ("men", "man"), ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
          ("ing", "e"), ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}  # fmt: skip


@dataclass(frozen=True)
class Synset:
    """One WordNet synset.

    Attributes:
        offset: byte offset in ``data.<pos>`` (with ``pos``, the synset's identity).
        pos: ``"n"``, ``"v"``, ``"a"`` (including satellites ``s``) or ``"r"``.
        lexname: lexicographer file, e.g. ``"adj.all"``, ``"verb.emotion"``.
        words: lemma names, spaces as ``_`` (``"self-driving_car"``), order as in the file.
        pointers: ``(symbol, offset, pos)`` for each relation (``!`` antonym, ``&`` similar).
        gloss: definition and examples.
    """

    offset: int
    pos: str
    lexname: str
    words: tuple[str, ...]
    pointers: tuple[tuple[str, int, str], ...]
    gloss: str


def default_dir() -> Path:
    """Where the database is looked for: ``$ADVX_DATA_DIR/wordnet`` if that directory
    exists, else ``/usr/share/wordnet``."""
    env = os.environ.get("ADVX_DATA_DIR")
    if env and (Path(env) / "wordnet").is_dir():
        return Path(env) / "wordnet"
    return Path("/usr/share/wordnet")


class WordNet:
    """Reader of a WordNet 3.0 database directory (lazy: each file is read on first use).

    Args:
        root: directory holding ``index.noun``, ``data.noun``, ... (default
            :func:`default_dir`).

    Raises:
        DataNotFoundError: the directory or its files are missing (install the Debian
            package ``wordnet-base`` or copy the files to ``$ADVX_DATA_DIR/wordnet``).
    """

    _default: WordNet | None = None
    _default_lock = threading.Lock()

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_dir()
        missing = [
            f"{kind}.{_FILE[p]}"
            for p in POS
            for kind in ("index", "data")
            if not (self.root / f"{kind}.{_FILE[p]}").is_file()
        ]
        if missing:
            raise DataNotFoundError(
                f"WordNet database not found in {self.root} (missing {', '.join(missing)}); "
                "install the Debian package `wordnet-base` or put the WordNet 3.0 dict files "
                "in $ADVX_DATA_DIR/wordnet"
            )
        self._index: dict[str, dict[str, tuple[int, ...]]] = {}
        self._data: dict[str, bytes] = {}
        self._exc: dict[str, dict[str, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> WordNet:
        """A shared reader of :func:`default_dir` (files are parsed once per process)."""
        with cls._default_lock:
            if cls._default is None or cls._default.root != default_dir():
                cls._default = cls()
            return cls._default

    # -- files -------------------------------------------------------------------------
    def _load(self, pos: str) -> None:
        with self._lock:
            if pos in self._index:
                return
            name = _FILE[pos]
            index: dict[str, tuple[int, ...]] = {}
            path = self.root / f"index.{name}"
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.startswith(" "):  # licence header
                        continue
                    parts = line.split()
                    try:
                        n_syn, n_ptr = int(parts[2]), int(parts[3])
                        offsets = parts[6 + n_ptr : 6 + n_ptr + n_syn]
                        index[parts[0]] = tuple(int(o) for o in offsets)
                    except (IndexError, ValueError) as e:
                        raise DataError(f"malformed line in {path}: {line[:80]!r}") from e
            exc: dict[str, tuple[str, ...]] = {}
            exc_path = self.root / f"{name}.exc"
            if exc_path.is_file():
                with open(exc_path, encoding="utf-8") as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 2:
                            exc[parts[0]] = tuple(parts[1:])
            self._data[pos] = (self.root / f"data.{name}").read_bytes()
            self._exc[pos] = exc
            self._index[pos] = index

    def _index_of(self, pos: str) -> dict[str, tuple[int, ...]]:
        if pos not in self._index:
            self._load(pos)
        return self._index[pos]

    def synset_at(self, pos: str, offset: int) -> Synset:
        """The synset at byte ``offset`` of ``data.<pos>``."""
        self._index_of(pos)
        data = self._data[pos]
        end = data.find(b"\n", offset)
        line = data[offset : end if end >= 0 else len(data)].decode("utf-8")
        head, _, gloss = line.partition(" | ")
        parts = head.split()
        try:
            if int(parts[0]) != offset:
                raise ValueError("offset mismatch")
            lexname = LEXNAMES[int(parts[1])]
            n_words = int(parts[3], 16)
            words = []
            for i in range(n_words):
                w = parts[4 + 2 * i]
                if w.endswith(")") and "(" in w:  # adjective markers: (a), (p), (ip)
                    w = w[: w.index("(")]
                words.append(w)
            k = 4 + 2 * n_words
            n_ptr = int(parts[k])
            pointers = tuple(
                (parts[k + 1 + 4 * j], int(parts[k + 2 + 4 * j]), parts[k + 3 + 4 * j])
                for j in range(n_ptr)
            )
        except (IndexError, ValueError) as e:
            raise DataError(
                f"malformed synset at offset {offset} of {self.root}/data.{_FILE[pos]}"
            ) from e
        return Synset(offset, pos, lexname, tuple(words), pointers, gloss.strip())

    # -- queries -----------------------------------------------------------------------
    def morphy(self, word: str, pos: str) -> list[str]:
        """Base forms of ``word`` as part of speech ``pos`` that WordNet knows, e.g.
        ``morphy("cars", "n") == ["car"]``, ``morphy("better", "a") == ["better", "good",
        "well"]``: the word itself if listed, plus its exception-list entries, or else the
        forms the detachment rules give (the behaviour of NLTK's ``_morphy``)."""
        if pos not in POS:
            raise DataError(f"unknown part of speech {pos!r}; use one of {POS}")
        w = word.lower().replace(" ", "_")
        index = self._index_of(pos)
        forms: list[str] = []
        exc = self._exc[pos].get(w)
        for cand in (w, *(exc or ())):
            if cand in index and cand not in forms:
                forms.append(cand)
        if exc:  # an irregular form: the exception list is the whole answer
            return forms
        for suffix, repl in _RULES[pos]:
            if w.endswith(suffix) and len(w) > len(suffix):
                cand = w[: len(w) - len(suffix)] + repl
                if cand in index and cand not in forms:
                    forms.append(cand)
        return forms

    def synsets(self, word: str, pos: str | None = None) -> list[Synset]:
        """Synsets of ``word`` (any inflection), for one part of speech or all, most
        frequent senses first."""
        out: list[Synset] = []
        seen: set[tuple[str, int]] = set()
        for p in (pos,) if pos else POS:
            for lemma in self.morphy(word, p):
                for off in self._index_of(p)[lemma]:
                    if (p, off) not in seen:
                        seen.add((p, off))
                        out.append(self.synset_at(p, off))
        return out

    def parts_of_speech(self, word: str) -> set[str]:
        """Parts of speech (``n``, ``v``, ``a``, ``r``) under which WordNet knows ``word``."""
        return {p for p in POS if self.morphy(word, p)}

    def synonyms(self, word: str, pos: str | None = None) -> list[str]:
        """Single-word lemmas sharing a synset with ``word`` (other than the word itself and
        its base forms), in sense order, lower-case. Multi-word lemmas (``look_up``) are
        left out because a word-for-word swap cannot place them."""
        w = word.lower()
        own = {w} | {b for p in POS for b in self.morphy(w, p)}
        out: list[str] = []
        for s in self.synsets(w, pos):
            for lemma in s.words:
                lem = lemma.lower()
                if "_" in lem or lem in own or lem in out:
                    continue
                out.append(lem)
        return out

    def antonyms(self, word: str) -> set[str]:
        """Words WordNet lists as antonyms of ``word`` (lower-case), also through the head
        synset of a satellite adjective (``great`` ~ ``good`` -> ``bad``). Deliberately
        broad: it is used to keep meaning-reversing words out of candidate lists."""
        out: set[str] = set()
        for s in self.synsets(word):
            heads = [s] + [self.synset_at("a", off) for sym, off, p in s.pointers if sym == "&"]
            for h in heads:
                for sym, off, p in h.pointers:
                    if sym == "!":
                        pos = "a" if p == "s" else p
                        out.update(x.lower() for x in self.synset_at(pos, off).words)
        return out
