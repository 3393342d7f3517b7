"""Text adversarial examples: attacks composed of a goal, a transformation, constraints
and a search (STYLE.md §4), named recipes from the literature, text models for the
tweets, and adversarial training by augmentation.

Importing this package registers the text architectures with the model zoo
(:mod:`advx.text.archs`); :mod:`advx.models` itself never imports :mod:`advx.text`.

Modules (import what you need; nothing heavy loads until used):

* :mod:`advx.text.recipes` — ``deepwordbug``, ``pwws``, ``textfooler``, ``hotflip``;
* :mod:`advx.text.attack` — :class:`~advx.text.attack.TextAttack`, the composition;
* :mod:`advx.text.transformations`, :mod:`advx.text.constraints`,
  :mod:`advx.text.search`, :mod:`advx.text.goal` — its parts;
* :mod:`advx.text.result` — per-example results, metrics, word diffs (terminal, HTML);
* :mod:`advx.text.models` — ``bow``, ``wordcnn``, ``lstm``, ``minilm`` (networks in
  :mod:`advx.text.networks`, zoo registration in :mod:`advx.text.archs`, the white-box
  :class:`~advx.text.classifier.TextClassifier` in :mod:`advx.text.classifier`);
* :mod:`advx.text.target` — :class:`~advx.text.target.TextTarget`: text models as
  :class:`~advx.targets.Target` (access levels, per-example queries and budgets);
  :mod:`advx.text.http` — a text model behind an Open Inference Protocol endpoint;
* :mod:`advx.text.training` — training and adversarial augmentation (this package
  registers them as the "text" modality of :mod:`advx.modalities` when imported);
* :mod:`advx.text.wordnet`, :mod:`advx.text.minilm`, :mod:`advx.text.embeddings` —
  the offline resources (WordNet 3.0, all-MiniLM-L6-v2).

Example:
    >>> from advx.text import models, recipes                     # doctest: +SKIP
    >>> clf = models.load("runs/tweets-wordcnn")                   # doctest: +SKIP
    >>> res = recipes.create("textfooler")(clf, ["I love this car"], [1])  # doctest: +SKIP
    >>> res[0].adversarial                                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advx.modalities import ModalityPlugin, register_modality

if TYPE_CHECKING:
    from advx.training import StepInfo, TrainConfig, TrainResult


def _train(
    arch: str,
    data: str | Any,
    *,
    test: Any | None = None,
    config: TrainConfig | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    adversary: Any | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> TrainResult:
    from advx.text.training import train

    return train(
        arch, data, test=test, config=config, arch_kwargs=arch_kwargs, out=out,
        adversary=adversary, on_step=on_step, meta=meta,
    )  # fmt: skip


def _load_adversaries() -> None:
    from advx.text.training import register_text_adversaries

    register_text_adversaries()


# Texts train by augmentation and attack with recipes: the generic layers find both here
# (advx.modalities), so they never import this package by name.
register_modality(ModalityPlugin("text", train=_train, load_adversaries=_load_adversaries))

import advx.text.archs as _archs  # noqa: E402,F401  (registers the text architectures)
