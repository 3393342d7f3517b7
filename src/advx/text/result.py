"""Text attack results: one typed record per example, metrics as pure functions, diffs.

A :class:`TextAttackResult` holds what happened to one text: status (the
:class:`advx.attacks.result.Status` vocabulary: succeeded / failed / skipped because the
model already got it wrong), original and adversarial text, labels and confidences
before and after, words changed and queries spent. :class:`TextAttackResults` is the
list for a run, saved and loaded as JSON. :func:`diff_html` and :func:`diff_rich` show
the word-level difference.
"""

from __future__ import annotations

import difflib
import html
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advx.attacks.result import Status
from advx.errors import CheckpointError
from advx.io import atomic_write_text
from advx.jsonio import dumps
from advx.text.sentence import Sentence


@dataclass(frozen=True)
class Segment:
    """A piece of a word-level diff: text equal in both (``old == new``, gaps
    included), or a changed word (``old`` replaced by ``new``)."""

    old: str
    new: str

    @property
    def changed(self) -> bool:
        """True for a changed word."""
        return self.old != self.new


def word_diff(original: str, adversarial: str) -> list[Segment]:
    """Word-level diff of two texts as segments that concatenate back to each text.

    Example:
        >>> [(s.old, s.new) for s in word_diff("I love it", "I adore it") if s.changed]
        [('love', 'adore')]
    """
    a, b = Sentence.parse(original), Sentence.parse(adversarial)
    if len(a) == len(b) and a.gaps == b.gaps:
        out = [Segment(a.gaps[0], a.gaps[0])]
        for wa, wb, g in zip(a.words, b.words, a.gaps[1:], strict=True):
            out += [Segment(wa, wb), Segment(g, g)]
        return _merge(out)
    # Fallback for texts not produced by a word-for-word attack: diff the token streams.
    ta, tb = _tokens(original), _tokens(adversarial)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ta, b=tb, autojunk=False).get_opcodes():
        old, new = "".join(ta[i1:i2]), "".join(tb[j1:j2])
        out.append(Segment(old, new) if op != "equal" else Segment(old, old))
    return _merge(out)


def _tokens(text: str) -> list[str]:
    s = Sentence.parse(text)
    out = [s.gaps[0]]
    for w, g in zip(s.words, s.gaps[1:], strict=True):
        out += [w, g]
    return [t for t in out if t]


