"""Reports: rendered from saved results only, self-contained, robust to partial runs."""

from __future__ import annotations

import json
import re

import pytest

from advx.errors import InputError
from advx.evaluate import evaluate
from advx.evaluate.transfer import transfer_matrix
from advx.report.html import collect, render_report
from advx.targets import WhiteBox
from tests._single_thread import single_thread  # noqa: F401  (autouse)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_mlp, digits_linear, digits_data):
    """A directory with one eval run (examples saved) and one transfer matrix."""
    _, _, x, y = digits_data
    root = tmp_path_factory.mktemp("runs")
    rep = evaluate(
        WhiteBox(digits_mlp), (x[:80], y[:80]), eps=[0.05, 0.1], suite="quick", batch_size=40,
        run_dir=root / "eval", save_examples=True, probe=30,
    )  # fmt: skip
    res = transfer_matrix(
        {"mlp": digits_mlp}, {"mlp": digits_mlp, "linear": digits_linear}, (x[:80], y[:80]),
        eps=0.1, attack="fgsm",
    )  # fmt: skip
    res.save(root / "transfer")
    return root, rep, res


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def test_html_is_self_contained_and_holds_the_numbers(runs, monkeypatch):
    root, rep, res = runs
    from advx.attacks.base import Attack

    def forbidden(*a, **k):
        raise AssertionError("the report must not run attacks")

    monkeypatch.setattr(Attack, "__call__", forbidden)
    html_path, md_path = render_report(root, out=root / "report")
    html = html_path.read_text()
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) >= 4  # curve, gallery per eps, heatmap
    # the measured numbers, flags with their explanations, how to reproduce
    for e in (0.05, 0.1):
        assert _pct(rep.robust_accuracy[e]) in html
    assert _pct(rep.clean_accuracy) in html
    assert "Red flags" in html and "Unbounded attack" in html
    assert _pct(res.matrix[0][1]) in html
    assert "Reproduce" in html and "seed" in html and "torch" in html
    md = md_path.read_text()
    assert "| **robust (worst case)** |" in md
    assert f"**{_pct(rep.robust_accuracy[0.1])}**" in md
    assert "| mlp |" in md


def test_incomplete_and_damaged_runs(tmp_path, digits_mlp, digits_data):
    _, _, x, y = digits_data
    evaluate(
        WhiteBox(digits_mlp), (x[:60], y[:60]), eps=0.1, suite="quick", batch_size=20,
        run_dir=tmp_path / "part", stop_after_batches=1, probe=0,
    )  # fmt: skip
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{not json")
    c = collect(tmp_path)
    assert [s.name for s in c.evals] == ["part"] and len(c.problems) == 1
    html, _ = render_report(tmp_path)
    text = html.read_text()
    assert "Incomplete run: 1/3 batches" in text and "cannot read" in text


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(InputError, match="holds no results"):
        render_report(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        render_report(tmp_path / "missing")


def test_notes_for_the_demo(tmp_path):
    html, md = render_report(
        tmp_path, notes=[{"title": "Chapter 1", "text": "trained", "numbers": {"accuracy": 0.91}}]
    )
    assert "Chapter 1" in html.read_text() and "- accuracy: 0.91" in md.read_text()


def test_summary_json_matches_report(runs):
    root, rep, _ = runs
    summary = json.loads((root / "eval" / "summary.json").read_text())
    assert summary["robust_accuracy"] == {
        "0.05": rep.robust_accuracy[0.05],
        "0.1": rep.robust_accuracy[0.1],
    }
