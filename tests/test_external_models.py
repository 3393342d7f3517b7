"""User models in the library (advx.models.external, advx.text.huggingface, advx.devices):
each kind opens with the same logits as the original, pickles are refused, bad specs and
options give typed errors that say what to do, and `import_model` round-trips exactly."""

from __future__ import annotations

import json
import os
import pickle
import stat
import warnings

import pytest
import torch
from torch import nn

import advx.models.checkpoint as ckpt
from advx import models
from advx.attacks import create
from advx.devices import autocast, resolve_device
from advx.errors import AccessError, CheckpointError, ConfigError, InputError
from advx.models.adapter import Classifier
from advx.models.external import (
    ModelOptions,
    import_model,
    load_factory,
    load_onnx,
    load_torchscript,
    open_model,
    require_access,
    spec_kind,
)
from advx.targets import Access, ScoreBox, WhiteBox
from tests._byom import hf_text_dir, write_image_models

SHAPE = ModelOptions(input_shape=(1, 8, 8))


@pytest.fixture(scope="module")
def user(tmp_path_factory, digits_mlp):
    return write_image_models(tmp_path_factory.mktemp("user"), digits_mlp)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return hf_text_dir(tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="module")
def x8(digits_data):
    return digits_data[2][:16]


# ------------------------------------------------------------------------- spec kinds
def test_spec_kinds(user, hf_dir, tmp_path):
    assert spec_kind(str(user["torchscript"])) == "torchscript"
    assert spec_kind(str(user["onnx"])) == "onnx"
    assert spec_kind(str(user["factory"])) == "factory"
    assert spec_kind("mypkg.models:make") == "factory"
    assert spec_kind(str(hf_dir)) == "huggingface"
    assert spec_kind("http://127.0.0.1:8080") == "url"
    assert spec_kind("no-such-model") is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="without model.json or config.json"):
        spec_kind(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"usermodels.py:make"):
        spec_kind(str(user["factory"]).rsplit(":", 1)[0])
    with pytest.raises(CheckpointError, match="TorchScript file"):
        open_model("no-such-model")


# ----------------------------------------------------------------------- TorchScript
def test_torchscript_same_logits_and_classes_found(user, digits_mlp, x8):
    clf = load_torchscript(user["torchscript"], SHAPE)
    assert isinstance(clf, Classifier) and clf.num_classes == 10  # by one forward pass
    with torch.no_grad():
        assert torch.allclose(clf(x8), digits_mlp(x8), atol=1e-6)
    # white-box: PGD runs on it and stays in the eps-ball
    res = create("pgd", eps=0.1, steps=5)(WhiteBox(clf), x8, digits_mlp(x8).argmax(1))
    assert float((res.x_adv - x8).abs().max()) <= 0.1 + 1e-6 and res.succeeded.any()


def test_torchscript_needs_input_shape_and_checks_it(user):
    with pytest.raises(ConfigError, match="--input-shape"):
        load_torchscript(user["torchscript"])
    with pytest.raises(ConfigError, match="fails on an input of shape"):
        load_torchscript(user["torchscript"], ModelOptions(input_shape=(3, 8, 8)))
    with pytest.raises(ConfigError, match="--num-classes 7, but"):
        load_torchscript(user["torchscript"], ModelOptions(input_shape=(1, 8, 8), num_classes=7))


def test_pickles_are_refused_with_the_way_out(user, tmp_path, digits_mlp):
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"weight": [1.0]}))
    full = tmp_path / "full.pt"
    torch.save(digits_mlp.net, full)
    for f in (user["pickle"], legacy, full):
        with pytest.raises(InputError) as e:
            load_torchscript(f, SHAPE)
        msg = str(e.value)
        assert "does not unpickle" in msg and "torch.jit.script" in msg and ":make" in msg


