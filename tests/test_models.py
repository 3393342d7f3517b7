"""The model zoo: registry, architectures, the scikit-learn wrapper, and checkpoints
(round trips are bitwise; anything truncated, tampered or inconsistent is refused)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from advx.errors import CheckpointError, ConfigError, InputError, ModelModeError
from advx.models import (
    ARCHS,
    ArchSpec,
    Classifier,
    SklearnClassifier,
    build,
    load,
    read_info,
    register,
    save,
)
from advx.models import checkpoint as ckpt
from advx.targets import Access

TORCH_IMAGE = ("linear", "mlp", "cnn", "rnn")
SKLEARN = ("logreg", "svm", "tree", "forest", "knn")
SHAPE = (1, 8, 8)


def _settle(model: Classifier, seed: int = 0) -> Classifier:
    """Give a fresh model non-default batch-norm statistics (a few train-mode forwards),
    so a round trip must carry buffers too, then put it in eval mode."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, *model.input_shape, generator=g))
    return model.eval()


def _digits_small(n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    from advx.data import load as load_data

    ds = load_data("digits", "train", limit=n)
    return ds.x, ds.y


# ------------------------------------------------------------------------- registry
def test_registry_lists_every_image_arch_with_a_description() -> None:
    for name in TORCH_IMAGE + SKLEARN:
        spec = ARCHS[name]
        assert spec.description and spec.modality == "image"
        assert spec.kind == ("torch" if name in TORCH_IMAGE else "sklearn")
    assert ARCHS["cnn"].defaults_for("digits")["epochs"] != ARCHS["cnn"].defaults_for()["epochs"]


def test_registry_rejects_duplicates_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register(ArchSpec("cnn", "dup", "torch", "image", lambda s, k: nn.Linear(1, 1)))
    with pytest.raises(ConfigError, match="unknown architecture 'resnet9000'"):
        build("resnet9000", input_shape=SHAPE, num_classes=10)
    with pytest.raises(ConfigError, match="no option"):
        build("mlp", input_shape=SHAPE, num_classes=10, widht=3)
    with pytest.raises(ConfigError, match="pooling blocks"):
        build("cnn", input_shape=SHAPE, num_classes=10, channels=[8, 8, 8, 8])
    with pytest.raises(ConfigError, match="image inputs"):
        build("rnn", input_shape=(64,), num_classes=10)
    with pytest.raises(ConfigError, match="class names"):
        build("linear", input_shape=SHAPE, num_classes=3, class_names=["a", "b"])


def test_registry_stores_json_options_for_rebuilding() -> None:
    clf = build("mlp", input_shape=SHAPE, num_classes=10, hidden=(32, 16))
    assert clf.arch == "mlp" and clf.arch_kwargs == {"hidden": [32, 16]}
    sizes = [m.out_features for m in clf.net if isinstance(m, nn.Linear)]
    assert sizes == [32, 16, 10]


@pytest.mark.parametrize("arch", TORCH_IMAGE)
def test_torch_archs_map_bounded_images_to_logits(arch: str) -> None:
    clf = build(arch, input_shape=SHAPE, num_classes=7, mean=[0.3], std=[0.4])
    assert isinstance(clf, Classifier)
    x = torch.rand(5, *SHAPE)
    out = clf.eval()(x)
    assert out.shape == (5, 7) and out.dtype == torch.float32
    # normalisation happens inside the adapter: the net sees (x - mean) / std
    assert torch.allclose(out, clf.net((x - 0.3) / 0.4), atol=1e-6)


def test_linear_is_one_affine_map() -> None:
    clf = build("linear", input_shape=SHAPE, num_classes=10)
    x1, x2 = torch.rand(1, *SHAPE), torch.rand(1, *SHAPE)
    f = clf.eval()
    # affine: f(a x1 + (1 - a) x2) = a f(x1) + (1 - a) f(x2)
    a = 0.3
    lhs = f(a * x1 + (1 - a) * x2)
    rhs = a * f(x1) + (1 - a) * f(x2)
    assert torch.allclose(lhs, rhs, atol=1e-5)


def test_rnn_reads_rows_as_time_steps() -> None:
    clf = build("rnn", input_shape=(1, 6, 5), num_classes=3, hidden=8).eval()
    net = clf.net
    x = torch.rand(4, 1, 6, 5)
    _, (h, _) = net.lstm(x[:, 0])  # (N, H rows, W features) read in order
    assert torch.allclose(clf(x), net.out(h[-1]), atol=1e-6)
    # the row order matters (a recurrent model, not a bag of rows)
    assert not torch.allclose(clf(x), clf(x.flip(2)), atol=1e-4)


# ------------------------------------------------------------------ sklearn wrapper
def test_sklearn_wrapper_flattens_and_pads_missing_classes() -> None:
    x, y = _digits_small(200)
    keep = y != 3  # class 3 never seen in training
    clf = build("logreg", input_shape=SHAPE, num_classes=10)
    assert isinstance(clf, SklearnClassifier) and clf.access == Access.SCORES
    with pytest.raises(ModelModeError, match="not fitted"):
        clf.predict_proba(x[:2])
    clf.fit(x[keep], y[keep])
    p = clf.predict_proba(x[:20])
    assert p.shape == (20, 10) and p.dtype == torch.float32
    assert torch.all(p[:, 3] == 0)
    assert torch.allclose(p.sum(1), torch.ones(20), atol=1e-5)
    assert torch.equal(clf.predict(x[:20]), p.argmax(1))
    # flattened input is accepted too; a wrong shape is an InputError
    assert torch.equal(clf.predict_proba(x[:20].flatten(1)), p)
    with pytest.raises(InputError, match="expected inputs of shape"):
        clf.predict_proba(torch.rand(2, 1, 7, 7))
    # as a Target it counts queries
    assert clf.scores(x[:4]).shape == (4, 10) and clf.queries == 4


# -------------------------------------------------------------------- round trips
@pytest.mark.parametrize("arch", TORCH_IMAGE)
def test_torch_checkpoint_round_trip_is_bitwise(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    clf = _settle(build(arch, input_shape=SHAPE, num_classes=10, mean=[0.25], std=[0.5]))
    path = save(clf, tmp_path / arch, meta={"dataset": "digits", "test_accuracy": 0.5})
    back = load(path)
    assert isinstance(back, Classifier) and not back.training
    x = torch.rand(32, *SHAPE)
    assert torch.equal(clf(x), back(x))
    assert back.input_shape == SHAPE and back.arch == arch
    info = read_info(path)
    assert info["dataset"] == "digits" and info["test_accuracy"] == 0.5
    assert info["normalisation"] == {"mean": [0.25], "std": [0.5]}


@pytest.mark.parametrize("arch", SKLEARN)
def test_sklearn_checkpoint_round_trip_is_exact(arch: str, tmp_path: Path) -> None:
    x, y = _digits_small(300)
    kwargs: dict[str, Any] = {"n_estimators": 5} if arch == "forest" else {}
    clf = build(arch, input_shape=SHAPE, num_classes=10, seed=3, **kwargs).fit(x, y)
    path = save(clf, tmp_path / arch, meta={"dataset": "digits"})
    assert (path / "model.skops").is_file() and not (path / "model.safetensors").exists()
    back = load(path)
    assert isinstance(back, SklearnClassifier) and back.arch == arch
    xt = torch.rand(40, *SHAPE)
    assert torch.equal(clf.predict_proba(xt), back.predict_proba(xt))
    assert back.class_names == clf.class_names and back.name == arch


# ------------------------------------------------------------------- tampering
@pytest.fixture
def saved_cnn(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    clf = _settle(build("cnn", input_shape=SHAPE, num_classes=10, channels=[4, 8], hidden=16))
    return save(clf, tmp_path / "cnn", meta={"dataset": "digits"})


def _edit_json(path: Path, **changes: object) -> None:
    """Edit model.json and re-sign it (its info_sha256), as a careful forger would: the
    deeper checks must catch what the hash of model.json cannot."""
    f = path / "model.json"
    info = json.loads(f.read_text())
    info.update(changes)
    info[ckpt.INFO_HASH_KEY] = ckpt.info_digest(info)
    f.write_text(json.dumps(info))


def test_flipped_byte_is_rejected(saved_cnn: Path) -> None:
    f = saved_cnn / "model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        load(saved_cnn)


def test_truncated_weights_are_rejected(saved_cnn: Path) -> None:
    f = saved_cnn / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        load(saved_cnn)


def test_edited_shapes_are_rejected(saved_cnn: Path) -> None:
    _edit_json(saved_cnn, input_shape=[1, 16, 16])
    # refused before anything is allocated: the weights file is too small for that shape
    with pytest.raises(CheckpointError, match="shapes do not match|needs .* bytes of weights"):
        load(saved_cnn)


def test_edited_class_count_is_rejected(saved_cnn: Path) -> None:
    _edit_json(saved_cnn, num_classes=3, class_names=["a", "b", "c"])
    with pytest.raises(CheckpointError, match="shapes do not match"):
        load(saved_cnn)


def test_edited_options_are_rejected(saved_cnn: Path) -> None:
    _edit_json(saved_cnn, arch_kwargs={"channels": [4, 8], "hidden": 16, "batchnorm": False})
    with pytest.raises(CheckpointError, match="missing|unexpected"):
        load(saved_cnn)


def test_unknown_arch_is_rejected(saved_cnn: Path) -> None:
    _edit_json(saved_cnn, arch="transformer-xxl")
    with pytest.raises(CheckpointError, match="unknown architecture 'transformer-xxl'"):
        load(saved_cnn)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "something-else"}, "not an advx checkpoint"),
        ({"format_version": 99}, "newer than this advx"),
        ({"input_shape": [1, -8, 8]}, "positive integers"),
        ({"class_names": ["x"]}, "1 names for 10 classes"),
        ({"bounds": [1, 0]}, "lo < hi"),
        ({"files": {"../model.safetensors": {"sha256": "0" * 64, "bytes": 1}}}, "invalid file"),
        ({"files": {}}, "sha256"),
    ],
)
def test_malformed_fields_are_rejected(
    saved_cnn: Path, changes: dict[str, Any], message: str
) -> None:
    _edit_json(saved_cnn, **changes)
    with pytest.raises(CheckpointError, match=message):
        read_info(saved_cnn)


