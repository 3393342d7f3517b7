"""Text targets: how a text attack may touch a text classifier.

A :class:`TextTarget` is a :class:`~advx.targets.Target` whose inputs are texts: the same
access levels (:class:`~advx.targets.Access`), the same query counter and, through
:class:`~advx.targets.Oracle`, the same per-example accounting and budgets as image
targets. Its evaluations take a list of strings instead of a tensor:

* ``scores(texts) -> (N, C)`` probabilities (score access and up),
* ``labels(texts) -> (N,)`` (every target),
* white-box only: ``logits(texts)``, ``word_gradients(text, words, label)`` (one query)
  and ``embedding_table()`` (free: it is part of the model).

Implementations: :class:`advx.text.classifier.TextClassifier` (the zoo's text models,
white-box); in :mod:`advx.text.adapters`, :class:`~advx.text.adapters.HttpTextTarget` (a
text model behind an Open Inference Protocol endpoint, black-box) and
:class:`~advx.text.adapters.TextModelTarget` (any object with ``predict_proba``);
:func:`~advx.text.adapters.as_text_target` picks the right one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from advx.errors import AccessError, InputError
from advx.targets import Access, Target, check_output

__all__ = ["TextTarget"]


def _batch(texts: Any) -> list[str]:
    """``texts`` as a list of strings; :class:`InputError` for a bare string."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InputError(
            f"a text target takes a list of strings, got {type(texts).__name__}; "
            'wrap one text in a list: ["..."]'
        )
    return list(texts)


class TextTarget(Target):
    """Base of text targets: metadata, access level and query counter of a
    :class:`~advx.targets.Target`, evaluations over texts.

    Subclasses implement ``_scores(texts)`` (black-box) or ``_logits(texts)``; white-box
    ones also ``_word_gradients`` and ``_embedding_table`` and set ``access =
    Access.GRADIENTS``. The public methods check the access level, count queries and
    check the output's shape, exactly as :class:`~advx.targets.Target` does for tensors.

    Args:
        num_classes: number of classes ``C``.
        class_names: one name per class (default ``"0"``, ``"1"``, ...).
        name: shown in messages and results.
        max_len: tokens the model reads per text, when known (its ``input_shape`` is
            ``(max_len,)``; ``()`` otherwise).
    """

    access = Access.SCORES

    def __init__(
        self,
        *,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        name: str = "text-model",
        max_len: int | None = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise InputError(f"a text model must declare num_classes >= 2, got {num_classes!r}")
        super().__init__(
            input_shape=(int(max_len),) if max_len else (),
            num_classes=num_classes,
            bounds=(0.0, 1.0),  # not meaningful for texts; kept for the Target interface
            class_names=class_names,
            name=name,
        )

    # -- evaluations over texts (public ones count queries) ----------------------------
    def logits(self, texts: Sequence[str]) -> Tensor:  # type: ignore[override]
        """Logits ``(N, C)``, differentiable w.r.t. the model's parameters; white-box only."""
        self._require(Access.GRADIENTS, "logits")
        batch = _batch(texts)
        self.queries += len(batch)
        return check_output(self, self._logits(batch), len(batch), "logits")

    def scores(self, texts: Sequence[str]) -> Tensor:  # type: ignore[override]
        """Class probabilities ``(N, C)`` (float32, CPU, no gradient)."""
        self._require(Access.SCORES, "scores")
        batch = _batch(texts)
        self.queries += len(batch)
        with torch.no_grad():
            return check_output(self, self._scores(batch), len(batch), "scores")

    def labels(self, texts: Sequence[str]) -> Tensor:  # type: ignore[override]
        """Predicted labels ``(N,)`` (int64); every target."""
        batch = _batch(texts)
        self.queries += len(batch)
        with torch.no_grad():
            return check_output(self, self._labels(batch), len(batch), "labels")

    def predict_proba(self, texts: Sequence[str]) -> Tensor:
        """:meth:`scores` under the name text models use (:class:`~advx.text.goal.TextModel`)."""
        return self.scores(texts)

    def word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Ids ``(n,)`` and gradients ``(n, d)`` of the cross-entropy of ``label`` (negated
        if ``targeted``) at the input embeddings of the attackable ``words`` of ``text``;
        id -1 where a word is not exactly one token. White-box only; one query."""
        self._require(Access.GRADIENTS, "word gradients")
        self.queries += 1
        return self._word_gradients(text, words, label, targeted=targeted)

    def embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        """``(V, d)`` input embeddings, the ``V`` tokens, and a ``(V,)`` mask of real
        words. White-box only; free (it is part of the model, not a query)."""
        self._require(Access.GRADIENTS, "the embedding table")
        return self._embedding_table()

    # -- what subclasses implement -------------------------------------------------------
    def _logits(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        raise AccessError(f"text model {self.name!r} gives probabilities, not logits")

    def _scores(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        return self._logits(texts).softmax(dim=1)

    def _labels(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        return self._scores(texts).argmax(dim=1)

    def _word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        raise NotImplementedError

    # -- views ---------------------------------------------------------------------------
    def as_scores(self) -> TextTarget:
        """This target seen as a score-only (black-box) text target."""
        self._require(Access.SCORES, "as_scores()")
        return _TextView(self, Access.SCORES)

    def as_labels(self) -> TextTarget:
        """This target seen as a labels-only text target."""
        return _TextView(self, Access.LABELS)


class _TextView(TextTarget):
    """A view of a stronger text target restricted to a lower access level."""

    def __init__(self, inner: TextTarget, access: Access) -> None:
        super().__init__(
            num_classes=inner.num_classes,
            class_names=inner.class_names,
            name=inner.name,
            max_len=inner.input_shape[0] if inner.input_shape else None,
        )
        self.inner = inner
        self.access = access

    def _scores(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        return self.inner._scores(texts)

    def _labels(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        return self.inner._labels(texts)

    def attacking(self) -> Any:
        return self.inner.attacking()
