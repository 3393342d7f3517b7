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
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from advx.attacks.result import Status
from advx.errors import AccessError, InputError
from advx.text import constraints as C
from advx.text import transformations as T
from advx.text.goal import Goal, Scorer
from advx.text.result import TextAttackResult, TextAttackResults
from advx.text.search import BeamSearch, GreedySearch
from advx.text.sentence import Sentence, check_texts

log = logging.getLogger(__name__)

Progress = Callable[[int, TextAttackResult], None]
TargetSpec = Sequence[int] | Tensor | str | None


def check_model(model: Any) -> tuple[int, tuple[str, ...]]:
    """Return ``(num_classes, class_names)`` of a text model; :class:`InputError` if it
    lacks ``predict_proba`` or ``num_classes``."""
    if not callable(getattr(model, "predict_proba", None)):
        raise InputError(
            f"a text model needs predict_proba(list[str]) -> Tensor (N, C); "
            f"{type(model).__name__} has none (load one with advx.text.models.load)"
        )
    n = getattr(model, "num_classes", None)
    if not isinstance(n, int) or n < 2:
        raise InputError(f"the text model must declare num_classes >= 2, got {n!r}")
    names = tuple(getattr(model, "class_names", ()) or (str(i) for i in range(n)))
    return n, names


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
            model: the text classifier.
            texts: ``N`` non-empty strings.
            labels: their true classes ``(N,)``.
            targets: None (untargeted), class indices ``(N,)``, ``"random"`` (a random
                other class, seeded) or ``"next"`` (``(y + 1) % C``).
            progress: called as ``progress(i, result)`` after each example.

        Returns:
            :class:`TextAttackResults`, one record per text, in order.
        """
        from advx.text.models import as_text_model

        t_start = time.perf_counter()
        model = as_text_model(model)  # a zoo Classifier of a text arch -> TextClassifier
        num_classes, names = check_model(model)
        texts = check_texts(texts)
        y = check_labels(labels, len(texts), num_classes)
        tgt = self._targets(targets, y, num_classes)
        if self.needs_gradients and not (
            callable(getattr(model, "word_gradients", None))
            and callable(getattr(model, "embedding_table", None))
        ):
            raise AccessError(
                f"{self.name} needs gradients (a white-box text model with an embedding "
                f"layer); {type(model).__name__} only gives scores. Use deepwordbug, pwws "
                "or textfooler"
            )
        ctx = model.attacking() if callable(getattr(model, "attacking", None)) else nullcontext()
        records: list[TextAttackResult] = []
        with ctx, torch.no_grad():
            clean = _probs(model, texts)  # framework overhead: not charged to the search
            adv_texts: list[str] = []
            runs: list[tuple[int, int, float, int]] = []  # (words changed, words, s, queries)
            for i, text in enumerate(texts):
                t0 = time.perf_counter()
                original = Sentence.parse(text)
                if int(clean[i].argmax()) != y[i]:
                    adv_texts.append(text)
                    runs.append((0, len(original), time.perf_counter() - t0, 0))
                    continue
                goal = Goal(label=y[i], target=None if tgt is None else tgt[i])
                scorer = Scorer(model, goal, max_queries=self.max_queries)
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
                runs.append((changed, len(original), time.perf_counter() - t0, scorer.queries))
            final = _probs(model, adv_texts)  # success is recomputed, never trusted
        for i, text in enumerate(texts):
            pc, pa = clean[i], final[i]
            pred_c, pred_a = int(pc.argmax()), int(pa.argmax())
            if pred_c != y[i]:
                status = Status.SKIPPED
            elif (pred_a == tgt[i]) if tgt is not None else (pred_a != y[i]):
                status = Status.SUCCEEDED
            else:
                status = Status.FAILED
            changed, n_words, secs, queries = runs[i]
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
                queries=queries,
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

    def _targets(self, spec: TargetSpec, y: list[int], num_classes: int) -> list[int] | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            if spec == "next":
                return [(v + 1) % num_classes for v in y]
            if spec == "random":
                rng = random.Random(0 if self.seed is None else self.seed)
                return [(v + rng.randrange(1, num_classes)) % num_classes for v in y]
            raise InputError(f"unknown targets helper {spec!r}; use 'random', 'next' or indices")
        t = check_labels(spec, len(y), num_classes, what="targets")
        same = [i for i, (a, b) in enumerate(zip(t, y, strict=True)) if a == b]
        if same:
            raise InputError(
                f"targets equal the true label for examples {same[:5]}; a targeted attack "
                "needs a different class"
            )
        return t


def _probs(model: Any, texts: list[str], batch_size: int = 256) -> Tensor:
    out = []
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        p = model.predict_proba(chunk)
        p = p if isinstance(p, Tensor) else torch.as_tensor(p)
        if p.dim() != 2 or p.shape[0] != len(chunk):
            raise InputError(
                f"predict_proba must return (len(texts), C), got {tuple(p.shape)} for "
                f"{len(chunk)} texts"
            )
        out.append(p.detach().float().cpu())
    return torch.cat(out)
