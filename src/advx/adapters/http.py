"""Models behind an HTTP endpoint speaking the Open Inference Protocol (KServe V2):
:class:`HttpTarget` (``advx serve``, MLServer, Triton, KServe). httpx loads lazily."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advx.errors import AccessError, ConfigError, InputError, RemoteError
from advx.targets import (
    OUTPUT_KINDS,
    Access,
    Target,
    check_outputs_arg,
)

log = logging.getLogger(__name__)


class HttpTarget(Target):
    """A model behind an Open Inference Protocol (KServe V2 REST) endpoint.

    Works with ``advx serve``, MLServer, Triton and KServe. The model's metadata
    (``GET /v2/models/{name}``) gives the input name and shape; ``advx serve`` also puts
    ``num_classes``, ``class_names``, ``bounds`` and ``labels_only`` in its
    ``parameters``. For other servers pass ``input_shape``, ``num_classes`` and ``bounds``
    (default ``(0, 1)``) yourself.

    Query batches are split into requests of at most ``batch_size`` rows. Every row counts
    once in :attr:`queries`, however many HTTP retries it took. Failed requests are retried
    (5xx answers, time-outs, connection errors) with exponential back-off; 4xx answers
    raise :class:`~advx.serve.client.HttpStatusError` (a :class:`~advx.errors.RemoteError`)
    at once, e.g. 401 (API key), 413 (batch too large), 429 (the server's query budget is
    spent). Malformed answers raise :class:`~advx.errors.RemoteError`.

    Args:
        url: server root, e.g. ``"http://127.0.0.1:8080"``.
        model_name: the model's name on the server; None asks the server's repository
            index and takes its only model.
        outputs: ``"scores"`` (asks for the ``predict_proba`` output: a ScoreBox),
            ``"labels"`` (``predict``: a LabelBox, for decision-only APIs) or ``"auto"``
            (scores unless the metadata says the server is labels-only).
        api_key: API key; sent as ``Authorization: Bearer <key>`` by default, or as the
            bare value of ``api_key_header`` (e.g. ``"x-api-key"``) when that is given.
        api_key_header: header carrying the key (default ``"Authorization"``).
        batch_size: most rows per request (default 256).
        timeout: seconds per request (connect and read; default 30).
        retries: extra attempts after a failure (default 3); back-off starts at
            ``backoff`` seconds (default 0.25) and doubles.
        input_shape, num_classes, bounds, class_names: override or supply the metadata.
        wire_shape: shape of one row as the server wants it, when it differs from
            ``input_shape`` (e.g. ``(64,)`` for a scikit-learn model on flattened 8x8
            images); default the server's declared input shape, else ``input_shape``.
        output_name: name of the output to read (default ``"predict_proba"`` for scores,
            ``"predict"`` for labels, MLServer's scikit-learn names, which advx serve
            uses too).
        output_kind: ``"probabilities"`` (default) or ``"logits"`` (softmax applied), for
            servers whose output is raw logits (e.g. Triton serving an ONNX model).
        binary: use Triton's binary tensor extension (much cheaper than JSON for
            images); default: when the server's metadata says it supports it.
        http_client: an ``httpx.Client`` to send through (tests: Starlette's TestClient).
        name: shown in messages; default ``model_name``.

    Example:
        >>> target = HttpTarget("http://127.0.0.1:8080", "digits", api_key="s3cret")  # doctest: +SKIP
        >>> create("square", eps=0.1, max_queries=1000)(target, x, y)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        model_name: str | None = None,
        *,
        outputs: str = "scores",
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        batch_size: int = 256,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        bounds: tuple[float, float] | None = None,
        class_names: Sequence[str] | None = None,
        wire_shape: Sequence[int] | None = None,
        output_name: str | None = None,
        output_kind: str = "probabilities",
        binary: bool | None = None,
        http_client: Any = None,
        name: str | None = None,
    ) -> None:
        from advx.serve import protocol
        from advx.serve.client import OipClient

        check_outputs_arg(outputs, ("auto", *OUTPUT_KINDS))
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if output_kind not in ("probabilities", "logits"):
            raise InputError(
                f"output_kind must be 'probabilities' or 'logits', got {output_kind!r}"
            )
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
        self.input_name = str(declared.get("name") or protocol.INPUT_NAME)
        dshape = declared.get("shape")
        server_row = (
            tuple(int(d) for d in dshape[1:])
            if isinstance(dshape, list)
            and len(dshape) > 1
            and all(isinstance(d, int) and d > 0 for d in dshape[1:])
            else None
        )
        shape = input_shape or params.get("input_shape") or server_row
        classes = num_classes or params.get("num_classes")
        if shape is None or classes is None:
            raise ConfigError(
                f"model {self.model_name!r} at {url} does not declare its input shape and number "
                "of classes; pass input_shape= and num_classes="
            )
        if bounds is None and "bounds" not in params:
            log.info("%s does not declare input bounds; assuming (0, 1)", self.model_name)
        super().__init__(
            input_shape=shape,
            num_classes=int(classes),
            bounds=tuple(bounds or params.get("bounds") or (0.0, 1.0)),
            class_names=class_names or params.get("class_names"),
            name=name or self.model_name,
        )
        self.wire_shape = tuple(wire_shape or server_row or self.input_shape)
        if math.prod(self.wire_shape) != math.prod(self.input_shape):
            raise InputError(
                f"wire_shape {self.wire_shape} does not hold input_shape {self.input_shape}"
            )
        if outputs == "auto":
            outputs = "labels" if params.get("labels_only") else "scores"
        if outputs == "scores" and params.get("labels_only"):
            raise AccessError(
                f"model {self.model_name!r} at {url} gives labels only; use outputs='labels' "
                "(CLI: --labels-only) and a decision-based attack"
            )
        self.access = Access.SCORES if outputs == "scores" else Access.LABELS
        self.outputs = outputs
        default_out = protocol.SCORES_OUTPUT if outputs == "scores" else protocol.LABELS_OUTPUT
        self.output_name = output_name or default_out
        self.output_kind = output_kind
        self.batch_size = int(batch_size)
        cap = params.get("max_rows")  # the server's rows-per-request limit (advx serve)
        if isinstance(cap, int) and not isinstance(cap, bool) and 1 <= cap < self.batch_size:
            self.batch_size = cap
        self.binary = bool(params.get("binary_data", False)) if binary is None else binary
        self.url = self.client.url

    def _infer(self, x: Tensor) -> list[np.ndarray]:
        rows = x.detach().cpu().to(torch.float32).reshape(x.shape[0], *self.wire_shape).numpy()
        out = []
        for i in range(0, rows.shape[0], self.batch_size):
            chunk = rows[i : i + self.batch_size]
            answer = self.client.infer(
                self.model_name,
                chunk,
                input_name=self.input_name,
                outputs=[self.output_name],
                binary=self.binary,
            )
            if self.output_name not in answer:
                raise RemoteError(
                    f"{self.url}: the answer has no output {self.output_name!r} "
                    f"(got {sorted(answer)}); pass output_name="
                )
            a = answer[self.output_name]
            if a.shape[0] != chunk.shape[0]:
                raise RemoteError(
                    f"{self.url}: asked {chunk.shape[0]} rows, output {self.output_name!r} "
                    f"has shape {list(a.shape)}"
                )
            out.append(a)
        return out

    def _scores(self, x: Tensor) -> Tensor:
        from advx.serve.client import scores_from_outputs

        y = torch.from_numpy(
            scores_from_outputs(
                self._infer(x), url=self.url, output=self.output_name, num_classes=self.num_classes
            )
        )
        return y.softmax(dim=1) if self.output_kind == "logits" else y

    def _labels(self, x: Tensor) -> Tensor:
        if self.access >= Access.SCORES:
            return self._scores(x).argmax(dim=1)
        from advx.serve.client import labels_from_outputs

        return torch.from_numpy(
            labels_from_outputs(
                self._infer(x), url=self.url, output=self.output_name, num_classes=self.num_classes
            )
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()

    def __enter__(self) -> HttpTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