# ------------------------------------------------------------------------------ ONNX
def test_onnx_scores_match_and_white_box_is_refused(user, digits_mlp, x8):
    box = load_onnx(user["onnx"])
    assert isinstance(box, ScoreBox) and box.access == Access.SCORES
    assert torch.allclose(box.scores(x8), digits_mlp(x8).softmax(1), atol=1e-5)
    with pytest.raises(AccessError) as e:
        require_access(box, Access.GRADIENTS, what="attack 'pgd'", spec=str(user["onnx"]))
    assert "scores and labels only" in str(e.value) and "square" in str(e.value)
    with pytest.raises(AccessError):
        create("pgd", eps=0.1)(box, x8, digits_mlp(x8).argmax(1))
    labels = load_onnx(user["onnx"], outputs="labels")
    assert torch.equal(labels.labels(x8), digits_mlp(x8).argmax(1))


def test_onnx_mean_std_normalise_before_the_graph(user, digits_mlp, x8):
    box = load_onnx(user["onnx"], ModelOptions(mean=(0.25,), std=(0.5,)))
    assert torch.allclose(box.scores(x8), digits_mlp((x8 - 0.25) / 0.5).softmax(1), atol=1e-5)
    with pytest.raises(ConfigError, match="3 values but the model's input_shape"):
        load_onnx(user["onnx"], ModelOptions(mean=(0.1, 0.2, 0.3)))


# --------------------------------------------------------------------------- factory
def test_factory_from_file_and_module(user, digits_mlp, x8, monkeypatch):
    clf = load_factory(user["factory"], SHAPE)
    assert isinstance(clf, Classifier)
    with torch.no_grad():
        assert torch.allclose(clf(x8), digits_mlp(x8), atol=1e-6)
    monkeypatch.chdir(user["torchscript"].parent)  # a module of the working directory
    same = load_factory("usermodels:make", SHAPE)
    with torch.no_grad():
        assert torch.allclose(same(x8), clf(x8))
    # a factory returning a Classifier keeps its metadata; options may not contradict it
    named = load_factory("usermodels:make_classifier")
    assert named.class_names[3] == "digit 3"
    with pytest.raises(ConfigError, match="already carries input_shape"):
        load_factory("usermodels:make_classifier", ModelOptions(input_shape=(1, 4, 16)))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("usermodels:broken", "raised RuntimeError: no weights here"),
        ("usermodels:NOT_CALLABLE", "not a function to call"),
        ("usermodels:missing", "has no attribute 'missing'"),
        ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
        ("nowhere/file.py:make", "does not exist"),
        ("1bad module:make", "neither a module name"),
        ("usermodels:", "not a factory spec"),
    ],
)
def test_bad_factories(user, monkeypatch, spec, match):
    monkeypatch.chdir(user["torchscript"].parent)
    with pytest.raises(ConfigError, match=match):
        load_factory(spec, SHAPE)


def test_mean_std_of_the_wrong_length_is_a_clear_error():
    with pytest.raises(InputError, match="mean has 2 values but input_shape"):
        Classifier(nn.Flatten(), input_shape=(3, 4, 4), num_classes=2, mean=[0.5, 0.5])
    with pytest.raises(InputError, match="std must be positive"):
        Classifier(nn.Flatten(), input_shape=(1, 4, 4), num_classes=2, std=[0.0])
    with pytest.raises(ConfigError, match="--std has 2 values but --input-shape 3,8,8"):
        ModelOptions(input_shape=(3, 8, 8), std=(0.2, 0.2))
    # one value means every channel; three means one per channel
    one = Classifier(nn.Flatten(), input_shape=(3, 2, 2), num_classes=2, mean=[0.5], std=[0.5])
    three = Classifier(nn.Flatten(), input_shape=(3, 2, 2), num_classes=2,
                       mean=[0.5] * 3, std=[0.5] * 3)  # fmt: skip
    x = torch.rand(2, 3, 2, 2)
    assert torch.equal(one(x), three(x)) and torch.allclose(one(x), (x.flatten(1) - 0.5) / 0.5)


