"""Search methods: how a text attack walks the space its transformation opens.

Each search is a plain function over one example, taking the original sentence, the
example's :class:`~advx.text.goal.Scorer` (model, goal, query budget), the
transformation, the constraints and a ``random.Random``; it returns the best
:class:`~advx.text.goal.Scored` sentence found, stopping as soon as the goal is reached
or the budget is spent. The frozen dataclasses at the end are the configured shells the
attack holds.

* :func:`greedy_search` — greedy by word importance: rank the words once, then change
  them in that order, keeping each change that helps (DeepWordBug, TextFooler), or, with
  ``ranking="weighted-saliency"``, apply the precomputed best swap of each word in the
  order of PWWS's score;
* :func:`beam_search` — keep the ``beam_width`` best sentences, expand each at every
  allowed position; with a gradient transformation and ``beam_width=1`` this is HotFlip's
  greedy search.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from advx.errors import AccessError, InputError
from advx.text.constraints import Constraint, MaxWordsChanged, allowed_positions, apply
from advx.text.goal import Scored, Scorer
from advx.text.sentence import Sentence
from advx.text.transformations import Transformation

RANKINGS = ("unk", "delete", "gradient", "weighted-saliency", "random")
UNK = "[UNK]"


def word_importance(
    original: Scored,
    positions: Sequence[int],
    scorer: Scorer,
    *,
    ranking: str,
    rng: random.Random,
) -> list[float] | None:
    """Importance of each word in ``positions`` (higher first to attack), or None when
    the budget ran out.

    ``unk``/``delete``: the goal-score gain of replacing the word by ``[UNK]`` / deleting
    it (one query per word; TextFooler's importance when the label does not change);
    ``gradient``: the norm of the loss gradient at the word's embedding (one query);
    ``random``: a random order (no query).
    """
    s = original.sentence
    if ranking == "random":
        return [rng.random() for _ in positions]
    if ranking == "gradient":
        if not scorer.has_gradients:
            raise AccessError("ranking='gradient' needs a white-box text model; use ranking='unk'")
        if scorer.exhausted:
            return None
        ids, grads = scorer.word_gradients(s)  # (n,), (n, d)
        return [float(grads[i].norm()) for i in positions]
    if ranking not in ("unk", "delete"):
        raise InputError(f"unknown ranking {ranking!r}; choose from {RANKINGS}")
    fill = UNK if ranking == "unk" else ""
    texts = [s.with_word(i, fill) for i in positions]
    scores = scorer.score_texts(texts)
    if len(scores) < len(texts):
        return None
    return (scores - original.score).tolist()


def word_budget(constraints: Sequence[Constraint], n_words: int) -> int:
    """Most words the constraints let change in an ``n_words``-word sentence."""
    b = n_words
    for c in constraints:
        if isinstance(c, MaxWordsChanged):
            b = min(b, c.budget(n_words))
    return b


def greedy_search(
    original: Sentence,
    scorer: Scorer,
    transformation: Transformation,
    constraints: Sequence[Constraint],
    *,
    ranking: str = "unk",
    budget_aware: bool = False,
    min_importance: float | None = None,
    rng: random.Random,
) -> Scored:
    """Greedy search by word importance (Gao et al. 2018; Jin et al. 2020; Ren et al. 2019).

    1. score the original; rank the changeable words by importance;
    2. for each word in that order: propose replacements, filter them by the
       constraints, score them; stop if one reaches the goal (the best-scoring one wins);
       otherwise keep the best if it improves on the current sentence.

    With ``budget_aware`` and a word cap (:class:`~advx.text.constraints.MaxWordsChanged`),
    a change that would use the *last* word of the budget is kept only if it reaches the
    goal: otherwise the search leaves the sentence as it is and tries the next word. The
    papers' greedy keeps any improving change, which under a cap of one or two words
    (tweets) spends the whole budget on the first word that helps a little; this costs
    more queries on texts that resist (each remaining word is tried) and succeeds more
    often.

    With ``min_importance`` set, words whose importance is at or below it are not
    attacked (DeepWordBug with ``0.0``: a typo mostly makes a word unknown to a
    word-level model, so a word whose replacement by ``[UNK]`` does not move the score
    toward the goal is rarely worth its edits' queries).

    With ``ranking="weighted-saliency"`` (PWWS) step 1 also scores every replacement of
    every word on the original, and step 2 applies each word's precomputed best swap in
    the order of ``softmax(saliency)_i * best_gain_i`` (one query per step).
    """
    start = scorer.score([original])
    if not start:
        raise InputError("max_queries must allow at least one query (the original text)")
    current = start[0]
    if current.reached:
        return current
    positions = allowed_positions(constraints, original, original)
    if not positions:
        return current
    best_swap: dict[int, Sentence] = {}
    if ranking == "weighted-saliency":
        imp = word_importance(current, positions, scorer, ranking="unk", rng=rng)
        if imp is None:
            return current
        saliency = torch.tensor(imp).softmax(dim=0)
        gains = []
        for i in positions:
            cands = apply(constraints, transformation(original, [i], rng=rng), original, original)
            scored = scorer.score(cands)
            if len(scored) < len(cands):
                return _best_reached(scored) or current
            hit = _best_reached(scored)
            if hit is not None:
                return hit
            if scored:
                top = max(scored, key=lambda c: c.score)
                best_swap[i] = top.sentence
                gains.append(top.score - current.score)
            else:
                gains.append(-float("inf"))
        importance = (saliency * torch.tensor(gains)).tolist()
    else:
        got = word_importance(current, positions, scorer, ranking=ranking, rng=rng)
        if got is None:
            return current
        importance = got
    ranked = sorted(zip(importance, positions, strict=True), key=lambda t: -t[0])
    order = [p for v, p in ranked if min_importance is None or v > min_importance]
    budget = word_budget(constraints, len(original)) if budget_aware else len(original) + 1

    for i in order:
        if scorer.exhausted:
            break
        s = current.sentence
        if i not in allowed_positions(constraints, s, original):
            continue
        if ranking == "weighted-saliency":
            if i not in best_swap:
                continue
            cands = [s.replace(i, best_swap[i].words[i])]
        else:
            cands = transformation(s, [i], rng=rng, scorer=scorer)
        cands = apply(constraints, cands, s, original)
        if not cands:
            continue
        scored = scorer.score(cands)
        hit = _best_reached(scored)
        if hit is not None:
            return hit
        if not scored:
            break
        top = max(scored, key=lambda c: c.score)
        if top.sentence.diff_count(original) >= budget:
            continue  # the last word of the budget goes only to a change that succeeds
        if top.score > current.score or ranking == "weighted-saliency":
            current = top
    return current


def beam_search(
    original: Sentence,
    scorer: Scorer,
    transformation: Transformation,
    constraints: Sequence[Constraint],
    *,
    beam_width: int = 5,
    max_steps: int | None = None,
    rng: random.Random,
) -> Scored:
    """Beam search (HotFlip's search with a gradient transformation; greedy when
    ``beam_width=1``).

    Each step expands every sentence of the beam at all positions the constraints allow,
    scores the survivors of the constraints, returns the best one that reaches the goal,
    else keeps the ``beam_width`` best. Stops when nothing can be proposed, after
    ``max_steps`` steps (default: the number of words), or at the budget.
    """
    start = scorer.score([original])
    if not start:
        raise InputError("max_queries must allow at least one query (the original text)")
    best = start[0]
    if best.reached:
        return best
    beam = [best]
    for _ in range(max_steps if max_steps is not None else len(original)):
        cands: list[Sentence] = []
        seen: set[str] = set()
        for b in beam:
            if scorer.exhausted:
                break
            pos = allowed_positions(constraints, b.sentence, original)
            if not pos:
                continue
            for c in apply(
                constraints,
                transformation(b.sentence, pos, rng=rng, scorer=scorer),
                b.sentence,
                original,
            ):
                if c.text not in seen:
                    seen.add(c.text)
                    cands.append(c)
        if not cands or scorer.exhausted:
            break
        scored = scorer.score(cands)
        hit = _best_reached(scored)
        if hit is not None:
            return hit
        if not scored:
            break
        scored.sort(key=lambda c: -c.score)
        beam = scored[:beam_width]
        if beam[0].score > best.score:
            best = beam[0]
    return best


def _best_reached(scored: Sequence[Scored]) -> Scored | None:
    hits = [c for c in scored if c.reached]
    return max(hits, key=lambda c: c.score) if hits else None


# --------------------------------------------------------------------- configured shells
@dataclass(frozen=True, kw_only=True)
class GreedySearch:
    """Greedy search by word importance (:func:`greedy_search`).

    Args:
        ranking: ``"unk"`` (default), ``"delete"``, ``"gradient"``,
            ``"weighted-saliency"`` (PWWS) or ``"random"``.
        budget_aware: under a word cap, spend the last word only on a change that
            reaches the goal (default False: the papers' greedy).
        min_importance: skip words whose importance is at or below this (default None:
            attack every word, as the papers do).
    """

    name: ClassVar[str] = "greedy"
    ranking: str = "unk"
    budget_aware: bool = False
    min_importance: float | None = None

    def __post_init__(self) -> None:
        if self.ranking not in RANKINGS:
            raise InputError(f"unknown ranking {self.ranking!r}; choose from {RANKINGS}")

    @property
    def needs_gradients(self) -> bool:
        """True when the ranking asks for gradients."""
        return self.ranking == "gradient"

    def __call__(
        self,
        original: Sentence,
        scorer: Scorer,
        transformation: Transformation,
        constraints: Sequence[Constraint],
        *,
        rng: random.Random,
    ) -> Scored:
        return greedy_search(
            original,
            scorer,
            transformation,
            constraints,
            ranking=self.ranking,
            budget_aware=self.budget_aware,
            min_importance=self.min_importance,
            rng=rng,
        )


@dataclass(frozen=True, kw_only=True)
class BeamSearch:
    """Beam search (:func:`beam_search`).

    Args:
        beam_width: sentences kept per step (1: greedy).
        max_steps: most words changed along one path (None: the sentence length).
    """

    name: ClassVar[str] = "beam"
    beam_width: int = 5
    max_steps: int | None = None
    needs_gradients: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.beam_width < 1:
            raise InputError(f"beam_width must be >= 1, got {self.beam_width}")

    def __call__(
        self,
        original: Sentence,
        scorer: Scorer,
        transformation: Transformation,
        constraints: Sequence[Constraint],
        *,
        rng: random.Random,
    ) -> Scored:
        return beam_search(
            original,
            scorer,
            transformation,
            constraints,
            beam_width=self.beam_width,
            max_steps=self.max_steps,
            rng=rng,
        )
