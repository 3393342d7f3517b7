"""The zoo's text models as white-box text targets, and their build / load / save.

:class:`TextClassifier` wraps a zoo :class:`~advx.models.adapter.Classifier` whose network
is one of :mod:`advx.text.networks` (architectures of :mod:`advx.text.archs`). It is a
:class:`~advx.text.target.TextTarget` with gradient access: text attacks score texts
through it (``scores``, counted per example by :class:`~advx.targets.Oracle`) and, white-box,
ask for word gradients and the embedding table.

Example:
    >>> clf = build("wordcnn", vocab=["<pad>", "<unk>", "good", "bad"],
    ...             class_names=("negative", "positive"))
    >>> clf.predict_proba(["good car"]).shape, clf.access.name
    (torch.Size([1, 2]), 'GRADIENTS')
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advx.errors import CheckpointError, ConfigError, InputError
from advx.models.adapter import Classifier
from advx.targets import Access
from advx.text.archs import ARCHS, DEFAULT_MAX_LEN, MINILM_MAX_LEN
from advx.text.networks import MiniLMNet, is_text_net
from advx.text.target import TextTarget

__all__ = ["TextClassifier", "as_text_model", "build", "is_text_classifier", "load", "save"]


def is_text_classifier(model: Any) -> bool:
    """True when ``model`` is a zoo classifier of a text architecture."""
    return isinstance(model, Classifier) and is_text_net(model.net)


class TextClassifier(TextTarget):
    """The text view of a zoo :class:`~advx.models.adapter.Classifier` whose network
    reads token ids (any architecture of :mod:`advx.text.archs`): a white-box
    :class:`~advx.text.target.TextTarget`.

    It gives attacks ``scores(list[str]) -> Tensor (N, C)`` (also as ``predict_proba``)
    and, white-box, :meth:`word_gradients` and :meth:`embedding_table`. A frozen
    ``minilm`` scores texts from cached sentence embeddings.

    Args:
        clf: the classifier (``advx.models.load(path)`` or :func:`build`).
        batch_size: texts per forward pass in :meth:`predict_proba`.
    """

    access = Access.GRADIENTS

    def __init__(self, clf: Classifier, *, batch_size: int = 256) -> None:
        if not is_text_classifier(clf):
            raise InputError(
                f"TextClassifier needs a text model of the zoo ({', '.join(ARCHS)}), got "
                f"{type(getattr(clf, 'net', clf)).__name__}"
            )
        super().__init__(
            num_classes=int(clf.num_classes),
            class_names=tuple(clf.class_names),
            name=str(getattr(clf, "arch", type(clf.net).__name__)),
            max_len=int(clf.input_shape[0]),
        )
        self.clf = clf
        self.net: Any = clf.net
        self.max_len = int(clf.input_shape[0])
        self.batch_size = batch_size
        self._frozen = 0  # depth of attacking() contexts (skip re-freezing per call)

    @property
    def arch(self) -> str:
        """Registry name of the architecture."""
        return str(getattr(self.clf, "arch", type(self.net).__name__))

    def encode(self, texts: Sequence[str], *, pad_to_max: bool = False) -> Tensor:
        """Token ids ``(N, L)`` (``L = max_len`` with ``pad_to_max``, as training needs)."""
        ids: Tensor = self.net.encode(list(texts), self.max_len)
        if pad_to_max and ids.shape[1] < self.max_len:
            ids = nn.functional.pad(ids, (0, self.max_len - ids.shape[1]))
        return ids

    @contextmanager
    def attacking(self) -> Iterator[TextClassifier]:
        """Eval mode and frozen parameters for the duration (restored exactly)."""
        with self.clf.frozen_eval():
            self._frozen += 1
            try:
                yield self
            finally:
                self._frozen -= 1

    def _eval(self) -> Any:
        return nullcontext() if self._frozen else self.clf.frozen_eval()

    def _logits(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        if isinstance(self.net, MiniLMNet) and self.net.frozen:
            out: Tensor = self.net.head(self.net.encoder.encode(list(texts)))
            return out
        return self.clf(self.encode(texts))  # type: ignore[no-any-return]

    def _scores(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        out = []
        with self._eval(), torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                out.append(self._logits(texts[i : i + self.batch_size]).softmax(dim=1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.num_classes)

    def _embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        return self.net.embedding.weight.detach().cpu(), self.net.tokens(), self.net.valid_tokens()

    def _word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool
    ) -> tuple[Tensor, Tensor]:
        ids = self.encode([text])  # (1, L)
        where = self.net.token_positions(text, words, self.max_len)
        with self._eval(), torch.enable_grad():
            e = self.net.embedding(ids).detach().requires_grad_(True)  # (1, L, d)
            logits = self.net.from_embeddings(e, ids != 0)
            loss = nn.functional.cross_entropy(logits, torch.tensor([int(label)]))
            (g,) = torch.autograd.grad(-loss if targeted else loss, e)
        out_ids = torch.full((len(words),), -1, dtype=torch.long)
        out_g = torch.zeros(len(words), e.shape[-1])
        for i, j in enumerate(where):
            if 0 <= j < ids.shape[1]:
                out_ids[i] = int(ids[0, j])
                out_g[i] = g[0, j]
        return out_ids, out_g

    def __repr__(self) -> str:
        return f"TextClassifier(arch={self.arch!r}, classes={self.class_names})"


# ----------------------------------------------------------------------- build / io
def build(
    arch: str,
    *,
    class_names: Sequence[str],
    vocab: Sequence[str] | Any = None,
    max_len: int | None = None,
    **options: Any,
) -> TextClassifier:
    """A fresh (untrained) text model, wrapped for attacks.

    Args:
        arch: ``"bow"``, ``"wordcnn"``, ``"lstm"`` or ``"minilm"``.
        class_names: one name per class.
        vocab: word-level archs: tokens by id or a :class:`~advx.data.text.Vocab`.
        max_len: tokens kept per text (default 64 words; 128 WordPieces for minilm).
        **options: the architecture's options (``advx.models.ARCHS[arch].options()``).
    """
    from advx.models.registry import build as build_model

    if arch not in ARCHS:
        raise ConfigError(f"unknown text architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if arch != "minilm":
        tokens = list(vocab.tokens) if hasattr(vocab, "tokens") else vocab
        options["vocab"] = tokens
    n = max_len or (MINILM_MAX_LEN if arch == "minilm" else DEFAULT_MAX_LEN)
    clf = build_model(
        arch, input_shape=(n,), num_classes=len(class_names), class_names=class_names, **options
    )
    clf.arch_kwargs = {k: v for k, v in clf.arch_kwargs.items() if k != "vocab"}  # in vocab.json
    return TextClassifier(clf)


def load(path: str | os.PathLike[str]) -> TextClassifier:
    """Load a text-model checkpoint (written by ``advx train`` or :func:`save`).

    Raises:
        CheckpointError: not a checkpoint, damaged, or not a text model.
    """
    from advx.models.checkpoint import load as load_model

    clf = load_model(path)
    if not is_text_classifier(clf):
        raise CheckpointError(
            f"{path} holds a {getattr(clf, 'arch', '?')!r} model, not a text model "
            f"({', '.join(ARCHS)})"
        )
    clf.arch_kwargs = {k: v for k, v in clf.arch_kwargs.items() if k != "vocab"}
    return TextClassifier(clf)


def save(
    model: TextClassifier, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None
) -> Path:
    """Save through :func:`advx.models.save` (weights, ``model.json``, and ``vocab.json``
    or ``encoder.json``)."""
    from advx.models.checkpoint import save as save_model

    return save_model(model.clf, path, meta=meta)


def as_text_model(model: Any) -> Any:
    """``model`` itself if it has ``predict_proba``, a :class:`TextClassifier` for a text
    :class:`~advx.models.adapter.Classifier`; otherwise unchanged (the caller reports).
    Attacks use :func:`advx.text.target.as_text_target`, which also adapts the first kind."""
    if callable(getattr(model, "predict_proba", None)):
        return model
    if is_text_classifier(model):
        return TextClassifier(model)
    return model
