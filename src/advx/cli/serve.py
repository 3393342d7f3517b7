"""``advx serve``: serve a saved model over the Open Inference Protocol (KServe V2 REST)."""

from __future__ import annotations

import os
from typing import Any

import typer

from advx.cli._common import user_errors
from advx.cli._model_options import ModelArgs, model_options


@model_options
def serve(
    model_dir: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="Model: a directory written by `advx train` / `advx import` (torch or "
        "scikit-learn), a TorchScript or ONNX file, or a Python module:function.",
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Interface to listen on; loopback by default (0.0.0.0: all)."
    ),
    port: int = typer.Option(8080, help="TCP port to listen on."),
    name: str | None = typer.Option(
        None, "--name", help="Model name in URLs (/v2/models/NAME); default the directory name."
    ),
    api_key: list[str] = typer.Option(
        [],
        "--api-key",
        help="Require this key (Authorization: Bearer KEY or x-api-key: KEY); repeatable, "
        "each key has its own query budget. Also read from ADVX_API_KEY.",
        envvar="ADVX_API_KEY",
    ),
    max_queries: int | None = typer.Option(
        None, "--max-queries", help="Rows each key may have evaluated; then 429. Default: no limit."
    ),
    labels_only: bool = typer.Option(
        False, "--labels-only", help="Answer labels only (a decision-only API), no probabilities."
    ),
    max_body_bytes: int = typer.Option(
        32 * 1024 * 1024, "--max-body-bytes", help="Largest request body accepted; larger gets 413."
    ),
    log_level: str = typer.Option(
        "warning", "--log-level", help="uvicorn log level (info shows every request)."
    ),
    max_rows: int = typer.Option(
        1024, "--max-rows", help="Most rows per inference request; more gets 413."
    ),
    request_timeout: float = typer.Option(
        60.0,
        "--request-timeout",
        help="Seconds an inference may take, queueing included; then 503 and nothing is charged.",
    ),
    body_timeout: float = typer.Option(
        30.0, "--body-timeout", help="Seconds a request body may take to arrive; then 408."
    ),
    idle_timeout: float = typer.Option(
        5.0, "--idle-timeout", help="Seconds before an idle kept-alive connection is closed."
    ),
    header_timeout: float = typer.Option(
        10.0,
        "--header-timeout",
        help="Seconds a client has to send a complete request head "
        "(request line and headers); then the connection is closed (slow-loris clients).",
    ),
    max_concurrent: int = typer.Option(
        8, "--max-concurrent", help="Requests each API key may have in flight; more get 429."
    ),
    public_health: bool = typer.Option(
        False,
        "--public-health",
        help="Answer /v2/health/live and /v2/health/ready without "
        "an API key (for probes that carry none, e.g. Kubernetes).",
    ),
    *,
    model_args: ModelArgs,
) -> None:
    """Serve MODEL_DIR over HTTP so black-box attacks (or anyone) can query it.

    Speaks the Open Inference Protocol v2 (the REST API of KServe, MLServer and Triton):
    GET /v2/models/NAME gives shape, classes and bounds; POST /v2/models/NAME/infer
    answers `predict_proba` and `predict`. Attack it with
    `advx attack http://127.0.0.1:8080 --model-name NAME --attack square --eps 0.1`.

    A text model (e.g. `advx train --data tweets-binary --model bow`) takes its texts as
    a BYTES tensor (JSON: a list of strings; one text is one row for --max-rows and
    --max-queries); attack it with `advx text attack http://127.0.0.1:8080`.

    Limits (all have safe defaults): --max-body-bytes, --max-rows, --request-timeout,
    --body-timeout, --idle-timeout, --header-timeout, --max-concurrent. Large requests are
    evaluated in chunks, taking turns with other requests, so small ones are not starved.
    """
    with user_errors():
        from advx.cli._targets import open_target, target_info
        from advx.errors import InputError
        from advx.models.external import default_name
        from advx.serve.server import create_app, is_loopback, server_config

        if not 0 <= port <= 65535:
            raise InputError(f"--port must be in 0..65535, got {port}")
        if any(not k.strip() for k in api_key):
            raise InputError("--api-key must be a non-empty string")
        if not api_key and "ADVX_API_KEY" in os.environ:  # set but empty: refuse, like ""
            raise InputError(
                "ADVX_API_KEY is set but empty; set a key, or unset it to serve without one"
            )
        model_name = name or default_name(model_dir)
        loaded = open_target(
            model_dir, name=model_name, options=model_args.options, device=model_args.device
        )
        info = target_info(model_dir)
        loaded = _text_model(loaded, info)
        if model_args.amp:
            loaded = _with_amp(loaded, model_args)
        app = create_app(
            loaded,
            name=model_name,
            api_key=api_key or None,
            max_queries=max_queries,
            labels_only=labels_only,
            max_body_bytes=max_body_bytes,
            dataset=info.get("dataset"),
            max_rows=max_rows,
            request_timeout=request_timeout,
            body_timeout=body_timeout,
            max_concurrent=max_concurrent,
            public_health=public_health,
        )
        config = server_config(
            app, host=host, port=port, log_level=log_level,
            idle_timeout=idle_timeout, header_timeout=header_timeout,
        )  # fmt: skip
        service = app.state.service
        where = f"http://{host}:{port}"
        outputs = ", ".join(service.output_names)
        typer.echo(
            f"serving {model_name!r} at {where}/v2/models/{model_name} (outputs: {outputs}; "
            f"API key: {'required' if api_key else 'none'}; "
            f"budget: {max_queries if max_queries else 'unlimited'} rows per key)",
            err=True,
        )
        if not is_loopback(host) and not api_key:
            typer.secho(
                f"warning: {host} is not loopback and no --api-key is set: anyone who can "
                "reach this port can query the model",
                fg=typer.colors.YELLOW,
                err=True,
            )
    import uvicorn

    uvicorn.Server(config).run()


def _text_model(loaded: Any, info: dict[str, Any]) -> Any:
    """A checkpoint of a text architecture (``ARCHS[arch].modality == "text"``) as its
    zoo classifier, which :func:`~advx.serve.server.create_app` serves as a text model
    (BYTES input); anything else as it is."""
    from advx.models import ARCHS
    from advx.targets import WhiteBox

    arch = info.get("arch")
    spec = ARCHS.get(arch) if isinstance(arch, str) else None
    if spec is not None and spec.modality == "text" and isinstance(loaded, WhiteBox):
        return loaded.model
    return loaded


def _with_amp(target: Any, model_args: ModelArgs) -> Any:
    """The target with its torch model under autocast (requests run in worker threads)."""
    from advx.devices import Autocast
    from advx.targets import WhiteBox

    if model_args.device.type != "cuda" or not isinstance(target, WhiteBox):
        with model_args.autocast():  # prints the note that --amp does nothing here
            return target
    return WhiteBox(
        Autocast(target.model, model_args.device), input_shape=target.input_shape,
        num_classes=target.num_classes, bounds=target.bounds, class_names=target.class_names,
        name=target.name,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("serve")(serve)
