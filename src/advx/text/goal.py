"""Goals of a text attack, and the per-example view of the model that applies them.

A :class:`Goal` says what counts as success (untargeted: any wrong label; targeted: one
chosen class) and how close a text is to it (a score in [0, 1], higher is closer). A
:class:`Scorer` is what the search talks to for one example: it scores sentences through
the model, counts queries (one query = one text scored, or one gradient computed),
honours the example's ``max_queries`` budget and remembers texts it has already scored
(asking again is free: an attacker keeps its notes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from advx.errors import AccessError, InputError, QueryBudgetExceeded
from advx.targets import Access, Oracle, Query
from advx.text.sentence import Sentence


@runtime_checkable
class TextModel(Protocol):
    """What a text attack needs from a classifier (black-box, scores).

    Attributes:
        num_classes: number of classes ``C``.
        class_names: one name per class.
    """

    num_classes: int
    class_names: tuple[str, ...]

    def predict_proba(self, texts: list[str]) -> Tensor:
        """Class probabilities ``(len(texts), C)``, rows summing to 1."""
        ...


@runtime_checkable
class GradientTextModel(TextModel, Protocol):
    """A text classifier with an embedding layer (white-box; HotFlip, gradient ranking)."""

    def word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool = False
    ) -> tuple[Tensor, Tensor]:
        """For the attackable words ``w_1..w_n`` of ``text``: their vocabulary ids
        ``(n,)`` (-1 when a word is not a single token) and the gradient ``(n, d)`` of the
        attacker's loss (cross-entropy of ``label``; its negative when ``targeted``)
        with respect to each word's input embedding."""
        ...

    def embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        """``(V, d)`` input embeddings, the ``V`` words, and a ``(V,)`` bool mask of real
        words (False for padding/unknown/special tokens)."""
        ...


@dataclass(frozen=True)
class Goal:
    """What the attacker wants for one example.

    Args:
        label: the true class ``y``.
        target: the class to reach (targeted), or None (untargeted: any class but ``y``).

    The score of probabilities ``p`` is ``1 - p[y]`` (untargeted) or ``p[target]``
    (targeted); the goal is reached when the predicted class is not ``y`` (untargeted)
    or is ``target`` (targeted).

    Example:
        >>> g = Goal(label=0)
        >>> g.reached(torch.tensor([[0.4, 0.6]])).tolist()
        [True]
    """

    label: int
    target: int | None = None

    @property
    def targeted(self) -> bool:
        """True for a targeted goal."""
        return self.target is not None

    def score(self, probs: Tensor) -> Tensor:
        """Closeness to the goal ``(K,)`` in [0, 1] of probabilities ``(K, C)``."""
        if self.target is not None:
            return probs[:, self.target]
        return 1.0 - probs[:, self.label]

    def reached(self, probs: Tensor) -> Tensor:
        """Bool ``(K,)``: the goal is met by each row of ``probs`` ``(K, C)``."""
        pred = probs.argmax(dim=1)
        if self.target is not None:
            return pred == self.target
        return pred != self.label


@dataclass(frozen=True)
class Scored:
    """A sentence with the model's view of it.

    Attributes:
        sentence: the candidate.
        score: closeness to the goal (higher is better for the attacker).
        reached: the goal is met.
        probs: class probabilities ``(C,)``.
    """

    sentence: Sentence
    score: float
    reached: bool
    probs: Tensor

    @property
    def pred(self) -> int:
        """Predicted class."""
        return int(self.probs.argmax())


