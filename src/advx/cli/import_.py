"""``advx import``: turn a user model (TorchScript, ONNX, module:function, Hugging Face
directory) into an advx checkpoint that every command opens without model options.

Thin: parses options and calls :func:`advx.models.external.import_model`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from advx.cli._common import print_json, user_errors
from advx.cli._model_options import ModelArgs, model_options


@model_options
def import_command(
    spec: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="A TorchScript file (.pt/.pth/.ts), an ONNX file, a Python module:function (or "
        "file.py:function) returning an nn.Module or Classifier, or a Hugging Face "
        "sequence-classification directory.",
    ),
    out: Path = typer.Option(..., "--out", help="Checkpoint directory to write."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="Dataset the model is for (e.g. digits, fashion-mnist, tweets-binary), recorded "
        "so commands find evaluation data without --data.",
    ),
    max_len: int | None = typer.Option(
        None, "--max-len", help="Text models: tokens kept per text (default the tokenizer's)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    *,
    model_args: ModelArgs,
) -> None:
    """Import MODEL as an advx checkpoint in --out (model.json + the model's files, each
    hashed).

    TorchScript models keep their TorchScript file (model.ts); a module:function
    returning a zoo Classifier becomes ordinary safetensors weights, any other nn.Module
    is scripted (or traced) to model.ts and checked to compute the same logits; ONNX
    files are kept as model.onnx (scores and labels only); Hugging Face directories keep
    their config, tokenizer and safetensors weights. Shape, classes, bounds,
    normalisation and class names given now are recorded, so later commands need none.

    Example: advx import net.pt --input-shape 1,28,28 --class-names labels.txt --dataset fashion-mnist --out models/net
    """
    with user_errors():
        from dataclasses import replace

        from advx.errors import ConfigError
        from advx.models import read_info
        from advx.models.external import import_model

        if max_len is not None and max_len < 1:
            raise ConfigError(f"--max-len must be >= 1, got {max_len}")
        options = replace(model_args.options, max_len=max_len)
        meta = {"dataset": dataset} if dataset else {}
        path = import_model(spec, out, options, meta=meta)
        info = read_info(path)
        summary = {
            "out": str(path),
            "kind": info["kind"],
            "arch": info["arch"],
            "input_shape": info["input_shape"],
            "num_classes": info["num_classes"],
            "class_names": info["class_names"],
            "bounds": info.get("bounds"),
            "files": sorted(info["files"]),
        }
    if json_out:
        print_json(summary)
        return
    typer.echo(
        f"imported {spec} as a {info['kind']} checkpoint in {path} "
        f"(input {tuple(info['input_shape'])}, {info['num_classes']} classes; "
        f"files: {', '.join(summary['files'])})"
    )
    command = "advx text attack" if info.get("modality") == "text" else "advx attack"
    typer.echo(f"attack it with: {command} {path}" + ("" if dataset else " --data DATASET"))


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("import")(import_command)
