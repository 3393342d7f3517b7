"""``advx detect`` and ``advx train --adv`` end to end on small digits checkpoints."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from advx.cli import app
from advx.defenses.detectors import load_detector, read_detector_info
from advx.models import load, read_info
from tests._single_thread import single_thread  # noqa: F401  (autouse)

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Softmax regression on digits, saved as an advx checkpoint."""
    from advx import training

    out = tmp_path_factory.mktemp("ckpt") / "linear-digits"
    training.train(
        "mlp", "digits", config=training.default_config("mlp", "digits", epochs=10), out=out
    )
    return out


def test_detect_train_then_eval_json(model_dir, tmp_path):
    det_dir = tmp_path / "det"
    res = runner.invoke(app, ["detect", "train", str(model_dir), "--detector", "mahalanobis",
                              "--out", str(det_dir), "--n", "1000", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["detector"] == "mahalanobis" and summary["calibration"]["fpr"] == 0.05
    assert read_detector_info(det_dir)["threshold"] == summary["threshold"]
    load_detector(det_dir, load(model_dir))
    res = runner.invoke(app, ["detect", "eval", str(model_dir), str(det_dir), "--n", "120",
                              "--adaptive", "--adaptive-steps", "20", "--eps", "0.2", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["n"] == 120 and rep["eps"] == 0.2 and rep["kind"] == "mahalanobis"
    for key in ("non_adaptive", "adaptive"):
        o = rep[key]
        assert 0 <= o["defended_accuracy"] <= 1 and 0 < o["fooled_model"] <= 1
    assert rep["cost"]["model_parameters"] > 0
    table = runner.invoke(app, ["detect", "eval", str(model_dir), str(det_dir), "--n", "60"])
    assert table.exit_code == 0 and "defended accuracy" in table.output


def test_detect_errors_are_one_line_messages(model_dir, tmp_path):
    res = runner.invoke(app, ["detect", "train", str(model_dir), "--detector", "nope",
                              "--out", str(tmp_path / "d")])  # fmt: skip
    assert res.exit_code == 2 and "unknown detector" in res.output
    res = runner.invoke(app, ["detect", "train", str(model_dir), "--detector", "squeeze",
                              "--layer", "input", "--out", str(tmp_path / "d")])  # fmt: skip
    assert res.exit_code == 2 and "no setting" in res.output
    res = runner.invoke(app, ["detect", "eval", str(model_dir), str(tmp_path / "missing")])
    assert res.exit_code == 2 and "detector.json" in res.output


def test_train_adv_records_the_recipe_and_rejects_bad_options(tmp_path):
    out = tmp_path / "m"
    res = runner.invoke(app, ["train", "--data", "digits", "--model", "linear", "--epochs", "2",
                              "--adv", "pgd", "--eps", "8/255", "--steps", "3", "--out", str(out),
                              "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    adv = read_info(out)["adversarial"]
    assert adv["adv"] == "pgd" and adv["eps"] == pytest.approx(8 / 255) and adv["steps"] == 3
    assert adv["step_size"] == pytest.approx(2.5 * (8 / 255) / 3) and adv["beta"] is None
    for args, msg in (
        (["--eps", "0.1"], "need --adv"),
        (["--adv", "nope", "--eps", "0.1"], "unknown adversary"),
        (["--adv", "fgsm", "--eps", "0.1", "--beta", "2"], "not beta"),
        (["--adv", "pgd"], "eps"),
    ):
        res = runner.invoke(app, ["train", "--data", "digits", "--model", "linear", "--epochs",
                                  "1", "--out", str(tmp_path / "x"), *args])  # fmt: skip
        assert res.exit_code == 2 and msg in res.output, (args, res.output)
