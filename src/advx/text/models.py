"""Text classifiers for the tweets: ``bow``, ``wordcnn``, ``lstm`` and ``minilm``.

One import for the text models; the code lives where its job is:

* :mod:`advx.text.networks` — the networks (token ids ``(N, L)`` -> logits ``(N, C)``);
* :mod:`advx.text.archs` — their registration as architectures of the model zoo
  (modality ``"text"``; built by :func:`advx.models.build`, trained by
  :func:`advx.training.fit`, saved with :func:`advx.models.save`), done when
  :mod:`advx.text` is imported;
* :mod:`advx.text.classifier` — :class:`TextClassifier`, the white-box
  :class:`~advx.text.target.TextTarget` attacks use, and :func:`build`, :func:`load`,
  :func:`save`.

Example:
    >>> clf = build("wordcnn", vocab=["<pad>", "<unk>", "good", "bad"],
    ...             class_names=("negative", "positive"))
    >>> clf.predict_proba(["good car"]).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

from advx.text.adapters import as_text_target
from advx.text.archs import (
    ARCHS,
    DEFAULT_MAX_LEN,
    ENCODER_FILE,
    MINILM_MAX_LEN,
    VOCAB_FILE,
    WORD_ARCHS,
    bow,
    encoder_reference,
    lstm,
    minilm,
    wordcnn,
)
from advx.text.classifier import (
    TextClassifier,
    as_text_model,
    build,
    is_text_classifier,
    load,
    save,
)
from advx.text.networks import BagOfEmbeddings, BiLSTM, MiniLMNet, WordCNN
from advx.text.target import TextTarget

__all__ = [
    "ARCHS",
    "DEFAULT_MAX_LEN",
    "ENCODER_FILE",
    "MINILM_MAX_LEN",
    "VOCAB_FILE",
    "WORD_ARCHS",
    "BagOfEmbeddings",
    "BiLSTM",
    "MiniLMNet",
    "TextClassifier",
    "TextTarget",
    "WordCNN",
    "as_text_model",
    "as_text_target",
    "bow",
    "build",
    "encoder_reference",
    "is_text_classifier",
    "load",
    "lstm",
    "minilm",
    "save",
    "wordcnn",
]
