"""Bring your own model on the command line: every command that names a model (attack,
eval, transfer, serve, detect, text attack) takes a TorchScript file, an ONNX file, a
module:function and (text) a Hugging Face directory; `advx import` round-trips; the
README's "Attack your own model" commands run as written."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from advx.cli import app
from tests._byom import hf_text_dir, write_image_models

runner = CliRunner()
README = Path(__file__).resolve().parents[1] / "README.md"
SHAPE = ("--input-shape", "1,8,8")
FAST = ("--data", "digits", "--n", "40", "--eps", "0.1")


def _run(*args: object):
    res = runner.invoke(app, [str(a) for a in args])
    return res


def _ok(*args: object) -> dict[str, Any]:
    res = _run(*args, "--json")
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def user(tmp_path_factory, digits_mlp):
    root = tmp_path_factory.mktemp("cli-user")
    specs = write_image_models(root, digits_mlp)
    (root / "names.txt").write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    return {k: str(v) for k, v in specs.items()} | {"root": str(root)}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return hf_text_dir(tmp_path_factory.mktemp("cli-hf"))


# ---------------------------------------------------------------------------- attack
@pytest.mark.parametrize("kind", ["torchscript", "factory"])
def test_attack_white_box_user_models(user, kind, tmp_path):
    out = _ok("attack", user[kind], *SHAPE, *FAST, "--steps", "10", "--device", "cpu",
              "--out", tmp_path / "run")  # fmt: skip
    assert out["clean_accuracy"] > 0.9  # the trained digits MLP, whatever its packaging
    assert out["robust_accuracy"] < out["clean_accuracy"]
    assert out["max_distance"] <= 0.1 + 1e-6
    assert (tmp_path / "run" / "summary.json").is_file()


def test_attack_onnx_is_black_box_and_says_so(user):
    out = _ok("attack", user["onnx"], *FAST, "--attack", "square", "--max-queries", "100")
    assert out["clean_accuracy"] > 0.9 and out["mean_queries"] <= 100
    res = _run("attack", user["onnx"], *FAST, "--attack", "pgd")
    assert res.exit_code == 2
    assert "scores and labels only" in res.output and "square" in res.output


def test_attack_option_errors(user):
    cases = [
        ((user["pickle"], *SHAPE), "does not unpickle"),
        ((user["torchscript"],), "--input-shape"),
        ((user["torchscript"], *SHAPE, "--mean", "0.5,0.5"), "--mean has 2 values"),
        ((user["torchscript"], *SHAPE, "--bounds", "1,0"), "lo < hi"),
        ((user["torchscript"], "--input-shape", "1,x"), "--input-shape needs sizes"),
        ((user["torchscript"], *SHAPE, "--class-names", "a,b"), "2 class names"),
        ((f"{user['root']}/usermodels.py:nope", *SHAPE), "has no attribute 'nope'"),
        (("nope.models:make", *SHAPE), "cannot import module"),
        ((f"{user['root']}/nothing-here.pt",), "no model at"),
        ((user["torchscript"], *SHAPE, "--device", "tpu:0"), "--device"),
    ]
    for args, message in cases:
        res = _run("attack", *args, *FAST)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output, (args, res.output)


def test_device_cuda_without_cuda_is_a_clear_error(user):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    res = _run("attack", user["torchscript"], *SHAPE, *FAST, "--device", "cuda")
    assert res.exit_code == 2 and "CUDA is not available" in res.output


def test_amp_on_cpu_is_a_noop_with_a_note(user):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU note")
    plain = _ok("attack", user["torchscript"], *SHAPE, *FAST, "--steps", "5", "--device", "cpu")
    res = _run("attack", user["torchscript"], *SHAPE, *FAST, "--steps", "5", "--device", "cpu",
               "--amp", "--json")  # fmt: skip
    assert res.exit_code == 0 and "--amp has no effect on cpu" in res.stderr
    amp = json.loads(res.stdout)
    assert amp["robust_accuracy"] == plain["robust_accuracy"]


@pytest.mark.cuda
def test_attack_on_cuda_matches_cpu(user):
    cpu = _ok("attack", user["torchscript"], *SHAPE, *FAST, "--steps", "10", "--device", "cpu")
    gpu = _ok("attack", user["torchscript"], *SHAPE, *FAST, "--steps", "10", "--device", "cuda")
    assert gpu["clean_accuracy"] == cpu["clean_accuracy"]
    assert abs(gpu["robust_accuracy"] - cpu["robust_accuracy"]) <= 0.05
    amp = _ok("attack", user["torchscript"], *SHAPE, *FAST, "--steps", "10", "--device", "cuda",
              "--amp")  # fmt: skip
    assert abs(amp["robust_accuracy"] - cpu["robust_accuracy"]) <= 0.1
    assert amp["max_distance"] <= 0.1 + 1e-6


# ------------------------------------------------------------------------------ eval
def test_eval_user_models(user, tmp_path):
    ts = _ok("eval", user["torchscript"], *SHAPE, "--data", "digits", "-n", "40",
             "--eps", "0.1", "--suite", "quick", "--probe", "0", "--out", tmp_path / "ts")  # fmt: skip
    assert ts["clean_accuracy"] > 0.9
    assert ts["robust_accuracy"]["0.1"] < ts["clean_accuracy"]
    onnx = _ok("eval", user["onnx"], "--data", "digits", "-n", "40", "--eps", "0.1",
               "--suite", "quick", "--probe", "0", "--out", tmp_path / "onnx")  # fmt: skip
    skipped = onnx["skipped_attacks"]
    assert skipped and all("gradient" in s["reason"].lower() for s in skipped)


# -------------------------------------------------------------------------- transfer
def test_transfer_between_user_models(user, tmp_path):
    out = _ok("transfer", "-s", user["torchscript"], "-t", user["onnx"], "-t", user["factory"],
              *SHAPE, *FAST, "--steps", "10", "--out", tmp_path / "t")  # fmt: skip
    matrix = out["matrix"]
    # the same network in three packagings: what fools one fools the others, exactly
    assert len(matrix) == 1 and len(matrix[0]) == 2
    assert out["fooled"][0][0] == out["fooled"][0][1] > 0
    assert matrix[0][0] == matrix[0][1] == pytest.approx(out["source_success"][0])


# ----------------------------------------------------------------------------- serve
@pytest.mark.parametrize("kind", ["torchscript", "onnx", "factory"])
def test_serve_user_models(user, monkeypatch, kind, digits_mlp, digits_data):
    import uvicorn
    from starlette.testclient import TestClient

    captured: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: captured.update(app=self.config.app))
    extra = () if kind == "onnx" else SHAPE
    res = _run("serve", user[kind], *extra, "--class-names", Path(user["root"]) / "names.txt",
               "--port", "8123", "--device", "cpu")  # fmt: skip
    assert res.exit_code == 0, res.output
    name = {"torchscript": "net", "onnx": "net", "factory": "make"}[kind]
    x = digits_data[2][:5]
    with TestClient(captured["app"]) as client:
        meta = client.get(f"/v2/models/{name}").json()
        assert meta["parameters"]["input_shape"] == [1, 8, 8]
        assert meta["parameters"]["class_names"][2] == "digit 2"
        body = {"inputs": [{"name": "input", "shape": [5, 1, 8, 8], "datatype": "FP32",
                            "data": x.reshape(-1).tolist()}]}  # fmt: skip
        answer = client.post(f"/v2/models/{name}/infer", json=body).json()
    probs = {o["name"]: o["data"] for o in answer["outputs"]}["predict_proba"]
    want = digits_mlp(x).softmax(1)
    assert torch.allclose(torch.tensor(probs).reshape(5, 10), want, atol=1e-5)


# ---------------------------------------------------------------------------- detect
@pytest.mark.parametrize("kind", ["torchscript", "factory"])
def test_detect_user_models(user, tmp_path, kind):
    det = tmp_path / "det"
    train = _ok("detect", "train", user[kind], *SHAPE, "--data", "digits", "--detector",
                "squeeze", "--n", "300", "--eps", "0.1", "--out", det)  # fmt: skip
    assert train["detector"] == "squeeze" and det.is_dir()
    rep = _ok("detect", "eval", user[kind], det, *SHAPE, "--data", "digits", "--n", "60",
              "--steps", "5")  # fmt: skip
    assert 0.0 <= rep["non_adaptive"]["detection_rate"] <= 1.0
    res = _run("detect", "train", user["onnx"], "--data", "digits", "--out", tmp_path / "d2")
    assert res.exit_code == 2 and "detectors guard torch models" in res.output


# ------------------------------------------------------------------------------ text
def test_text_attack_hf_directory_and_its_import(hf_dir, tmp_path):
    texts = ("--text", "what a great and lovely day", "--text", "this was a terrible movie")
    direct = _ok("text", "attack", hf_dir, "--recipe", "hotflip", *texts, "--device", "cpu")
    assert direct["n"] == 2 and 0.0 <= direct["success_rate"] <= 1.0
    assert direct["mean_queries"] > 0
    imported = _ok("import", hf_dir, "--out", tmp_path / "hf-ckpt", "--dataset", "tweets-binary")
    assert imported["kind"] == "huggingface"
    again = _ok("text", "attack", tmp_path / "hf-ckpt", "--recipe", "hotflip", *texts)
    for key in ("success_rate", "robust_accuracy", "mean_words_changed_pct"):
        assert again[key] == direct[key]
    res = _run("text", "attack", tmp_path / "nothing", "--text", "hi")
    assert res.exit_code == 2 and "no model at" in res.output


def test_text_attack_refuses_image_files(user):
    res = _run("text", "attack", user["onnx"], "--text", "hello there")
    assert res.exit_code == 2 and "text classifier" in res.output


# ---------------------------------------------------------------------------- import
def test_import_then_attack_without_options(user, tmp_path):
    ckpts = {}
    for kind, extra in (("torchscript", SHAPE), ("onnx", ()), ("factory", SHAPE)):
        out = tmp_path / kind
        info = _ok("import", user[kind], *extra, "--class-names", Path(user["root"]) / "names.txt",
                   "--dataset", "digits", "--out", out)  # fmt: skip
        assert info["class_names"][0] == "digit 0" and info["input_shape"] == [1, 8, 8]
        ckpts[kind] = out
    direct = _ok("attack", user["torchscript"], *SHAPE, *FAST, "--steps", "10")
    again = _ok("attack", ckpts["torchscript"], "--n", "40", "--eps", "0.1", "--steps", "10")
    assert again == {**again, **{k: direct[k] for k in ("clean_accuracy", "robust_accuracy")}}
    fac = _ok("attack", ckpts["factory"], "--n", "40", "--eps", "0.1", "--steps", "10")
    assert fac["robust_accuracy"] == direct["robust_accuracy"]
    onnx = _ok("attack", ckpts["onnx"], "--n", "40", "--eps", "0.1", "--attack", "square",
               "--max-queries", "50")  # fmt: skip
    assert onnx["clean_accuracy"] == direct["clean_accuracy"]


# ---------------------------------------------------------------------------- README
def _readme_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Attack your own model", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, "the README's 'Attack your own model' section lost its commands"
    lines = [ln.split("#", 1)[0].strip() for ln in block.group(1).splitlines()]
    return [ln for ln in lines if ln.startswith("advx ")]


@pytest.mark.slow  # ~35 s of CPU: every command below also has its own fast test above
def test_readme_byom_commands_run(user, hf_dir, tmp_path, monkeypatch):
    """Each command of the README section, as written, in a directory holding the files
    it names (net.pt, net.onnx, mymodels.py, names.txt, hf-sentiment)."""
    import shutil

    import uvicorn

    work = tmp_path / "work"
    work.mkdir()
    root = Path(user["root"])
    for name in ("net.pt", "net.onnx", "weights.safetensors", "names.txt"):
        shutil.copy(root / name, work / name)
    shutil.copy(root / "usermodels.py", work / "mymodels.py")
    shutil.copytree(hf_dir, work / "hf-sentiment")
    monkeypatch.chdir(work)
    served = []
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda self: served.append({"port": self.config.port})
    )
    commands = _readme_commands()
    kinds = {c.split()[1] for c in commands}
    assert {"attack", "eval", "transfer", "detect", "text", "import", "serve"} <= kinds
    for command in commands:
        args = shlex.split(command)[1:]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (command, res.output)
    assert served and served[0]["port"] == 8080