# ---------------------------------------------------------------------------- import
def test_import_round_trips_logits(user, tmp_path, x8, digits_mlp):
    meta = {"dataset": "digits"}
    ts = import_model(str(user["torchscript"]), tmp_path / "ts", SHAPE, meta=meta)
    fac = import_model(user["factory"], tmp_path / "fac", ModelOptions(
        input_shape=(1, 8, 8), mean=(0.1,), std=(0.9,)), meta=meta)  # fmt: skip
    onnx = import_model(str(user["onnx"]), tmp_path / "onnx", meta=meta)
    info = {p.name: models.read_info(p) for p in (ts, fac, onnx)}
    assert info["ts"]["kind"] == "torchscript" and info["onnx"]["kind"] == "onnx"
    assert info["fac"]["source"]["export"] in ("scripted", "traced")
    assert info["ts"]["source"]["sha256"] and info["ts"]["dataset"] == "digits"
    with torch.no_grad():
        assert torch.allclose(models.load(ts)(x8), digits_mlp(x8), atol=1e-6)
        assert torch.allclose(models.load(fac)(x8), digits_mlp((x8 - 0.1) / 0.9), atol=1e-5)
    box = models.load(onnx)
    assert torch.allclose(box.scores(x8), digits_mlp(x8).softmax(1), atol=1e-5)


def test_import_zoo_classifier_is_plain_safetensors(user, tmp_path, monkeypatch, x8):
    monkeypatch.chdir(user["torchscript"].parent)
    made = load_factory("usermodels:make_zoo")
    out = import_model("usermodels:make_zoo", tmp_path / "zoo")
    info = models.read_info(out)
    assert info["kind"] == "torch" and info["arch"] == "linear"
    assert "model.safetensors" in info["files"] and "model.ts" not in info["files"]
    with torch.no_grad():
        assert torch.equal(models.load(out)(x8), made(x8))


def test_imported_files_are_hash_checked(user, tmp_path):
    out = import_model(str(user["torchscript"]), tmp_path / "ts", SHAPE)
    data = bytearray((out / "model.ts").read_bytes())
    data[-40] ^= 0xFF
    (out / "model.ts").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        models.load(out)


