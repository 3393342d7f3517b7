"""What a hostile probe found (issue 14), each pinned by a test: model.json trusted after
the hash check, library settings not type-checked, NaN/short model outputs evaluated
silently, resume mixing models or data, Infinity in JSON, and the CLI inconsistencies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from advx.attacks import create
from advx.errors import CheckpointError, ConfigError, InputError
from advx.models import build, load, read_info, save
from advx.models import checkpoint as ckpt
from advx.models.adapter import Classifier
from advx.targets import WhiteBox

SHAPE = (1, 8, 8)


def strict_loads(text: str) -> object:
    """json.loads that refuses NaN/Infinity tokens (what every other JSON reader does)."""

    def refuse(token: str) -> object:
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------ model.json
@pytest.fixture
def saved_mlp(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    clf = build("mlp", input_shape=SHAPE, num_classes=10, hidden=[16], dropout=0.0).eval()
    return save(clf, tmp_path / "mlp", meta={"dataset": "digits"})


def _resign(path: Path, info: dict[str, Any]) -> None:
    info[ckpt.INFO_HASH_KEY] = ckpt.info_digest(info)
    (path / "model.json").write_text(json.dumps(info))


def test_model_json_is_covered_by_a_hash(saved_mlp: Path) -> None:
    f = saved_mlp / "model.json"
    info = strict_loads(f.read_text())
    assert isinstance(info, dict) and len(info[ckpt.INFO_HASH_KEY]) == 64
    f.write_text(f.read_text().replace('"digits"', '"fashion-mnist"'))
    with pytest.raises(CheckpointError, match="info_sha256"):
        read_info(saved_mlp)
    # re-indenting (a harmless edit) keeps it valid
    info = json.loads(f.read_text().replace('"fashion-mnist"', '"digits"'))
    f.write_text(json.dumps(info, indent=4))
    assert read_info(saved_mlp)["dataset"] == "digits"


@pytest.mark.parametrize(
    ("bounds", "raw"),
    [
        (None, "[-Infinity, Infinity]"),
        (None, "[0, NaN]"),
        ([0.0, 1e308], None),
        ([-1e300, 1.0], None),
        ([1.0, 1.0], None),
    ],
)
def test_bounds_must_be_finite_and_sane(saved_mlp: Path, bounds, raw) -> None:
    info = json.loads((saved_mlp / "model.json").read_text())
    if raw is None:
        info["bounds"] = bounds
        _resign(saved_mlp, info)
    else:  # Python's json would write these tokens; the hash is beside the point here
        info["bounds"] = "@@"
        text = json.dumps(info).replace('"@@"', raw)
        (saved_mlp / "model.json").write_text(text)
    with pytest.raises(CheckpointError, match="bounds|not valid JSON"):
        load(saved_mlp)


def test_huge_arch_kwargs_refused_before_allocation(saved_mlp: Path) -> None:
    import resource

    info = json.loads((saved_mlp / "model.json").read_text())
    info["arch_kwargs"]["hidden"] = [4_000_000]  # ~1 GB of weights the file does not hold
    _resign(saved_mlp, info)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="needs .* bytes of weights"):
        load(saved_mlp)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024  # nothing near the 1 GB was allocated
    info["arch_kwargs"]["hidden"] = [10**12]
    _resign(saved_mlp, info)
    with pytest.raises(CheckpointError, match="over the limit"):
        read_info(saved_mlp)


def test_deep_nesting_is_a_checkpoint_error(saved_mlp: Path) -> None:
    f = saved_mlp / "model.json"
    f.write_text('{"format": "advx-checkpoint", "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(CheckpointError, match="nested deeper"):
        read_info(saved_mlp)
    f.write_text("[" * 200_000)
    with pytest.raises(CheckpointError):
        read_info(saved_mlp)
    # brackets inside strings do not count
    assert ckpt._nesting('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"["}') == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"files": {"model.safetensors": {"sha256": "0" * 64, "bytes": True}}},
        {"files": {"model.safetensors": {"sha256": "0" * 64, "bytes": -5}}},
        {"normalisation": {"mean": [0.5], "std": [1e400]}},
        {"input_shape": [1, 100_000, 100_000]},
        {"num_classes": 10**9, "class_names": []},
    ],
)
def test_every_bad_model_json_is_a_checkpoint_error(
    saved_mlp: Path, changes: dict[str, Any]
) -> None:
    info = json.loads((saved_mlp / "model.json").read_text())
    info.update(changes)
    _resign(saved_mlp, info)
    with pytest.raises(CheckpointError):
        load(saved_mlp)


# ------------------------------------------------------------------ library settings
@pytest.mark.parametrize(
    ("slug", "kwargs", "message"),
    [
        ("pgd", {"eps": 0.1, "steps": 2.5}, "steps must be an integer"),
        ("square", {"eps": 0.1, "max_queries": 1.5}, "max_queries must be an integer"),
        ("square", {"eps": 0.1, "max_queries": True}, "max_queries must be an integer"),
        ("pgd", {"eps": "0.1"}, "eps must be a number"),
        ("pgd", {"eps": 0.1, "early_stop": "no"}, "early_stop must be a bool"),
        ("pgd", {"eps": 0.1, "seed": 1.0}, "seed must be an integer"),
        ("pgd", {"eps": 0.1, "norm": 2}, "norm must be a string"),
        ("pgd", {"eps": 0.1, "step_size": "big"}, "step_size must be"),
        ("pgd", {"eps": [0.1, "0.2"]}, "eps must be a number"),
    ],
)
def test_attack_settings_are_type_checked(slug: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((InputError, ConfigError), match=message):
        create(slug, **kwargs)


def test_well_typed_settings_still_work() -> None:
    assert create("pgd", eps=1, steps=3).steps == 3  # an int eps is a number
    assert create("pgd", eps=[0, 0.1]).eps == (0.0, 0.1)
    assert create("square", eps=0.1, max_queries=10, seed=None).seed is None


class _Bad(nn.Module):
    def __init__(self, out: int, nan: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(64, out)
        self.nan = nan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.lin(x.flatten(1))
        return y * float("nan") if self.nan else y


@pytest.mark.parametrize(
    ("model", "message"),
    [(_Bad(10, nan=True), "NaN"), (_Bad(7), r"\(4, 7\).*10 classes")],
)
def test_bad_model_outputs_are_clear_errors(model: nn.Module, message: str) -> None:
    target = WhiteBox(Classifier(model, input_shape=SHAPE, num_classes=10))
    x, y = torch.rand(4, *SHAPE), torch.arange(4)
    with pytest.raises(InputError, match=message):
        target.logits(x)
    with pytest.raises(InputError, match=message):
        create("fgsm", eps=0.1)(target, x, y)
    with pytest.raises(InputError, match=message):
        target.as_labels().labels(x)


# ------------------------------------------------------------------------ strict JSON
def test_strict_json_helper() -> None:
    from advx.jsonio import dumps

    text = dumps({"a": float("inf"), "b": [float("nan"), 1.5], "c": torch.tensor(2.0)})
    assert strict_loads(text) == {"a": None, "b": [None, 1.5], "c": 2.0}


def test_cli_print_json_is_strict(capsys) -> None:
    from advx.cli._common import print_json

    print_json({"median_distance": float("nan"), "eps": float("inf")})
    assert strict_loads(capsys.readouterr().out) == {"median_distance": None, "eps": None}


def test_eval_files_are_strict_json(tmp_path: Path) -> None:
    from advx.evaluate.records import write_json

    write_json(tmp_path / "s.json", {"x": float("-inf"), "y": (1, float("nan"))})
    assert strict_loads((tmp_path / "s.json").read_text()) == {"x": None, "y": [1, None]}


# ---------------------------------------------------------------------- CLI consistency
def _cli(*args: str):
    from advx.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def zoo_linear(tmp_path_factory) -> Path:
    from advx.training import TrainConfig, train

    trained = train("linear", "digits", config=TrainConfig(epochs=1, seed=0))
    return save(trained.model, tmp_path_factory.mktemp("zoo") / "lin", meta={"dataset": "digits"})


@pytest.mark.parametrize("command", ["attack", "eval"])
def test_eps_inf_refused_the_same_way(zoo_linear: Path, tmp_path: Path, command: str) -> None:
    r = _cli(command, str(zoo_linear), "--eps", "inf", "--n", "4", "--out", str(tmp_path / "r"))
    assert r.exit_code == 2, r.output
    assert "eps must be finite" in r.output


@pytest.mark.parametrize("command", ["attack", "eval"])
def test_n_over_the_dataset_is_said(zoo_linear: Path, tmp_path: Path, command: str) -> None:
    extra = ["--suite", "quick", "--probe", "0"] if command == "eval" else ["--attack", "fgsm"]
    r = _cli(command, str(zoo_linear), "--eps", "0.1", "--n", "100000", "--json",
             "--out", str(tmp_path / "r"), *extra)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "--n 100000 is more than the" in r.stderr and "using all" in r.stderr


# ---------------------------------------------------------------------- run identity
def _eval_kw() -> dict[str, Any]:
    return {"eps": 0.1, "suite": "quick", "batch_size": 20, "probe": 0, "n": 60}


def test_resume_refuses_another_model(digits_mlp, digits_linear, digits_data, tmp_path) -> None:
    from advx.evaluate import evaluate

    x, y = digits_data[2][:60], digits_data[3][:60]
    out = tmp_path / "run"
    part = evaluate(WhiteBox(digits_mlp), (x, y), run_dir=out, stop_after_batches=1, **_eval_kw())
    assert not part.complete
    with pytest.raises(ConfigError, match="the model's weights"):
        evaluate(WhiteBox(digits_linear), (x, y), run_dir=out, resume=True, **_eval_kw())
    with pytest.raises(ConfigError, match="the data's contents"):
        evaluate(WhiteBox(digits_mlp), (x.flip(0), y.flip(0)), run_dir=out, resume=True,
                 **_eval_kw())  # fmt: skip
    done = evaluate(WhiteBox(digits_mlp), (x, y), run_dir=out, resume=True, **_eval_kw())
    assert done.complete
    run = strict_loads((out / "run.json").read_text())
    assert isinstance(run, dict)
    assert set(run["identity"]) == {"model", "data", "code"}
    assert run["identity"]["data"]["indices"] == "0:60"


def test_resume_refuses_other_code_and_old_runs(digits_mlp, digits_data, tmp_path, monkeypatch):
    from advx.evaluate import evaluate, identity

    x, y = digits_data[2][:60], digits_data[3][:60]
    out = tmp_path / "run"
    evaluate(WhiteBox(digits_mlp), (x, y), run_dir=out, stop_after_batches=1, **_eval_kw())
    monkeypatch.setattr(identity, "source_sha256", lambda: "0" * 64)
    with pytest.raises(ConfigError, match="advx's source code"):
        evaluate(WhiteBox(digits_mlp), (x, y), run_dir=out, resume=True, **_eval_kw())
    monkeypatch.undo()
    run = json.loads((out / "run.json").read_text())
    del run["identity"]
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(ConfigError, match="records no identity"):
        evaluate(WhiteBox(digits_mlp), (x, y), run_dir=out, resume=True, **_eval_kw())


def test_model_identity_tells_weights_apart(digits_mlp, digits_linear) -> None:
    from advx.adapters import torch_target
    from advx.evaluate.identity import model_identity

    a = model_identity(WhiteBox(digits_mlp))
    assert a["sha256"] == model_identity(torch_target(digits_mlp))["sha256"]
    assert a["sha256"] != model_identity(WhiteBox(digits_linear))["sha256"]


def test_sklearn_identity_is_stable_and_distinct(digits_data) -> None:
    from advx.evaluate.identity import model_identity
    from advx.training import TrainConfig, train

    a = train("logreg", "digits", config=TrainConfig(seed=0)).model
    b = train("tree", "digits", config=TrainConfig(seed=0)).model
    ia, ib = model_identity(a), model_identity(b)
    assert ia["sha256"] and ia["sha256"] == model_identity(a)["sha256"] != ib["sha256"]


def test_cli_resume_with_another_model_is_refused(zoo_linear: Path, tmp_path: Path) -> None:
    from advx.training import TrainConfig, train

    other = save(
        train("linear", "digits", config=TrainConfig(epochs=2, seed=1)).model,
        tmp_path / "lin2",
        meta={"dataset": "digits"},
    )
    out = tmp_path / "run"
    common = ["--eps", "0.1", "--suite", "quick", "--n", "40", "--batch-size", "20",
              "--probe", "0", "--out", str(out), "--json"]  # fmt: skip
    r = _cli("eval", str(zoo_linear), *common, "--stop-after-batches", "1")
    assert r.exit_code == 3, r.output  # incomplete
    r = _cli("eval", str(other), *common, "--resume")
    assert r.exit_code == 2 and "the model's weights" in r.output, r.output
    r = _cli("eval", str(zoo_linear), *common, "--resume")
    assert r.exit_code == 0, r.output


def test_attack_summary_records_identity(zoo_linear: Path, tmp_path: Path) -> None:
    out = tmp_path / "a"
    r = _cli("attack", str(zoo_linear), "--attack", "fgsm", "--eps", "0.1", "--n", "10",
             "--json", "--out", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = strict_loads((out / "summary.json").read_text())
    assert isinstance(summary, dict)
    ident = summary["identity"]
    assert ident["model"]["sha256"] and ident["data"]["n"] == 10 and ident["data"]["sha256"]
    assert ident["code"]["advx"]
