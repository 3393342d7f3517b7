"""`advx eval` end to end: JSON contract, resumption after a stop and after SIGKILL,
sharding over two torchrun processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._single_thread import single_thread  # noqa: F401  (autouse)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A digits MLP checkpoint written by advx.training.train (a few seconds)."""
    from advx.training import default_config, train

    out: Path = tmp_path_factory.mktemp("models") / "mlp"
    train("mlp", "digits", config=default_config("mlp", "digits", epochs=3), out=out)
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _cli(*args: str, code: int = 0) -> str:
    """Run the CLI in this process; check the exit code; return stdout."""
    from typer.testing import CliRunner

    from advx.cli import app

    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    return res.stdout


# A suite slow enough per batch to kill a run between batches (PGD without early stop).
SLOW_SUITE = {"name": "slow", "attacks": [{"attack": "pgd", "steps": 30, "early_stop": False}]}


def _common(model_dir: Path, out: Path, suite: Path | str, *extra: str) -> list[str]:
    return [
        "eval", str(model_dir), "--suite", str(suite), "--eps", "0.05", "--eps", "0.1",
        "-n", "240", "--batch-size", "30", "--out", str(out), "--probe", "0", "--json", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(model_dir, tmp_path_factory):
    """An uninterrupted CLI run of the slow suite, its JSON output and its suite file."""
    base = tmp_path_factory.mktemp("ref")
    suite = base / "slow.json"
    suite.write_text(json.dumps(SLOW_SUITE))
    return json.loads(_cli(*_common(model_dir, base / "run", suite))), suite


def test_json_contract(model_dir, tmp_path):
    out = _cli(
        "eval", str(model_dir), "--suite", "quick", "--eps", "0.1", "--eps", "8/255",
        "-n", "60", "--out", str(tmp_path / "r"), "--probe", "20", "--json",
    )  # fmt: skip
    body = json.loads(out)
    assert {"clean_accuracy", "robust_accuracy", "per_attack", "flags", "seconds"} <= set(body)
    assert set(body["robust_accuracy"]) == {"0.1", repr(8 / 255)}
    assert set(body["per_attack"]) == {"fgsm", "pgd"}
    assert all(0 <= v <= body["clean_accuracy"] for v in body["robust_accuracy"].values())
    assert len(body["flags"]) == 7
    assert _cli("eval", "--list", "--json").count("apgd-ce") >= 2


def test_cli_errors_are_one_line(model_dir):
    from typer.testing import CliRunner

    from advx.cli import app

    res = CliRunner().invoke(app, ["eval", str(model_dir), "--suite", "nope", "--eps", "0.1"])
    assert res.exit_code == 2 and "unknown suite" in res.stderr and res.exception is not None
    assert "Traceback" not in res.stderr
    res = CliRunner().invoke(app, ["eval", str(model_dir), "--suite", "quick"])
    assert res.exit_code == 2 and "--eps" in res.stderr


def test_stop_and_resume_equals_uninterrupted(model_dir, reference, tmp_path):
    ref, suite = reference
    out = tmp_path / "r"
    stopped = json.loads(_cli(*_common(model_dir, out, suite, "--stop-after-batches", "3"), code=3))
    assert stopped["batches"] == {"done": 3, "total": 8} and not stopped["complete"]
    resumed = json.loads(_cli(*_common(model_dir, out, suite, "--resume")))
    assert resumed["complete"]
    assert resumed["robust_accuracy"] == ref["robust_accuracy"]
    assert resumed["per_attack"] == ref["per_attack"]
    assert resumed["clean_accuracy"] == ref["clean_accuracy"]


def test_sigkill_and_resume_equals_uninterrupted(model_dir, reference, tmp_path):
    ref, suite = reference
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "advx", *_common(model_dir, out, suite)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT,
    )  # fmt: skip
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # wait for the second finished batch
            if results.exists() and results.read_text().count('"batch_done"') >= 2:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = results.read_text().count('"batch_done"')
    assert 2 <= done < 8
    resumed = json.loads(_cli(*_common(model_dir, out, suite, "--resume")))
    assert resumed["complete"]
    assert resumed["robust_accuracy"] == ref["robust_accuracy"]
    assert resumed["per_attack"] == ref["per_attack"]


def test_torchrun_two_processes_equal_single(model_dir, reference, tmp_path):
    ref, suite = reference
    out = tmp_path / "r"
    cmd = [
        str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
        "-m", "advx", *_common(model_dir, out, suite),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    body = json.loads(proc.stdout.strip().splitlines()[-1])  # only rank 0 prints
    assert body["robust_accuracy"] == ref["robust_accuracy"]
    assert body["per_attack"] == ref["per_attack"]
    assert not list(out.glob("results.rank*.jsonl"))  # merged by rank 0
    lines = (out / "results.jsonl").read_text().splitlines()
    batches = [json.loads(ln)["batch"] for ln in lines if '"batch_done"' in ln]
    assert batches == list(range(8))
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2
    assert run["meta"]["command"].startswith("torchrun --nproc_per_node 2 -m advx eval")