def test_imported_checkpoints_follow_the_umask_and_replace_whole(user, tmp_path):
    """The staging directory was a bare mkdtemp (0700), so an imported checkpoint was
    private whatever the umask; it now gets the mode mkdir would give it."""
    old = os.umask(0o027)
    try:
        out = import_model(str(user["torchscript"]), tmp_path / "ts", SHAPE)
        assert stat.S_IMODE(out.stat().st_mode) == 0o750
        assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o640}
        again = import_model(str(user["onnx"]), tmp_path / "ts")  # replaces, as a whole
    finally:
        os.umask(old)
    assert sorted(p.name for p in again.iterdir()) == ["model.json", "model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["ts"]  # nothing left beside it
    json.loads((again / "model.json").read_text())  # strict JSON


def test_unregistered_architecture_says_how_to_fix(tmp_path):
    torch.manual_seed(0)
    path = models.save(
        models.build("linear", input_shape=(1, 8, 8), num_classes=10), tmp_path / "m"
    )
    info = json.loads((path / "model.json").read_text())
    info["arch"] = "my-resnet"
    info[ckpt.INFO_HASH_KEY] = ckpt.info_digest(info)  # a consistent file, only unknown
    (path / "model.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError) as e:
        models.load(path)
    msg = str(e.value)
    assert (
        "unknown architecture 'my-resnet': not registered" in msg and "advx.models.register" in msg
    )
    assert "module:factory" in msg and "newer or extended" not in msg


# ------------------------------------------------------------------------ Hugging Face
def test_hf_directory_as_text_model(hf_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from advx.text.huggingface import HFTextClassifier

    clf = HFTextClassifier.from_directory(hf_dir)
    assert clf.class_names == ("negative", "positive") and clf.num_classes == 2
    texts = ["I love this, what a wonderful day", "this is awful, I hate it", "ok"]
    ref = AutoModelForSequenceClassification.from_pretrained(str(hf_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    with torch.no_grad():
        want = ref(**tok(texts, padding=True, return_tensors="pt")).logits.softmax(1)
    p = clf.predict_proba(texts)
    assert torch.allclose(p, want, atol=1e-5)
    # the fitted head reads sentiment: positive texts score higher than negative ones
    pos = clf.predict_proba(["I love it, great day", "so happy and excited", "best show ever"])
    neg = clf.predict_proba(["I hate this, awful day", "so sad and angry", "worst show ever"])
    assert float(pos[:, 1].mean()) > float(neg[:, 1].mean()) + 0.1


def test_hf_word_gradients_are_the_loss_gradient(hf_dir):
    """A step along a word's embedding gradient raises the loss by about step * |g|^2."""
    from advx.text.huggingface import HFTextClassifier

    clf = HFTextClassifier.from_directory(hf_dir)
    text, words = "what a great movie", ["what", "a", "great", "movie"]
    ids, grads = clf.word_gradients(text, words, label=1)
    assert (ids >= 0).all()  # every word is one WordPiece
    table, vocab, valid = clf.embedding_table()
    assert [vocab[i] for i in ids.tolist()] == words and valid[ids].all()
    batch = clf.tokenizer([text], return_tensors="pt")
    pos = [batch["input_ids"][0].tolist().index(i) for i in ids.tolist()]
    emb = clf.model.get_input_embeddings()(batch["input_ids"]).detach()

    def loss(e: torch.Tensor) -> float:
        with torch.no_grad():
            logits = clf.model(inputs_embeds=e, attention_mask=batch["attention_mask"]).logits
        return float(nn.functional.cross_entropy(logits, torch.tensor([1])))

    g = torch.zeros_like(emb)
    for j, p in enumerate(pos):
        g[0, p] = grads[j]
    h = 1e-2 / float(g.norm())
    rise = (loss(emb + h * g) - loss(emb - h * g)) / (2 * h)
    assert rise == pytest.approx(float(g.pow(2).sum()), rel=0.05)


def test_hf_import_round_trip_and_refusals(hf_dir, tmp_path):
    from advx.text.huggingface import HFTextClassifier

    out = import_model(str(hf_dir), tmp_path / "hf-ckpt", meta={"dataset": "tweets-binary"})
    info = models.read_info(out)
    assert info["kind"] == "huggingface" and info["modality"] == "text"
    loaded = models.load(out)
    assert isinstance(loaded, HFTextClassifier)
    texts = ["so happy today", "worst service ever"]
    assert torch.equal(
        loaded.predict_proba(texts), HFTextClassifier.from_directory(hf_dir).predict_proba(texts)
    )
    # pickled weights only: refused, with the conversion
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((hf_dir / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ConfigError, match="safe_serialization=True"):
        HFTextClassifier.from_directory(pickled)
    with pytest.raises(ConfigError, match="no Hugging Face model directory"):
        HFTextClassifier.from_directory(tmp_path / "missing")


# --------------------------------------------------------------------------- devices
def test_resolve_device_on_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device(None)
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == auto
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu-please")
    with pytest.raises(ConfigError, match="unsupported device type"):
        resolve_device("meta")
    with autocast(torch.device("cpu"), enabled=True) as dtype:
        assert dtype is None  # mixed precision is a CUDA feature here


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="CUDA is not available here.*--device cpu"):
        resolve_device("cuda")


@pytest.mark.cuda
def test_cuda_models_answer_cpu_inputs_and_match_cpu(user, digits_mlp, x8):
    dev = resolve_device("cuda")
    with pytest.raises(ConfigError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    cpu = load_torchscript(user["torchscript"], SHAPE)
    gpu = open_model(str(user["torchscript"]), SHAPE, device=dev)
    white = WhiteBox(gpu)
    assert white.device is not None and white.device.type == "cuda"
    with torch.no_grad():
        assert torch.allclose(white.logits(x8).cpu(), cpu(x8), atol=1e-4)  # CPU in, CPU out
    y = cpu(x8).argmax(1)
    a = create("pgd", eps=0.1, steps=5, rel_step_size=0.25)(WhiteBox(cpu), x8, y)
    b = create("pgd", eps=0.1, steps=5, rel_step_size=0.25)(white, x8.to(dev), y.to(dev))
    assert b.x_adv.device.type == "cuda"
    assert torch.equal(a.succeeded, b.succeeded.cpu())
    with autocast(dev, enabled=True) as dtype:
        assert dtype in (torch.bfloat16, torch.float16)
        c = create("pgd", eps=0.1, steps=5)(white, x8.to(dev), y.to(dev))
    assert c.x_adv.dtype == torch.float32 and float((c.x_adv.cpu() - x8).abs().max()) <= 0.1 + 1e-6


def test_torch_jit_warnings_stay_quiet(user):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        load_torchscript(user["torchscript"], SHAPE)
