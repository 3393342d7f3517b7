"""``advx attack`` end to end on a small saved checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from advx.attacks import AttackResult, Status
from advx.cli import app
from advx.cli._common import parse_float
from advx.cli.attack import build_settings
from advx.errors import ConfigError

runner = CliRunner()
KEYS = ("clean_accuracy", "robust_accuracy", "success_rate", "median_distance",
        "max_distance", "mean_queries", "median_queries", "seconds")  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Softmax regression on digits, saved as an advx checkpoint (~94% test accuracy)."""
    from advx import training

    out = tmp_path_factory.mktemp("ckpt") / "linear-digits"
    config = training.default_config("linear", "digits", epochs=5)
    training.train("linear", "digits", config=config, out=out)
    return out


def _invoke(*args: str):
    return runner.invoke(app, ["attack", *map(str, args)])


def test_json_summary_matches_the_saved_result(model_dir, tmp_path):
    run = tmp_path / "run"
    res = _invoke(model_dir, "--attack", "pgd", "--eps", "0.2", "--steps", "8", "--n", "120",
                  "--batch-size", "50", "--out", run, "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert all(k in out for k in KEYS)
    assert 0.85 < out["clean_accuracy"] <= 1.0
    assert out["robust_accuracy"] < out["clean_accuracy"]
    assert 0.0 < out["success_rate"] <= 1.0
    assert 0 < out["median_distance"] <= out["max_distance"] <= 0.2 + 1e-6
    assert 1 <= out["median_queries"] <= 8 and out["seconds"] > 0
    # the files agree with what was printed
    saved = AttackResult.load(run)
    assert len(saved) == 120 and saved.config["steps"] == 8 and saved.config["early_stop"]
    assert abs(float((saved.pred_adv == saved.y).float().mean()) - out["robust_accuracy"]) < 1e-9
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"] == "digits" and summary["split"] == "test"
    assert summary["files"]["figure"] == "examples.png"
    assert (run / "examples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clean_accuracy_is_the_models_own(model_dir, tmp_path):
    from advx.data import load
    from advx.models import load as load_model

    ds = load("digits", "test", limit=60)
    with torch.no_grad():
        acc = float((load_model(model_dir)(ds.x).argmax(1) == ds.y).float().mean())
    res = _invoke(model_dir, "--attack", "fgsm", "--eps", "0", "--n", "60", "--out",
                  tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["clean_accuracy"] == pytest.approx(acc)
    assert out["robust_accuracy"] == pytest.approx(acc)  # eps=0 is an exact no-op


def test_no_early_stop_runs_every_step_and_set_reaches_any_field(model_dir, tmp_path):
    res = _invoke(model_dir, "--attack", "pgd", "--eps", "8/255", "--set", "steps=3",
                  "--set", "random_init=false", "--no-early-stop", "--n", "40", "--out",
                  tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    r = AttackResult.load(tmp_path / "r")
    assert r.config["steps"] == 3 and r.config["random_init"] is False
    assert r.config["eps"] == pytest.approx(8 / 255)
    assert (r.queries[r.attacked] == 3).all()


def test_targeted_at_one_class_leaves_that_class_out(model_dir, tmp_path):
    res = _invoke(model_dir, "--attack", "pgd", "--eps", "0.3", "--steps", "10", "--targets",
                  "3", "--n", "50", "--out", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    r = AttackResult.load(tmp_path / "r")
    assert r.targets is not None and (r.targets == 3).all() and (r.y != 3).all()
    ok = r.status == int(Status.SUCCEEDED)
    assert ok.any() and (r.pred_adv[ok] == 3).all()


def test_table_output(model_dir, tmp_path):
    res = _invoke(model_dir, "--attack", "fgsm", "--eps", "0.1", "--n", "30", "--out",
                  tmp_path / "r")  # fmt: skip
    assert res.exit_code == 0, res.output
    for label in ("clean accuracy", "robust accuracy", "success rate", "mean passes"):
        assert label in res.stdout


def test_list():
    res = _invoke("--list")
    assert res.exit_code == 0, res.output
    assert "pgd" in res.stdout and "fgsm" in res.stdout and "gradients" in res.stdout
    res = _invoke("--list", "--json")
    rows = {r["slug"]: r for r in json.loads(res.stdout)["attacks"]}
    assert rows["pgd"]["access"] == "gradients" and "l2" in rows["pgd"]["norms"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attack", "fgsm", "--eps", "0.1", "--steps", "5"], "--steps does not apply"),
        (["--attack", "pgd", "--eps", "0.1", "--set", "bogus=1"], "no setting 'bogus'"),
        (["--attack", "pgd", "--eps", "0.1", "--set", "steps=many"], "steps=many"),
        (["--attack", "pgd", "--eps", "0.1", "--set", "steps"], "key=value"),
        (["--attack", "nope", "--eps", "0.1"], "unknown attack"),
        (["--attack", "pgd"], "needs eps"),
        (["--attack", "pgd", "--eps", "-1"], "eps must be"),
        (["--attack", "pgd", "--eps", "0.1", "--targets", "giraffe"], "--targets"),
        (["--attack", "pgd", "--eps", "0.1", "--norm", "l7"], "unknown norm"),
    ],
)
def test_bad_options_are_one_line_errors(model_dir, tmp_path, args, message):
    res = _invoke(model_dir, *args, "--n", "10", "--out", tmp_path / "r")
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_missing_model_is_an_error(tmp_path):
    res = _invoke(tmp_path / "nothing", "--eps", "0.1")
    assert res.exit_code == 2 and "does not exist" in res.stderr


def test_settings_parsing_is_typed():
    s = build_settings("pgd", {"steps": None, "seed": 1}, ["rel_step_size=0.1", "loss=margin",
                                                          "restarts=2", "step_size=none"])  # fmt: skip
    assert s == {"seed": 1, "rel_step_size": 0.1, "loss": "margin", "restarts": 2,
                 "step_size": None}  # fmt: skip
    assert build_settings("pgd", {}, ["eps=0.1,0.2"])["eps"] == (0.1, 0.2)
    assert build_settings("pgd", {}, ["eps=8/255"])["eps"] == pytest.approx(8 / 255)
    with pytest.raises(ConfigError):
        build_settings("pgd", {}, ["restarts=1.5"])
    assert parse_float("inf") == float("inf")
    with pytest.raises(ConfigError):
        parse_float("1/0")


def test_minimal_attack_needs_no_eps_and_prints_strict_json(model_dir, tmp_path):
    def strict(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    res = _invoke(model_dir, "--attack", "deepfool", "--n", "30", "--out", tmp_path / "r", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout, parse_constant=strict)
    assert out["eps"] is None and out["success_rate"] > 0.9
    json.loads((tmp_path / "r" / "summary.json").read_text(), parse_constant=strict)
