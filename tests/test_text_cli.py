"""``advx text attack`` / ``advx text transfer`` and ``advx train`` for a text model."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from advx.cli import app
from advx.text.result import TextAttackResults
from tests._text_helpers import trained_bow

runner = CliRunner()
KEYS = {"clean_accuracy", "robust_accuracy", "success_rate", "mean_words_changed_pct",
        "mean_queries", "seconds"}  # fmt: skip


@pytest.fixture(scope="module")
def bow_dir():
    return trained_bow()[1]


def _json(result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def test_attack_a_split_with_json_and_saved_results(bow_dir, tmp_path):
    out = tmp_path / "res.json"
    doc = _json(runner.invoke(app, ["text", "attack", str(bow_dir), "--recipe", "deepwordbug",
                                    "--n", "8", "--max-queries", "300", "--json", "--out", str(out)]))  # fmt: skip
    assert KEYS <= set(doc) and doc["recipe"] == "deepwordbug" and doc["n"] == 8
    res = TextAttackResults.load(out)
    assert len(res) == 8 and all(r.queries <= 300 for r in res)
    assert doc["success_rate"] == pytest.approx(res.summary()["success_rate"])


def test_attack_one_sentence(bow_dir):
    r = runner.invoke(app, ["text", "attack", str(bow_dir), "--text", "I love this car",
                            "--recipe", "pwws"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "I" in r.output and "pwws on 1 texts" in r.output
    doc = _json(runner.invoke(app, ["text", "attack", str(bow_dir), "--text", "I love this car",
                                    "--recipe", "deepwordbug", "--json"]))  # fmt: skip
    assert doc["n"] == 1 and doc["clean_accuracy"] == 1.0  # label = the model's prediction


def test_cli_errors_are_one_line(bow_dir, tmp_path):
    r = runner.invoke(app, ["text", "attack", str(bow_dir), "--recipe", "nope"])
    assert r.exit_code == 2 and "unknown text recipe 'nope'" in r.output
    r = runner.invoke(app, ["text", "attack", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "advx train" in r.output
    r = runner.invoke(app, ["text", "transfer", "--source", str(bow_dir)])
    assert r.exit_code == 2 and "--target" in r.output


def test_transfer_to_itself(bow_dir):
    doc = _json(runner.invoke(app, ["text", "transfer", "--source", str(bow_dir), "--target",
                                    str(bow_dir), "--recipe", "deepwordbug", "--n", "6", "--json"]))  # fmt: skip
    # on itself, every adversarial text that fooled the source fools the "target"
    assert doc["matrix"][0][0] in (None, 1.0)
    assert doc["cells"][0]["n"] == 6


def test_train_a_text_model_from_the_cli(tmp_path):
    from advx.text.models import load

    out = tmp_path / "bow"
    doc = _json(runner.invoke(app, ["train", "--data", "tweets-binary", "--model", "bow",
                                    "--limit", "400", "--epochs", "1", "--out", str(out), "--json"]))  # fmt: skip
    assert doc["arch"] == "bow" and 0 <= doc["test_accuracy"] <= 1
    assert load(out).predict_proba(["I love this car"]).shape == (1, 2)


@pytest.mark.slow
def test_adversarial_training_from_the_cli(tmp_path):
    out = tmp_path / "bow-adv"
    doc = _json(runner.invoke(app, ["train", "--data", "tweets-binary", "--model", "bow", "--adv",
                                    "deepwordbug", "--limit", "300", "--epochs", "2", "--out",
                                    str(out), "--json"]))  # fmt: skip
    rounds = doc["adversarial"]["rounds_log"]
    assert doc["adversarial"]["adv"] == "deepwordbug" and len(rounds) == 2
    assert all(r["attacked"] == 300 for r in rounds)
    r = runner.invoke(app, ["train", "--data", "tweets-binary", "--model", "bow", "--adv", "pgd",
                            "--eps", "0.1", "--out", str(tmp_path / "x")])  # fmt: skip
    assert r.exit_code == 2 and "text" in r.output
