"""The bundled ``photos`` dataset, your own image files (``load_images``), and the
``triptych_with_top5`` figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advx.data import DATASETS, load
from advx.data.imagenet import imagenet_class_names
from advx.data.photos import (
    PHOTOS,
    UNLABELLED,
    image_files,
    label_with,
    load_images,
    load_photos,
    photo_array,
    read_images,
)
from advx.errors import DataError, DataNotFoundError, InputError
from advx.models import Classifier


@pytest.fixture(scope="module")
def photos():
    return load_photos()


# ----------------------------------------------------------------------- photos
def test_photos_are_224_rgb_with_human_imagenet_labels(photos) -> None:
    assert photos.x.shape == (7, 3, 224, 224) and photos.x.dtype == torch.float32
    assert 0.0 <= float(photos.x.min()) and float(photos.x.max()) <= 1.0
    assert photos.class_names == imagenet_class_names()
    labels = [photos.class_names[int(c)] for c in photos.y]
    assert labels == [p.label for p in PHOTOS.values()]
    assert labels[:2] == ["tiger cat", "espresso"]
    # the grayscale camera photo became RGB with three equal channels
    cam = photos.x[list(PHOTOS).index("camera")]
    assert torch.equal(cam[0], cam[1]) and torch.equal(cam[1], cam[2])
    # a real photo, not a flat image: plenty of distinct values per channel
    assert all(len(torch.unique(photos.x[i, 0])) > 100 for i in range(len(photos)))


def test_registry_knows_photos() -> None:
    info = DATASETS["photos"]
    assert info.kind == "image" and info.input_shape == (3, 224, 224)
    assert info.sizes == {"train": 7, "test": 7} and info.num_classes == 1000
    ds = load("photos", "test", limit=2)
    assert len(ds) == 2 and ds.name == "photos"
    with pytest.raises(InputError, match="seed"):
        load("photos", seed=1)


def test_size_and_crop(photos) -> None:
    big = load_photos(size=240, names=["coffee"])
    assert big.x.shape == (1, 3, 240, 240)
    whole = load_photos(crop=1.0, names=["chelsea"])
    assert not torch.equal(whole.x[0], photos.x[0])  # a wider view of the same photo
    for bad in ({"size": 0}, {"size": 2.5}, {"crop": 0.0}, {"crop": 1.5}):
        with pytest.raises(InputError):
            load_photos(**bad)


def test_the_astronaut_has_no_imagenet_class() -> None:
    assert UNLABELLED == ("astronaut",) and photo_array("astronaut").shape == (512, 512, 3)
    with pytest.raises(InputError, match="has no ImageNet label"):
        load_photos(names=["astronaut"])
    with pytest.raises(InputError, match="no bundled photo 'panda'"):
        photo_array("panda")


# ----------------------------------------------------------------------- your files
@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JPEG (RGB), PNG (RGBA), grayscale JPEG and palette PNG, plus a text file."""
    from PIL import Image

    d = tmp_path_factory.mktemp("shots")
    Image.fromarray(photo_array("chelsea")).save(d / "b_cat.jpg", quality=95)
    Image.fromarray(photo_array("coffee")).convert("RGBA").save(d / "a_coffee.png")
    Image.fromarray(photo_array("camera")).save(d / "c_camera.jpg")
    Image.fromarray(photo_array("china")).convert("P").save(d / "d_china.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_read_images_converts_every_mode_to_rgb(folder: Path) -> None:
    x, files = read_images(folder, size=64)
    assert [f.name for f in files] == ["a_coffee.png", "b_cat.jpg", "c_camera.jpg", "d_china.png"]
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(x[2, 0], x[2, 1])  # grayscale -> three equal channels
    # same pixels whether read from a file or from the package (the PNG is lossless)
    ref = load_photos(size=64, names=["coffee"]).x[0]
    assert torch.allclose(x[0], ref, atol=1 / 255 + 1e-6)


def test_files_globs_and_single_files(folder: Path) -> None:
    assert [f.name for f in image_files(str(folder / "*.jpg"))] == ["b_cat.jpg", "c_camera.jpg"]
    assert [f.name for f in image_files(folder / "b_cat.jpg")] == ["b_cat.jpg"]
    with pytest.raises(DataNotFoundError, match="no image files match"):
        image_files(str(folder / "*.webp"))
    with pytest.raises(DataNotFoundError, match="no such file or folder"):
        image_files(folder / "missing")
    with pytest.raises(DataError, match="not an image file type"):
        image_files(folder / "notes.txt")


def test_unreadable_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="no image files in this folder"):
        read_images(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    with pytest.raises(DataError, match=r"broken\.jpg: cannot read image"):
        read_images(tmp_path)


def test_labels_one_for_all_per_file_or_by_name(folder: Path) -> None:
    ds = load_images(folder, size=32, labels="Struthio camelus")  # any WordNet synonym
    assert ds.y.tolist() == [9] * 4 and len(ds.class_names) == 1000
    ds = load_images(folder, size=32, labels=["espresso", "tiger cat", 872, "palace"])
    assert ds.y.tolist() == [967, 282, 872, 698]
    by_name = {"a_coffee": "espresso", "b_cat.jpg": "tiger cat", "c_camera": "tripod",
               "d_china": "palace"}  # fmt: skip
    assert load_images(folder, size=32, labels=by_name).y.tolist() == [967, 282, 872, 698]
    with pytest.raises(InputError, match="3 labels for 4 images"):
        load_images(folder, size=32, labels=[1, 2, 3])
    with pytest.raises(InputError, match="no entry for d_china.png"):
        load_images(folder, size=32, labels={"a_coffee": 1, "b_cat": 1, "c_camera": 1})
    with pytest.raises(InputError, match="did you mean 'espresso'"):
        load_images(folder, size=32, labels="expresso")
    with pytest.raises(InputError, match="labels= .* or model="):
        load_images(folder, size=32)
    own = load_images(folder, size=32, labels="dog", class_names=("cat", "dog"))
    assert own.y.tolist() == [1] * 4 and own.class_names == ("cat", "dog")
    with pytest.raises(InputError, match="did you mean 'dog'"):
        load_images(folder, size=32, labels="dgo", class_names=("cat", "dog"))


def test_labels_from_a_models_predictions(folder: Path) -> None:
    class Brightness(nn.Module):  # class 1 when the image is bright on average
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([0.45 - m, m - 0.45], dim=1)

    clf = Classifier(Brightness(), input_shape=(3, 32, 32), num_classes=2,
                     class_names=("dark", "bright"))  # fmt: skip
    ds = load_images(folder, size=32, model=clf)
    x, _ = read_images(folder, size=32)
    expected = (x.mean(dim=(1, 2, 3)) > 0.45).long()
    assert ds.y.tolist() == expected.tolist() and ds.class_names == ("dark", "bright")
    assert 0 < int(expected.sum()) < 4  # the check separates the photos
    assert label_with(clf, ds).y.tolist() == expected.tolist()


# ----------------------------------------------------------------------- figure
def test_triptych_with_top5_draws_images_bars_and_the_factor(photos) -> None:
    from matplotlib.figure import Figure

    from advx.report.figures import triptych_with_top5

    x = photos.x[0]
    x_adv = (x + 2 / 255 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    before = torch.softmax(torch.randn(1000), 0)
    after = torch.zeros(1000)
    after[9], after[282] = 0.7, 0.3
    fig = triptych_with_top5(x, x_adv, before, after, photos.class_names, target=9, k=5)
    assert isinstance(fig, Figure)
    texts = [ax.get_title() for ax in fig.axes]
    assert "perturbation ×50" in texts[1] and "2/255" in texts[1]  # 2/255 * 50 < 0.5
    assert texts[2].startswith("adversarial: ostrich (70%)")
    bars = [ax for ax in fig.axes if ax.patches]
    assert len(bars) == 2 and all(len(ax.patches) == 5 for ax in bars)
    after_labels = [t.get_text() for t in bars[1].get_yticklabels()]
    assert after_labels[-1] == "ostrich"  # largest bar on top
    fig2 = triptych_with_top5(x[None], x_adv[None], before, after, None, amplify=10)
    assert "perturbation ×10" in fig2.axes[1].get_title()
    with pytest.raises(InputError, match="differ in shape"):
        triptych_with_top5(x, x_adv[:, :10], before, after)
    with pytest.raises(InputError, match="class names"):
        triptych_with_top5(x, x_adv, before, after, ["a", "b"])
    with pytest.raises(InputError, match="amplify"):
        triptych_with_top5(x, x_adv, before, after, amplify=0)
    assert np.isfinite(np.asarray(fig.get_size_inches())).all()