def _merge(segs: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for s in segs:
        if not s.old and not s.new:
            continue
        if out and not out[-1].changed and not s.changed:
            out[-1] = Segment(out[-1].old + s.old, out[-1].new + s.new)
        else:
            out.append(s)
    return out


@dataclass(frozen=True)
class TextAttackResult:
    """What a text attack did to one example.

    Attributes:
        original: the input text.
        adversarial: the attacker's final text (equal to ``original`` when skipped;
            for a failed attack, the best attempt).
        y: true label.
        target: requested class of a targeted attack, else None.
        status: :class:`~advx.attacks.result.Status`.
        pred_clean, pred_adv: predicted class before/after.
        conf_clean, conf_adv: probability of the predicted class before/after.
        words_changed: word positions that differ from the original.
        num_words: words in the original (attackable words; punctuation excluded).
        queries: texts the model scored for this example (gradients count one each).
        seconds: wall time spent on this example.
    """

    original: str
    adversarial: str
    y: int
    status: Status
    pred_clean: int
    conf_clean: float
    pred_adv: int
    conf_adv: float
    words_changed: int
    num_words: int
    queries: int
    seconds: float = 0.0
    target: int | None = None

    @property
    def succeeded(self) -> bool:
        """The adversarial text fools the model (reaches the target if targeted)."""
        return self.status == Status.SUCCEEDED

    @property
    def skipped(self) -> bool:
        """Already misclassified: not attacked."""
        return self.status == Status.SKIPPED

    @property
    def words_changed_pct(self) -> float:
        """Percentage of the original's words that were changed."""
        return 100.0 * self.words_changed / self.num_words if self.num_words else 0.0

    def diff(self) -> list[Segment]:
        """Word-level diff of original and adversarial text."""
        return word_diff(self.original, self.adversarial)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (status as its name)."""
        d = asdict(self)
        d["status"] = self.status.name.lower()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextAttackResult:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["status"] = Status[str(d["status"]).upper()]
        return cls(**d)


@dataclass(frozen=True)
class TextAttackResults:
    """The per-example results of one text attack run.

    Attributes:
        results: one :class:`TextAttackResult` per input text, in input order.
        recipe: recipe slug (or ``"custom"``).
        config: the attack's settings (JSON-friendly).
        class_names: names of the model's classes.
        seconds: wall time of the whole run.
    """

    results: tuple[TextAttackResult, ...]
    recipe: str = "custom"
    config: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[TextAttackResult]:
        return iter(self.results)

    def __getitem__(self, i: int) -> TextAttackResult:
        return self.results[i]

    def summary(self) -> dict[str, Any]:
        """Metrics of the run: clean_accuracy, robust_accuracy, success_rate,
        mean_words_changed_pct, mean_queries, seconds (plus n, recipe, counts);
        NaN becomes None."""
        return summary(self)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the results as one JSON file (atomically)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": "advx.text-attack-results/1",
            "recipe": self.recipe,
            "config": self.config,
            "class_names": list(self.class_names),
            "seconds": self.seconds,
            "summary": self.summary(),
            "results": [r.to_dict() for r in self.results],
        }
        atomic_write_text(p, dumps(doc, indent=1, ensure_ascii=False, default=str))
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextAttackResults:
        """Read results written by :meth:`save`; :class:`CheckpointError` if damaged."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            return cls(
                results=tuple(TextAttackResult.from_dict(r) for r in doc["results"]),
                recipe=str(doc["recipe"]),
                config=dict(doc["config"]),
                class_names=tuple(doc["class_names"]),
                seconds=float(doc["seconds"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"cannot read text attack results {p}: {e}") from e


# ------------------------------------------------------------------------------ metrics
def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def clean_accuracy(rs: TextAttackResults) -> float:
    """Share of texts the model classifies correctly before the attack."""
    return _mean([float(r.pred_clean == r.y) for r in rs])


def robust_accuracy(rs: TextAttackResults) -> float:
    """Share of texts still classified correctly after the attack."""
    return _mean([float(r.pred_adv == r.y) for r in rs])


def success_rate(rs: TextAttackResults) -> float:
    """Share of attacked texts (not skipped) the attack fooled."""
    return _mean([float(r.succeeded) for r in rs if not r.skipped])


def mean_words_changed_pct(rs: TextAttackResults) -> float:
    """Mean percentage of words changed, over successful examples."""
    return _mean([r.words_changed_pct for r in rs if r.succeeded])


def mean_queries(rs: TextAttackResults) -> float:
    """Mean queries per attacked example (successful and failed)."""
    return _mean([float(r.queries) for r in rs if not r.skipped])


def summary(rs: TextAttackResults) -> dict[str, Any]:
    """The standard summary of a run (see :meth:`TextAttackResults.summary`)."""
    out: dict[str, Any] = {
        "recipe": rs.recipe,
        "n": len(rs),
        "succeeded": sum(r.succeeded for r in rs),
        "failed": sum(r.status == Status.FAILED for r in rs),
        "skipped": sum(r.skipped for r in rs),
        "clean_accuracy": clean_accuracy(rs),
        "robust_accuracy": robust_accuracy(rs),
        "success_rate": success_rate(rs),
        "mean_words_changed_pct": mean_words_changed_pct(rs),
        "mean_queries": mean_queries(rs),
        "seconds": rs.seconds,
    }
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


# -------------------------------------------------------------------------------- views
def _label(i: int, names: Sequence[str]) -> str:
    return names[i] if 0 <= i < len(names) else str(i)


def diff_html(result: TextAttackResult, class_names: Sequence[str] = ()) -> str:
    """An HTML fragment showing the word-level diff (``<del>``/``<ins>``) and the
    prediction before and after; text is escaped. Style hooks: classes ``advx-diff``,
    ``advx-del``, ``advx-ins``, ``advx-pred``."""
    parts = []
    for seg in result.diff():
        if seg.changed:
            parts.append(
                f'<del class="advx-del">{html.escape(seg.old)}</del>'
                f'<ins class="advx-ins">{html.escape(seg.new)}</ins>'
            )
        else:
            parts.append(html.escape(seg.old))
    before = f"{html.escape(_label(result.pred_clean, class_names))} ({result.conf_clean:.0%})"
    after = f"{html.escape(_label(result.pred_adv, class_names))} ({result.conf_adv:.0%})"
    return (
        f'<div class="advx-diff" data-status="{result.status.name.lower()}">'
        f'<p>{"".join(parts)}</p><p class="advx-pred">{before} &rarr; {after}; '
        f"{result.words_changed} word(s) changed, {result.queries} queries</p></div>"
    )


def diff_rich(result: TextAttackResult, class_names: Sequence[str] = ()) -> Any:
    """A ``rich.text.Text`` of the diff for the terminal: removed words red and struck
    through, an arrow, new words green (``love→lovers`` without colour), then the
    prediction before and after."""
    from rich.text import Text

    t = Text()
    for seg in result.diff():
        if seg.changed:
            t.append(seg.old, style="red strike")
            t.append("\u2192", style="dim")  # an arrow keeps it readable without colour
            t.append(seg.new, style="bold green")
        else:
            t.append(seg.old)
    t.append("\n")
    t.append(f"{_label(result.pred_clean, class_names)} ({result.conf_clean:.0%})", style="cyan")
    t.append(" -> ")
    style = "bold magenta" if result.succeeded else "dim"
    t.append(f"{_label(result.pred_adv, class_names)} ({result.conf_adv:.0%})", style=style)
    t.append(f"  [{result.status.name.lower()}, {result.words_changed} word(s), "
             f"{result.queries} queries]", style="dim")  # fmt: skip
    return t
