"""The text attack: goal + transformation + constraints + search (STYLE.md §4).

:class:`TextAttack` is the text counterpart of :class:`advx.attacks.base.Attack` and, like
it, owns the invariants: it validates the texts and labels, checks the clean predictions
(texts the model already gets wrong are *skipped*, not attacked), runs the search on
each remaining example with its own query budget and seed, re-scores the final texts to
decide success (never trusting the search's bookkeeping), and returns one typed record
per example (:class:`~advx.text.result.TextAttackResults`).

Named recipes (``deepwordbug``, ``pwws``, ``textfooler``, ``hotflip``) are compositions
built by :mod:`advx.text.recipes`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from advx.attacks.base import TargetSpec, resolve_targets
from advx.attacks.result import Status
from advx.errors import AccessError, InputError
from advx.targets import Access, Oracle
from advx.text import constraints as C
from advx.text import transformations as T
from advx.text.goal import Goal, Scorer
from advx.text.result import TextAttackResult, TextAttackResults
from advx.text.search import BeamSearch, GreedySearch
from advx.text.sentence import Sentence, check_texts
from advx.text.target import TextTarget

log = logging.getLogger(__name__)

Progress = Callable[[int, TextAttackResult], None]


def check_labels(y: Any, n: int, num_classes: int, what: str = "labels") -> list[int]:
    """Labels as a list of ints in ``[0, num_classes)`` of length ``n``."""
    if isinstance(y, Tensor):
        if y.is_floating_point() or y.dtype == torch.bool:
            raise InputError(f"{what} must be integers, got {y.dtype}")
        y = y.tolist()
    if isinstance(y, (str, bytes)) or not isinstance(y, Sequence):
        raise InputError(f"{what} must be a sequence of class indices")
    out = []
    for i, v in enumerate(y):
        if isinstance(v, bool) or not isinstance(v, int):
            raise InputError(f"{what}[{i}] must be an int, got {type(v).__name__}")
        if not 0 <= v < num_classes:
            raise InputError(f"{what}[{i}] = {v} is outside [0, {num_classes - 1}]")
        out.append(int(v))
    if len(out) != n:
        raise InputError(f"{what} has {len(out)} entries for {n} texts")
    return out


@dataclass(frozen=True, kw_only=True)
class TextAttack:
    """A text attack composed of a transformation, constraints and a search.

    Args:
        transformation: proposes one-word changes (:mod:`advx.text.transformations`).
        constraints: filters (:mod:`advx.text.constraints`); cheap ones first.
        search: :class:`~advx.text.search.GreedySearch` (default) or
            :class:`~advx.text.search.BeamSearch`.
        max_queries: per-example budget of texts scored (None: unlimited). A query is one
            text scored by the model; one gradient computation also counts as one.
        seed: seed of random choices; each example's generator is seeded with ``seed``
            and its text, so a result does not depend on the other examples of the call.
        name: recipe slug shown in results.

    Call it as ``attack(model, texts, labels, targets=None)``; ``model`` exposes
    ``predict_proba(list[str]) -> Tensor (N, C)`` and ``num_classes`` (see
    :class:`advx.text.goal.TextModel`).

    Example:
        >>> from advx.text.recipes import create            # doctest: +SKIP
        >>> attack = create("deepwordbug", max_queries=500)  # doctest: +SKIP
        >>> res = attack(model, ["I love this car"], [1])    # doctest: +SKIP
        >>> res[0].adversarial                               # doctest: +SKIP
        'I lvoe this car'
    """

    transformation: T.Transformation
    constraints: tuple[C.Constraint, ...] = ()
    search: GreedySearch | BeamSearch = field(default_factory=GreedySearch)
    max_queries: int | None = None
    seed: int | None = 0
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.transformation, T.Transformation):
            raise InputError("transformation must be an advx.text.transformations.Transformation")
        object.__setattr__(self, "constraints", tuple(self.constraints))
        for c in self.constraints:
            if not isinstance(c, C.Constraint):
                raise InputError(f"{c!r} is not an advx.text.constraints.Constraint")
        if self.max_queries is not None and (
            isinstance(self.max_queries, bool) or self.max_queries < 1
        ):
            raise InputError(f"max_queries must be >= 1, got {self.max_queries}")

    @property
    def needs_gradients(self) -> bool:
        """True when the transformation or the search needs a white-box model."""
        return bool(self.transformation.needs_gradients or self.search.needs_gradients)

    @property
    def access(self) -> Access:
        """What the target must reveal: gradients for white-box compositions (HotFlip,
        gradient ranking), scores otherwise (a text attack follows the goal's score)."""
        return Access.GRADIENTS if self.needs_gradients else Access.SCORES

    @property
    def config(self) -> dict[str, Any]:
        """The composition, JSON-friendly."""
        return {
            "transformation": T.describe(self.transformation),
            "constraints": [C.describe(c) for c in self.constraints],
            "search": repr(self.search),
            "max_queries": self.max_queries,
            "seed": self.seed,
        }

    def word_budget(self, n_words: int) -> int:
        """Most words this attack may change in an ``n_words``-word text."""
        b = n_words
        for c in self.constraints:
            if isinstance(c, C.MaxWordsChanged):
                b = min(b, c.budget(n_words))
        return b

    def __call__(
        self,
        model: Any,
        texts: Sequence[str],
        labels: Sequence[int] | Tensor,
        *,
        targets: TargetSpec = None,
        progress: Progress | None = None,
    ) -> TextAttackResults:
        """Attack each text; see the class docstring.

        Args:
            model: the text classifier: a :class:`~advx.text.target.TextTarget`
                (:class:`~advx.text.classifier.TextClassifier`,
                :class:`~advx.text.adapters.HttpTextTarget`), a zoo classifier of a text
                architecture, or any object with ``predict_proba`` and ``num_classes``
                (adapted by :func:`~advx.text.adapters.as_text_target`).
            texts: ``N`` non-empty strings.
            labels: their true classes ``(N,)``.
            targets: None (untargeted); one class for all (index or class name); class
                indices or names per example ``(N,)``; or a helper: ``"random"`` (a
                random other class, seeded), ``"least-likely"`` (the least likely class
                on the clean text) or ``"next"`` (``(y + 1) % C``). Resolved by
                :func:`advx.attacks.base.resolve_targets`, as for image attacks.
            progress: called as ``progress(i, result)`` after each example.

        Returns:
            :class:`TextAttackResults`, one record per text, in order.
        """
        from advx.text.adapters import as_text_target

        t_start = time.perf_counter()
        target = as_text_target(model)
        if target.access < self.access:
            raise AccessError(
                f"{self.name} needs {self.access.label}: a white-box text model with an "
                f"embedding layer; {target.name!r} gives {target.access.label}. Use "
                "deepwordbug, pwws or textfooler"
            )
        num_classes, names = target.num_classes, tuple(target.class_names)
        texts = check_texts(texts)
        y = check_labels(labels, len(texts), num_classes)
        records: list[TextAttackResult] = []
        with target.attacking(), torch.no_grad():
            clean = _probs(target, texts)  # framework overhead: not charged to the examples
            tgt = self._targets(targets, y, clean, target)
            oracle = Oracle(target, len(texts), max_queries=self.max_queries)
            adv_texts: list[str] = []
            runs: list[tuple[int, int, float]] = []  # (words changed, words, seconds)
            for i, text in enumerate(texts):
                t0 = time.perf_counter()
                original = Sentence.parse(text)
                if int(clean[i].argmax()) != y[i]:
                    adv_texts.append(text)
                    runs.append((0, len(original), time.perf_counter() - t0))
                    continue
                goal = Goal(label=y[i], target=None if tgt is None else tgt[i])
                scorer = Scorer(oracle.view("scores", torch.tensor([i])), goal)
                # seeded by (seed, text): an example's result does not depend on its batch
                rng = random.Random(f"{0 if self.seed is None else self.seed}\x00{text}")
                with torch.enable_grad():
                    best = self.search(
                        original, scorer, self.transformation, self.constraints, rng=rng
                    )
                changed = best.sentence.diff_count(original)
                if changed > self.word_budget(len(original)):  # the search broke its contract
                    raise RuntimeError(
                        f"{self.name}: search changed {changed} words, over the budget"
                    )
                adv_texts.append(best.sentence.text)
                runs.append((changed, len(original), time.perf_counter() - t0))
            final = _probs(target, adv_texts)  # success is recomputed, never trusted
        for i, text in enumerate(texts):
            pc, pa = clean[i], final[i]
            pred_c, pred_a = int(pc.argmax()), int(pa.argmax())
            if pred_c != y[i]:
                status = Status.SKIPPED
            elif (pred_a == tgt[i]) if tgt is not None else (pred_a != y[i]):
                status = Status.SUCCEEDED
            else:
                status = Status.FAILED
            changed, n_words, secs = runs[i]
            rec = TextAttackResult(
                original=text,
                adversarial=adv_texts[i],
                y=y[i],
                target=None if tgt is None else tgt[i],
                status=status,
                pred_clean=pred_c,
                conf_clean=float(pc.max()),
                pred_adv=pred_a,
                conf_adv=float(pa.max()),
                words_changed=changed,
                num_words=n_words,
                queries=int(oracle.queries[i]),
                seconds=secs,
            )
            records.append(rec)
            if progress is not None:
                progress(i, rec)
        return TextAttackResults(
            results=tuple(records),
            recipe=self.name,
            config=self.config,
            class_names=names,
            seconds=time.perf_counter() - t_start,
        )

    def _targets(
        self, spec: TargetSpec, y: list[int], clean: Tensor, target: TextTarget
    ) -> list[int] | None:
        """Target classes by the resolver image attacks use; ``"random"`` draws one
        offset per text, in order, from ``random.Random(seed)``."""
        if isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) != len(y):
            raise InputError(f"targets has {len(spec)} entries for {len(y)} texts")
        t = resolve_targets(
            spec,
            torch.tensor(y, dtype=torch.int64),
            clean,
            target.num_classes,
            _SeededOffsets(0 if self.seed is None else self.seed, len(y)),
            target.class_names,
        )
        return None if t is None else [int(v) for v in t.tolist()]


class _SeededOffsets:
    """Draws for :func:`~advx.attacks.base.resolve_targets`: ``n`` integers, one per text
    in order, from ``random.Random(seed)`` (how text attacks have always drawn random
    targets, so seeds keep giving the same targets)."""

    def __init__(self, seed: int, n: int) -> None:
        self.seed, self.n = seed, n

    def randint(self, low: int, high: int) -> Tensor:
        rng = random.Random(self.seed)
        return torch.tensor([rng.randrange(low, high) for _ in range(self.n)], dtype=torch.int64)


def _probs(target: TextTarget, texts: list[str], batch_size: int = 256) -> Tensor:
    """Scores ``(N, C)`` of ``texts`` (float32, CPU), ``batch_size`` texts per call."""
    out = [
        target.scores(texts[i : i + batch_size]).float().cpu()
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, target.num_classes)