def test_missing_files_and_malformed_json_are_rejected(saved_cnn: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nothing-here")
    (saved_cnn / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load(saved_cnn)
    (saved_cnn / "model.json").write_text('{"format": "advx-checkpoint", ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_info(saved_cnn)
    (saved_cnn / "model.json").unlink()
    with pytest.raises(CheckpointError, match="no model.json"):
        load(saved_cnn)


def _relabel(x: np.ndarray) -> np.ndarray:
    """A function of this test module: skops must refuse to import it on load."""
    return x


def _swap_skops(path: Path, obj: object) -> None:
    """Replace the estimator with ``obj`` and re-sign model.json: a well-formed
    checkpoint with the right hashes whose content is not what the arch saves."""
    import skops.io

    f = path / "model.skops"
    skops.io.dump(obj, f)
    info = json.loads((path / "model.json").read_text())
    info["files"]["model.skops"] = {"sha256": ckpt._sha256(f), "bytes": f.stat().st_size}
    info[ckpt.INFO_HASH_KEY] = ckpt.info_digest(info)
    (path / "model.json").write_text(json.dumps(info))


def test_skops_file_with_untrusted_types_is_refused(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    x, y = _digits_small(100)
    path = save(build("logreg", input_shape=SHAPE, num_classes=10).fit(x, y), tmp_path / "lr")
    _swap_skops(path, FunctionTransformer(_relabel))
    with pytest.raises(CheckpointError, match="not trusted.*_relabel"):
        load(path)


def test_skops_file_with_another_estimator_is_refused(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _digits_small(100)
    path = save(build("logreg", input_shape=SHAPE, num_classes=10).fit(x, y), tmp_path / "lr")
    _swap_skops(path, KNeighborsClassifier().fit(x.flatten(1).numpy(), y.numpy()))
    with pytest.raises(CheckpointError, match="KNeighborsClassifier"):
        load(path)


# ------------------------------------------------------------------ atomic writes
def test_failed_save_leaves_previous_checkpoint_intact(
    saved_cnn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = load(saved_cnn)
    x = torch.rand(8, *SHAPE)
    expected = before(x)

    def half_write(model: Classifier, file: Path) -> None:
        file.write_bytes(b"\x00" * 100)  # a partial file, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "_write_torch", half_write)
    other = build("cnn", input_shape=SHAPE, num_classes=10, channels=[4, 8], hidden=16)
    with pytest.raises(KeyboardInterrupt):
        save(other, saved_cnn)
    assert torch.equal(load(saved_cnn)(x), expected)
    assert sorted(p.name for p in saved_cnn.parent.iterdir()) == ["cnn"]  # no temp dirs


def test_save_replaces_a_checkpoint_but_never_other_directories(
    saved_cnn: Path, tmp_path: Path
) -> None:
    new = _settle(build("linear", input_shape=SHAPE, num_classes=10), seed=5)
    save(new, saved_cnn)
    assert read_info(saved_cnn)["arch"] == "linear"
    assert sorted(p.name for p in saved_cnn.iterdir()) == ["model.json", "model.safetensors"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(CheckpointError, match="refusing to replace"):
        save(new, precious)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_save_validates_model_and_meta(tmp_path: Path) -> None:
    clf = build("linear", input_shape=SHAPE, num_classes=10)
    with pytest.raises(InputError, match="derives them"):
        save(clf, tmp_path / "a", meta={"arch": "mlp"})
    with pytest.raises(InputError, match="registered architecture"):
        save(Classifier(nn.Flatten(), input_shape=SHAPE, num_classes=64), tmp_path / "b")
    with pytest.raises(InputError, match="not fitted"):
        save(build("knn", input_shape=SHAPE, num_classes=10), tmp_path / "c")
    with pytest.raises(ConfigError, match="JSON"):
        save(clf, tmp_path / "d", meta={"when": object()})