class Scorer:
    """The model as the search sees it for one example: goal scores, queries, budget.

    Queries go through the attack's :class:`~advx.targets.Oracle`, which counts them per
    example and enforces the per-example budget, exactly as for image attacks; a text
    asked again is answered from the scorer's notes without a query.

    Args:
        model: a :class:`~advx.targets.Query` of a text target's oracle, restricted to one
            example (what :class:`~advx.text.attack.TextAttack` passes); or a text model
            or :class:`~advx.text.target.TextTarget`, for which the scorer opens its own
            one-example oracle with budget ``max_queries``.
        goal: the example's :class:`Goal`.
        max_queries: budget of this example when ``model`` is not a query (None:
            unlimited). Scoring stops at the budget: :meth:`score` returns fewer results
            than asked and :attr:`exhausted` turns True; the search then returns its best
            so far.
        batch_size: texts per scoring call.
    """

    def __init__(
        self,
        model: Any,
        goal: Goal,
        *,
        max_queries: int | None = None,
        batch_size: int = 256,
    ) -> None:
        if isinstance(model, Query):
            if len(model) != 1:
                raise InputError(f"a Scorer scores one example; the query covers {len(model)}")
            if max_queries is not None:
                raise InputError("the query's oracle holds the budget; do not pass max_queries")
            query = model
        else:
            from advx.text.adapters import as_text_target

            query = Oracle(as_text_target(model), 1, max_queries=max_queries).view("scores")
        self.query = query
        self.target: Any = query.oracle.target  # a TextTarget
        self.goal = goal
        self.max_queries = query.oracle.max_queries
        self.batch_size = batch_size
        self._seen: dict[str, Scored] = {}

    @property
    def queries(self) -> int:
        """Queries this example has spent."""
        return int(self.query.queries[0])

    @property
    def remaining(self) -> int | None:
        """Queries left (None: unlimited)."""
        left = self.query.remaining
        return None if left is None else max(0, int(left[0]))

    @property
    def exhausted(self) -> bool:
        """True when the budget is spent."""
        return bool(self.query.exhausted[0])

    @property
    def has_gradients(self) -> bool:
        """True when the target grants white-box access (word gradients, embeddings)."""
        return bool(self.target.access >= Access.GRADIENTS)

    def _charge(self, k: int) -> None:
        self.query.oracle.charge(self.query.idx.repeat_interleave(k))

    def score(self, sentences: Sequence[Sentence]) -> list[Scored]:
        """Score ``sentences`` in order, charging one query per text not scored before;
        stops early (shorter list) when the budget runs out."""
        out: list[Scored] = []
        todo: list[Sentence] = []
        pending: set[str] = set()
        for s in sentences:
            t = s.text
            if t not in self._seen and t not in pending:
                pending.add(t)
                todo.append(s)
        left = self.remaining
        if left is not None:
            todo = todo[:left]
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i : i + self.batch_size]
            self._charge(len(chunk))
            probs = self.target.scores([s.text for s in chunk]).float().cpu()
            scores = self.goal.score(probs)
            reached = self.goal.reached(probs)
            for s, p, sc, r in zip(chunk, probs, scores.tolist(), reached.tolist(), strict=True):
                self._seen[s.text] = Scored(s, float(sc), bool(r), p)
        for s in sentences:
            hit = self._seen.get(s.text)
            if hit is None:
                break  # budget ran out here
            out.append(Scored(s, hit.score, hit.reached, hit.probs))
        return out

    def score_texts(self, texts: Sequence[str]) -> Tensor:
        """Goal scores ``(K,)`` of raw texts (word importance uses deleted-word texts),
        charged and cached like :meth:`score`; shorter when the budget runs out."""
        got = self.score([Sentence.parse(t) for t in texts])
        return torch.tensor([g.score for g in got])

    def word_gradients(self, s: Sentence) -> tuple[Tensor, Tensor]:
        """Ids ``(n,)`` and gradients ``(n, d)`` of the attacker's loss for the words of
        ``s`` (one query). Raises :class:`~advx.errors.QueryBudgetExceeded` when spent,
        :class:`~advx.errors.AccessError` on a black-box target."""
        if not self.has_gradients:
            raise AccessError(
                f"word gradients need {Access.GRADIENTS.label}; {self.target.name!r} gives "
                f"{self.target.access.label}"
            )
        if self.exhausted:
            raise QueryBudgetExceeded(f"max_queries={self.max_queries} spent")
        self._charge(1)
        g = self.goal
        label = g.target if g.target is not None else g.label
        ids, grads = self.target.word_gradients(s.text, list(s.words), label, targeted=g.targeted)
        return ids, grads

    def embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        """The model's embedding table (free: it is part of the white-box model)."""
        if not hasattr(self, "_table"):
            self._table: tuple[Tensor, list[str], Tensor] = self.target.embedding_table()
        return self._table
