"""Tiny hand-checkable text models for the text-attack tests.

:class:`LinearBoW` scores a text as ``logits = bias + sum_w E[w]`` over its known words
(lower-cased), so every probability, every word's importance and every gradient has a
closed form: the gradient of the cross-entropy at any word's embedding is
``softmax(logits) - onehot(y)``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from advx.text.sentence import Sentence
from advx.text.transformations import Transformation

if TYPE_CHECKING:
    from advx.text.classifier import TextClassifier


class LinearBoW:
    """``logits = bias + sum of E[word]`` over the known words of a text.

    Args:
        weights: word -> per-class logit contributions (length C).
        bias: per-class bias (default zeros).
        class_names: names (default "0", "1", ...).
    """

    def __init__(
        self,
        weights: Mapping[str, Sequence[float]],
        bias: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.words = sorted(weights)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.table = torch.tensor([list(weights[w]) for w in self.words], dtype=torch.float64)
        self.num_classes = self.table.shape[1]
        self.bias = torch.tensor(
            list(bias) if bias is not None else [0.0] * self.num_classes, dtype=torch.float64
        )
        self.class_names = tuple(class_names or (str(i) for i in range(self.num_classes)))
        self.calls = 0  # texts scored, counted independently of the attack's bookkeeping

    def logits_of(self, text: str) -> Tensor:
        out = self.bias.clone()
        for w in Sentence.parse(text).lower_words():
            if w in self.index:
                out += self.table[self.index[w]]
        return out

    def predict_proba(self, texts: list[str]) -> Tensor:
        self.calls += len(texts)
        return torch.stack([self.logits_of(t) for t in texts]).softmax(dim=1).float()


class GradientBoW(LinearBoW):
    """:class:`LinearBoW` with the white-box interface (embedding = logit contribution)."""

    def embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        return self.table.float(), list(self.words), torch.ones(len(self.words), dtype=torch.bool)

    def word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool = False
    ) -> tuple[Tensor, Tensor]:
        self.calls += 1
        p = self.logits_of(text).softmax(dim=0)
        g = p - torch.nn.functional.one_hot(torch.tensor(label), self.num_classes).double()
        if targeted:
            g = -g
        ids = torch.tensor([self.index.get(w.lower(), -1) for w in words], dtype=torch.long)
        grads = torch.stack([g.float() if i >= 0 else torch.zeros(self.num_classes) for i in ids])
        return ids, grads


class DictSwap(Transformation):
    """A transformation from a fixed table: word -> replacements (for hand-checked
    searches); built on the framework's base class so it is a real Transformation."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def words(self, s: Sentence, index: int, *, rng: random.Random) -> list[str]:
        return list(self.table.get(s.words[index].lower(), []))


def trained_bow() -> tuple[TextClassifier, Path]:
    """A small bag-of-embeddings model trained on 1500 tweets (cached on disk)."""
    import os

    from advx.text.models import load

    cache = Path(
        os.environ.get(
            "ADVX_TEST_CACHE", Path(__file__).resolve().parents[1] / ".cache" / "test-models"
        )
    )
    path = cache / "text-bow-1500"
    if (path / "model.json").is_file():
        try:
            return load(path), path
        except Exception:  # noqa: BLE001 - stale cache from an older format: retrain
            pass
    from advx.text.training import train
    from advx.training import default_config

    cfg = default_config("bow", "tweets-binary", limit=1500, epochs=6)
    train("bow", "tweets-binary", config=cfg, arch_kwargs={"dim": 32}, out=path, test=None)
    return load(path), path
