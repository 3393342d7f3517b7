"""Figures: which examples are shown, how the perturbation is scaled, files written."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

from advx.attacks import AttackResult, Status, create
from advx.errors import InputError
from advx.models.adapter import Classifier
from advx.report.figures import adversarial_figure, amplification, image_grid, select_examples
from advx.targets import WhiteBox
from advx.threat import ThreatModel


def _result(status, distance, conf, n_shape=(1, 4, 4)) -> tuple[torch.Tensor, AttackResult]:
    n = len(status)
    x = torch.full((n, *n_shape), 0.5)
    delta = torch.zeros_like(x)
    delta[:, 0, 0, 0] = torch.tensor(distance)
    y = torch.zeros(n, dtype=torch.long)
    return x, AttackResult(
        x_adv=x + delta,
        y=y,
        status=torch.tensor(status, dtype=torch.int8),
        pred_clean=y,
        conf_clean=torch.full((n,), 0.9),
        pred_adv=torch.ones(n, dtype=torch.long),
        conf_adv=torch.tensor(conf),
        distance=torch.tensor(distance),
        queries=torch.ones(n, dtype=torch.long),
        threat=ThreatModel("linf", 0.3),
        attack="test",
    )


S, F, K = int(Status.SUCCEEDED), int(Status.FAILED), int(Status.SKIPPED)


def test_select_examples_prefers_small_then_confident_successes():
    _, r = _result(
        status=[F, S, S, K, S, S],
        distance=[0.01, 0.2, 0.1, 0.0, 0.1, 0.05],
        conf=[0.9, 0.99, 0.6, 0.9, 0.8, 0.7],
    )
    # successes by distance (ties by higher confidence), then failures; skipped never
    assert select_examples(r, 10).tolist() == [5, 4, 2, 1, 0]
    assert select_examples(r, 2).tolist() == [5, 4]
    with pytest.raises(InputError):
        select_examples(r, 0)


@pytest.mark.parametrize(
    ("peak", "factor"), [(0.1, 5.0), (0.03, 10.0), (0.004, 100.0), (0.5, 1.0), (0.0, 1.0)]
)
def test_amplification_is_the_largest_nice_factor_that_does_not_clip(peak, factor):
    delta = torch.tensor([peak, -peak / 2])
    assert amplification(delta, (0.0, 1.0)) == factor
    # the same relative perturbation on a [0, 255] scale gets the same factor
    assert amplification(delta * 255, (0.0, 255.0)) == factor


def test_figure_rows_follow_k_and_files_are_pngs(tmp_path):
    torch.manual_seed(0)
    clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), input_shape=(1, 8, 8),
                     num_classes=3, class_names=("cat", "dog", "ostrich"))  # fmt: skip
    x = torch.rand(12, 1, 8, 8)
    y = clf(x).argmax(1)
    r = create("pgd", eps=0.3, steps=10)(WhiteBox(clf), x, y)
    assert isinstance(r, AttackResult) and int(r.succeeded.sum()) >= 4
    small = adversarial_figure(x, r, clf.class_names, k=2, path=tmp_path / "a" / "two.png")
    big = adversarial_figure(x, r, clf.class_names, k=4, path=tmp_path / "four.png")
    with Image.open(small) as a, Image.open(big) as b:
        assert a.format == b.format == "PNG"
        assert a.width == b.width and b.height > 1.6 * a.height


def test_figure_rejects_wrong_inputs(tmp_path):
    x, r = _result(status=[S, K], distance=[0.1, 0.0], conf=[0.9, 0.9])
    with pytest.raises(InputError, match="clean inputs"):
        adversarial_figure(x[:1], r, path=tmp_path / "f.png")
    x2, r2 = _result(status=[K, K], distance=[0.0, 0.0], conf=[0.9, 0.9])
    with pytest.raises(InputError, match="skipped"):
        adversarial_figure(x2, r2, path=tmp_path / "f.png")
    x3, r3 = _result(status=[S], distance=[0.1], conf=[0.9], n_shape=(2, 4, 4))
    with pytest.raises(InputError, match="can only draw"):
        adversarial_figure(x3, r3, path=tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


def test_image_grid(tmp_path):
    imgs = torch.rand(5, 3, 6, 6)
    p = image_grid(imgs, titles=list("abcde"), ncols=3, path=tmp_path / "g.png")
    with Image.open(p) as im:
        assert im.format == "PNG" and im.height < im.width
    with pytest.raises(InputError, match="titles"):
        image_grid(imgs, titles=["a"], path=tmp_path / "h.png")
