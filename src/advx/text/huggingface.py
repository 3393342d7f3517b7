"""A Hugging Face sequence classifier (``AutoModelForSequenceClassification`` +
``AutoTokenizer``, from a local directory) as an advx text classifier.

It speaks what text attacks ask of a model (:class:`~advx.text.goal.TextModel`):
``predict_proba(texts)``, ``num_classes``, ``class_names``, ``attacking()``; and, white-box
(:class:`~advx.text.goal.GradientTextModel`), ``embedding_table()`` and
``word_gradients()`` through the model's input embeddings, so HotFlip and gradient word
ranking work on it as on the zoo's text models.

Loading is offline and code-free: ``local_files_only=True``, ``trust_remote_code=False``,
and safetensors weights only (a directory holding only ``pytorch_model.bin``, a pickle, is
refused with the one-line conversion).

Example:
    >>> clf = HFTextClassifier.from_directory("my-sentiment-model")  # doctest: +SKIP
    >>> clf.predict_proba(["I love this car"]).shape                 # doctest: +SKIP
    torch.Size([1, 2])
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advx.errors import ConfigError, InputError
from advx.models.adapter import frozen_eval

_PREFIXES = ("Ġ", "▁")  # word-start markers of byte-level BPE (GPT-2, RoBERTa) / SentencePiece


def check_hf_directory(path: Path) -> None:
    """Raise :class:`ConfigError` unless ``path`` looks like a Hugging Face model directory
    with safetensors weights."""
    if not path.is_dir():
        raise ConfigError(f"no Hugging Face model directory at {path}")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path} has no config.json; it is not a Hugging Face model directory")
    if not any(path.glob("*.safetensors")):
        pickled = [p.name for p in path.glob("*.bin")]
        hint = (
            f"it holds {', '.join(pickled)} (a pickle, which advx does not load); convert it "
            "once, in a trusted environment: AutoModelForSequenceClassification."
            "from_pretrained(dir).save_pretrained(dir, safe_serialization=True)"
            if pickled
            else "save the model with save_pretrained(dir)"
        )
        raise ConfigError(f"{path} has no safetensors weights; {hint}")


class HFTextClassifier:
    """A ``transformers`` sequence-classification model and its tokenizer, for attacks.

    Args:
        model: a ``PreTrainedModel`` for sequence classification (logits ``(N, C)``).
        tokenizer: its tokenizer (a fast tokenizer gives word gradients; a slow one
            still gives scores).
        class_names: default the config's ``id2label``.
        max_len: tokens kept per text (default the tokenizer's limit, at most 512).
        batch_size: texts per forward pass in :meth:`predict_proba`.
        name: shown in messages.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        class_names: Sequence[str] | None = None,
        max_len: int | None = None,
        batch_size: int = 64,
        name: str = "hf-model",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"HFTextClassifier needs a torch model, got {type(model).__name__}")
        self.model: Any = model
        self.tokenizer = tokenizer
        config: Any = getattr(model, "config", None)
        if config is None or not hasattr(config, "num_labels"):
            raise InputError(f"{name}: not a transformers model (no config.num_labels)")
        k = int(config.num_labels)
        if k < 2:
            raise ConfigError(f"{name}: num_labels is {k}; a classifier needs at least 2")
        self.num_classes = k
        if class_names is not None:
            if len(class_names) != k:
                raise ConfigError(f"{len(class_names)} class names for {name}'s {k} classes")
            self.class_names = tuple(class_names)
        else:
            id2label = getattr(config, "id2label", None) or {}
            self.class_names = tuple(str(id2label.get(i, i)) for i in range(k))
        limit = int(getattr(tokenizer, "model_max_length", 512) or 512)
        self.max_len = int(max_len or min(limit, 512))
        self.batch_size = batch_size
        self.name = name
        self.input_shape = (self.max_len,)
        self.bounds = (0.0, 1.0)  # not meaningful for text; kept for checkpoint metadata
        self._frozen = 0

    @classmethod
    def from_directory(
        cls,
        path: str | os.PathLike[str],
        *,
        class_names: Sequence[str] | None = None,
        max_len: int | None = None,
        device: torch.device | None = None,
    ) -> HFTextClassifier:
        """Load ``path`` offline (``local_files_only``, safetensors, no remote code).

        Raises:
            ConfigError: not a Hugging Face directory, no safetensors weights, or not a
                sequence-classification model.
        """
        d = Path(path)
        check_hf_directory(d)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
        except Exception as e:  # transformers raises many types for a bad directory
            raise ConfigError(f"{d}: cannot load its tokenizer: {e}") from None
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                str(d), local_files_only=True, use_safetensors=True, trust_remote_code=False
            )
        except Exception as e:  # see above
            raise ConfigError(
                f"{d}: not a sequence-classification model AutoModelForSequenceClassification "
                f"can load offline: {e}"
            ) from None
        model.eval()
        clf = cls(model, tokenizer, class_names=class_names, max_len=max_len, name=d.resolve().name)
        if device is not None:
            clf.to_device(device)
        return clf

    # -- device and modes ----------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        out: torch.device = next(self.model.parameters()).device
        return out

    def to_device(self, device: torch.device) -> HFTextClassifier:
        """Move the model to ``device``; returns self."""
        self.model.to(device)
        return self

    @contextmanager
    def attacking(self) -> Iterator[HFTextClassifier]:
        """Eval mode and frozen parameters for the duration (restored exactly)."""
        with frozen_eval(self.model):
            self._frozen += 1
            try:
                yield self
            finally:
                self._frozen -= 1

    def _eval(self) -> Any:
        return nullcontext() if self._frozen else frozen_eval(self.model)

    # -- scores ----------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], **kw: Any) -> dict[str, Tensor]:
        """Padded, truncated model inputs for ``texts`` on the model's device."""
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_len,
            return_tensors="pt",
            **kw,
        )
        return {k: v.to(self.device) for k, v in batch.items() if isinstance(v, Tensor)}

    def logits(self, texts: Sequence[str]) -> Tensor:
        """Logits ``(N, C)``."""
        batch = self.tokenize(texts)
        batch.pop("offset_mapping", None)
        out: Tensor = self.model(**batch).logits
        return out

    def predict_proba(self, texts: Sequence[str]) -> Tensor:
        """Class probabilities ``(N, C)`` (float32, CPU); eval mode, no gradients."""
        texts = list(texts)
        out = []
        with self._eval(), torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                logits = self.logits(texts[i : i + self.batch_size])
                out.append(logits.float().softmax(dim=1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.num_classes)

    # -- white-box -------------------------------------------------------------------
    def _vocab(self) -> list[str]:
        n = int(self.model.get_input_embeddings().weight.shape[0])
        tok = self.tokenizer
        size = min(n, len(tok))
        words = list(tok.convert_ids_to_tokens(list(range(size))))
        return words + [""] * (n - size)

    def embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        """``(V, d)`` input embeddings, the ``V`` tokens as words (word-start markers
        removed), and a ``(V,)`` mask of whole, lower-case alphabetic words."""
        table = self.model.get_input_embeddings().weight.detach().float().cpu()
        raw = self._vocab()
        marked = any(t.startswith(_PREFIXES) for t in raw[:5000])
        words, valid = [], []
        for t in raw:
            if marked:
                ok = t.startswith(_PREFIXES)
                w = t[1:] if ok else t
            else:
                ok, w = True, t
            words.append(w)
            valid.append(ok and w.isascii() and w.isalpha() and w.islower())
        return table, words, torch.tensor(valid)

    def _positions(self, text: str, words: Sequence[str]) -> tuple[Tensor, Tensor, list[int]]:
        """Token ids ``(1, T)``, attention mask ``(1, T)``, and the position of each of
        ``words`` among the tokens (-1 when a word is not exactly one token)."""
        from advx.text.sentence import Sentence

        s = Sentence.parse(text)
        spans, pos = [], len(s.gaps[0])
        for w, g in zip(s.words, s.gaps[1:], strict=True):
            spans.append((pos, pos + len(w)))
            pos += len(w) + len(g)
        if not getattr(self.tokenizer, "is_fast", False):
            batch = self.tokenize([text])
            return batch["input_ids"], batch["attention_mask"], [-1] * len(words)
        batch = self.tokenizer(
            [text], truncation=True, max_length=self.max_len, return_offsets_mapping=True,
            return_tensors="pt",
        )  # fmt: skip
        offsets = [tuple(int(v) for v in o) for o in batch["offset_mapping"][0]]
        out = []
        for a, b in spans[: len(words)]:
            inside = [t for t, (x, y) in enumerate(offsets) if y > x and x >= a and y <= b]
            out.append(inside[0] if len(inside) == 1 and offsets[inside[0]] == (a, b) else -1)
        return batch["input_ids"], batch["attention_mask"], out

    def word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Ids ``(n,)`` and gradients ``(n, d)`` of the cross-entropy of ``label``
        (negated if ``targeted``) at the input embeddings of ``words``; id -1 where a
        word is not exactly one token."""
        ids, mask, where = self._positions(text, words)
        ids, mask = ids.to(self.device), mask.to(self.device)
        emb = self.model.get_input_embeddings()
        with self._eval(), torch.enable_grad():
            e = emb(ids).detach().requires_grad_(True)  # (1, T, d)
            logits = self.model(inputs_embeds=e, attention_mask=mask).logits.float()
            loss = nn.functional.cross_entropy(logits, torch.tensor([int(label)], device=e.device))
            (g,) = torch.autograd.grad(-loss if targeted else loss, e)
        out_ids = torch.full((len(words),), -1, dtype=torch.long)
        out_g = torch.zeros(len(words), e.shape[-1])
        for i, j in enumerate(where):
            if 0 <= j < ids.shape[1]:
                out_ids[i] = int(ids[0, j])
                out_g[i] = g[0, j].float().cpu()
        return out_ids, out_g

    def __repr__(self) -> str:
        return f"HFTextClassifier(name={self.name!r}, classes={self.class_names})"
