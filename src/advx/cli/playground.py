"""``advx playground``: a local web page to make adversarial examples and watch models fall."""

from __future__ import annotations

from pathlib import Path

import typer

from advx.cli._common import user_errors


def playground(
    models: list[Path] = typer.Argument(
        None,
        help="Extra model directories written by `advx train` (image or text) to offer "
        "next to the built-in ones.",
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Interface to listen on; loopback by default (0.0.0.0: all)."
    ),
    port: int = typer.Option(8000, help="TCP port to listen on."),
    api_key: list[str] = typer.Option(
        [],
        "--api-key",
        help="Require this key, as `advx serve` does (Authorization: Bearer KEY or "
        "x-api-key: KEY; a browser opens /?key=KEY once). Repeatable. Also read from "
        "ADVX_API_KEY.",
        envvar="ADVX_API_KEY",
    ),
    small: str | None = typer.Option(
        None,
        "--small",
        help="Dataset of the small models (fashion-mnist or digits); default Fashion-MNIST "
        "when installed, else digits.",
    ),
    no_imagenet: bool = typer.Option(
        False, "--no-imagenet", help="Leave out the pretrained ImageNet models."
    ),
    no_text: bool = typer.Option(False, "--no-text", help="Leave out the text tab's model."),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Where the small models are trained once and kept (default "
        "$ADVX_CACHE_DIR/playground or ~/.cache/advx/playground).",
    ),
    time_limit: float = typer.Option(
        120.0, "--time-limit", help="Seconds one run may take before it is stopped."
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Open a web page where you make adversarial examples and watch models fall for them.

    Tabs: Image (pick a photo or upload one, pick a model and an attack, set eps in /255
    steps, untargeted or targeted; see original | perturbation | adversarial, top-5
    before and after, and download the adversarial PNG), Defense (adversarially trained
    and detector-guarded models, and an adaptive attack), Text (a sentence, a recipe, the
    edits highlighted), Transfer (craft on one model, test on the others) and Robustness
    (accuracy vs eps; clean and adversarial examples in the model's feature space).

    The small models are trained on first use (a few minutes on two CPU cores, once)
    and cached. Then open
    http://127.0.0.1:8000 in a browser.
    """
    with user_errors():
        from advx.errors import InputError
        from advx.playground import create_app, default_zoo
        from advx.serve.server import is_loopback

        if not 0 <= port <= 65535:
            raise InputError(f"--port must be in 0..65535, got {port}")
        if time_limit <= 0:
            raise InputError(f"--time-limit must be > 0, got {time_limit}")
        zoo = default_zoo(
            models or (),
            cache=cache_dir,
            small=small,
            imagenet=not no_imagenet,
            text=not no_text,
        )
        app = create_app(zoo, api_key=api_key or None, time_limit_s=time_limit)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://{shown}:{port}/" + (f"?key={api_key[0]}" if api_key else "")
        typer.echo(
            f"advx playground at {url} (models: {', '.join(zoo.entries)}; "
            f"API key: {'required' if api_key else 'none'})",
            err=True,
        )
        if not is_loopback(host) and not api_key:
            typer.secho(
                f"warning: {host} is not loopback and no --api-key is set: anyone who can "
                "reach this port can use the playground",
                fg=typer.colors.YELLOW,
                err=True,
            )
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "info")


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("playground")(playground)
