"""Adapters: text models of every kind as :class:`~advx.text.target.TextTarget`.

* :class:`TextModelTarget` — any object with ``predict_proba(list[str]) -> (N, C)`` and
  ``num_classes`` (:class:`~advx.text.goal.TextModel`: a Hugging Face classifier, a user's
  ``module:function``); white-box when it also has ``word_gradients`` and
  ``embedding_table`` (:class:`~advx.text.goal.GradientTextModel`);
* :class:`HttpTextTarget` — a text model behind an Open Inference Protocol (KServe V2)
  endpoint, sent as ``BYTES`` tensors of UTF-8 strings (black-box: scores or labels);
* :func:`as_text_target` — the right target for whatever a text attack is given.

They are the text counterparts of :mod:`advx.adapters`: attacks see only the
:class:`~advx.targets.Access` level, the query counter and the per-example budgets of
:class:`~advx.targets.Oracle`, whatever sits behind.

Example:
    >>> class Shouty:  # "!" means positive
    ...     num_classes, class_names = 2, ("neg", "pos")
    ...     def predict_proba(self, texts):
    ...         return torch.tensor([[0.1, 0.9] if "!" in t else [0.8, 0.2] for t in texts])
    >>> target = as_text_target(Shouty())
    >>> target.access.label, target.labels(["fine", "great!"]).tolist(), target.queries
    ('scores (ScoreBox)', [0, 1], 2)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any
from urllib.parse import quote

import numpy as np
import torch
from torch import Tensor

from advx.errors import AccessError, ConfigError, InputError, RemoteError
from advx.targets import Access, Target
from advx.text.classifier import TextClassifier, is_text_classifier
from advx.text.target import TextTarget

__all__ = ["HttpTextTarget", "TextModelTarget", "as_text_target"]


class TextModelTarget(TextTarget):
    """Any text model with ``predict_proba(list[str]) -> (N, C)`` and ``num_classes``, as a
    :class:`TextTarget`: a white-box one (``Access.GRADIENTS``) when it also has
    ``word_gradients`` and ``embedding_table`` (:class:`~advx.text.goal.GradientTextModel`),
    a score-level one otherwise. Its ``attacking()`` context is used when it has one.

    Args:
        model: the text model (e.g. :class:`~advx.text.huggingface.HFTextClassifier`, or
            a user's ``module:function``).
        name: shown in messages (default the model's ``name`` or class name).
    """

    def __init__(self, model: Any, *, name: str | None = None) -> None:
        if not callable(getattr(model, "predict_proba", None)):
            raise InputError(
                f"a text model needs predict_proba(list[str]) -> Tensor (N, C); "
                f"{type(model).__name__} has none (load one with advx.text.models.load)"
            )
        max_len = getattr(model, "max_len", None)
        super().__init__(
            num_classes=getattr(model, "num_classes", None),  # type: ignore[arg-type]
            class_names=getattr(model, "class_names", None) or None,
            name=name or str(getattr(model, "name", None) or type(model).__name__),
            max_len=max_len if isinstance(max_len, int) and max_len > 0 else None,
        )
        self.model = model
        if callable(getattr(model, "word_gradients", None)) and callable(
            getattr(model, "embedding_table", None)
        ):
            self.access = Access.GRADIENTS

    def _scores(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        p = self.model.predict_proba(texts)
        p = p if isinstance(p, Tensor) else torch.as_tensor(p)
        if p.dim() != 2 or p.shape[0] != len(texts):
            raise InputError(
                f"predict_proba must return (len(texts), C) = ({len(texts)}, C), got "
                f"{tuple(p.shape)}"
            )
        return p.detach().float().cpu()

    def _word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool
    ) -> tuple[Tensor, Tensor]:
        ids, grads = self.model.word_gradients(text, list(words), label, targeted=targeted)
        return ids, grads

    def _embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        table: tuple[Tensor, list[str], Tensor] = self.model.embedding_table()
        return table

    @contextmanager
    def attacking(self) -> Iterator[TextModelTarget]:
        enter = getattr(self.model, "attacking", None)
        with enter() if callable(enter) else nullcontext():
            yield self

    def __repr__(self) -> str:
        return f"TextModelTarget({self.model!r}, access={self.access.name})"


class HttpTextTarget(TextTarget):
    """A text classifier behind an Open Inference Protocol (KServe V2 REST) endpoint.

    Texts travel as one ``BYTES`` input tensor of shape ``(N,)`` holding UTF-8 strings
    (with ``parameters.content_type = "str"``, which MLServer uses to decode them); the
    answer's ``predict_proba`` output ``(N, C)`` gives the scores, or ``predict`` ``(N,)``
    the labels of a labels-only API. Batches are split into requests of at most
    ``batch_size`` texts; every text counts once in :attr:`queries` however many HTTP
    retries it took, and per-example budgets come from :class:`~advx.targets.Oracle`
    exactly as for :class:`advx.adapters.HttpTarget`. Failed requests are retried (5xx,
    time-outs, connection errors); 4xx answers raise
    :class:`~advx.serve.client.HttpStatusError` at once (401 key, 413 too large, 429 the
    server's own query budget).

    The model's metadata (``GET /v2/models/{name}``) gives the input name and, from an
    advx server, ``num_classes`` and ``class_names`` in its ``parameters``; pass them
    for other servers. A model whose declared input is not ``BYTES`` is refused (it takes
    tensors: use :class:`advx.adapters.HttpTarget`).

    Args:
        url: server root, e.g. ``"http://127.0.0.1:8080"``.
        model_name: the model's name on the server; None takes the server's only model.
        outputs: ``"scores"`` (default), ``"labels"`` or ``"auto"`` (labels when the
            metadata says ``labels_only``).
        api_key, api_key_header, timeout, retries, backoff, http_client: as for
            :class:`~advx.serve.client.OipClient`.
        batch_size: most texts per request (default 64).
        num_classes, class_names: override or supply the metadata.
        input_name: the input tensor's name (default the declared one, else ``"input"``).
        output_name: output to read (default ``"predict_proba"`` / ``"predict"``).
        output_kind: ``"probabilities"`` (default) or ``"logits"`` (softmax applied).
        name: shown in messages; default ``model_name``.

    Example:
        >>> target = HttpTextTarget("http://127.0.0.1:8080", "tweets")    # doctest: +SKIP
        >>> recipes.create("deepwordbug", max_queries=300)(target, texts, y)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        model_name: str | None = None,
        *,
        outputs: str = "scores",
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        batch_size: int = 64,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        output_kind: str = "probabilities",
        http_client: Any = None,
        name: str | None = None,
    ) -> None:
        from advx.serve import protocol
        from advx.serve.client import OipClient

        if outputs not in ("scores", "labels", "auto"):
            raise InputError(f"outputs must be 'scores', 'labels' or 'auto', got {outputs!r}")
        if output_kind not in ("probabilities", "logits"):
            raise InputError(
                f"output_kind must be 'probabilities' or 'logits', got {output_kind!r}"
            )
        if isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.client = OipClient(
            url,
            api_key=api_key,
            api_key_header=api_key_header,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            http_client=http_client,
        )
        self.model_name, params, declared = self.client.describe(model_name)
        dtype = declared.get("datatype")
        if dtype is not None and str(dtype).upper() != "BYTES":
            raise ConfigError(
                f"model {self.model_name!r} at {url} takes {dtype} tensors, not texts (BYTES); "
                "attack it with an image attack through advx.adapters.HttpTarget"
            )
        classes = num_classes or params.get("num_classes")
        if classes is None:
            raise ConfigError(
                f"model {self.model_name!r} at {url} does not declare its number of classes; "
                "pass num_classes="
            )
        max_len = params.get("max_len")
        super().__init__(
            num_classes=int(classes),
            class_names=class_names or params.get("class_names"),
            name=name or self.model_name,
            max_len=max_len if isinstance(max_len, int) and max_len > 0 else None,
        )
        if outputs == "auto":
            outputs = "labels" if params.get("labels_only") else "scores"
        if outputs == "scores" and params.get("labels_only"):
            raise AccessError(
                f"model {self.model_name!r} at {url} gives labels only; use outputs='labels' "
                "(text attacks need scores: only transfer works on it)"
            )
        self.access = Access.SCORES if outputs == "scores" else Access.LABELS
        self.input_name = input_name or str(declared.get("name") or protocol.INPUT_NAME)
        self.output_name = output_name or (
            protocol.SCORES_OUTPUT if outputs == "scores" else protocol.LABELS_OUTPUT
        )
        self.output_kind = output_kind
        self.batch_size = int(batch_size)
        cap = params.get("max_rows")  # the server's rows-per-request limit (advx serve)
        if isinstance(cap, int) and not isinstance(cap, bool) and 1 <= cap < self.batch_size:
            self.batch_size = cap
        self.url = self.client.url

    def _infer(self, texts: list[str]) -> list[np.ndarray]:
        from advx.serve import protocol

        out = []
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i : i + self.batch_size]
            body = json.dumps(
                {
                    "inputs": [
                        {
                            "name": self.input_name,
                            "shape": [len(chunk)],
                            "datatype": "BYTES",
                            "parameters": {"content_type": "str"},
                            "data": chunk,
                        }
                    ],
                    "outputs": [{"name": self.output_name}],
                }
            ).encode()
            r = self.client.request(
                "POST",
                f"/v2/models/{quote(self.model_name, safe='')}/infer",
                content=body,
                headers={"content-type": protocol.JSON_CONTENT_TYPE},
            )
            raw_len = r.headers.get(protocol.HEADER_LENGTH)
            try:
                answer = protocol.decode_response(
                    r.content, int(raw_len) if raw_len is not None else None
                )
            except (ValueError, protocol.ProtocolError) as e:
                raise RemoteError(f"malformed response from {self.url}: {e}") from None
            if self.output_name not in answer:
                raise RemoteError(
                    f"{self.url}: the answer has no output {self.output_name!r} "
                    f"(got {sorted(answer)}); pass output_name="
                )
            a = answer[self.output_name]
            if a.shape[0] != len(chunk):
                raise RemoteError(
                    f"{self.url}: sent {len(chunk)} texts, output {self.output_name!r} has "
                    f"shape {list(a.shape)}"
                )
            out.append(a)
        return out

    def _scores(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        from advx.serve.client import scores_from_outputs

        p = torch.from_numpy(
            scores_from_outputs(
                self._infer(texts), url=self.url, output=self.output_name,
                num_classes=self.num_classes,
            )
        )  # fmt: skip
        return p.softmax(dim=1) if self.output_kind == "logits" else p

    def _labels(self, texts: list[str]) -> Tensor:  # type: ignore[override]
        if self.access >= Access.SCORES:
            return self._scores(texts).argmax(dim=1)
        from advx.serve.client import labels_from_outputs

        return torch.from_numpy(
            labels_from_outputs(
                self._infer(texts), url=self.url, output=self.output_name,
                num_classes=self.num_classes, row="text",
            )
        )  # fmt: skip

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()

    def __enter__(self) -> HttpTextTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_text_target(model: Any) -> TextTarget:
    """``model`` as a :class:`TextTarget`: itself if it is one; a
    :class:`~advx.text.classifier.TextClassifier` for a zoo classifier of a text
    architecture; an :class:`HttpTextTarget` for the URL of a server with one model; a
    :class:`TextModelTarget` for any object with ``predict_proba``.

    Raises:
        InputError: ``model`` is none of these (the message says what a text model needs).
    """
    if isinstance(model, TextTarget):
        return model
    if isinstance(model, str) and model.startswith(("http://", "https://")):
        return HttpTextTarget(model)
    if is_text_classifier(model):
        return TextClassifier(model)
    if isinstance(model, Target):
        raise InputError(
            f"{model.name!r} is a {type(model).__name__} over tensors, not a text model; "
            "attack it with an image attack (advx.attacks)"
        )
    return TextModelTarget(model)
