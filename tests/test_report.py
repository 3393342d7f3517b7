"""Reports: rendered from saved results only, self-contained, robust to partial runs."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

from advx.errors import InputError
from advx.evaluate import evaluate
from advx.evaluate.transfer import transfer_matrix
from advx.report.html import collect, render_report
from advx.targets import WhiteBox
from tests._single_thread import single_thread  # noqa: F401  (autouse)

if TYPE_CHECKING:
    from typer.testing import Result


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


# ------------------------------------------------------------------ `advx attack` runs
@pytest.fixture(scope="module")
def attack_model(tmp_path_factory):
    """Softmax regression on digits, saved as a checkpoint the CLI can attack (seconds)."""
    from advx import training

    out = tmp_path_factory.mktemp("ckpt") / "linear"
    training.train("linear", "digits", config=training.default_config("linear", "digits", epochs=5),
                   out=out)  # fmt: skip
    return out


def _cli(*args: object) -> Result:
    from typer.testing import CliRunner

    from advx.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _titles(monkeypatch) -> list[str]:
    """Record every axes title of the figures saved from now on."""
    from matplotlib.figure import Figure

    seen: list[str] = []
    save = Figure.savefig

    def spy(self, *a, **k):
        seen.extend(ax.get_title() for ax in self.axes)
        return save(self, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    return seen


def test_report_on_an_attack_run_is_the_full_summary(attack_model, tmp_path, monkeypatch):
    run = tmp_path / "pgd"
    res = _cli("attack", attack_model, "--attack", "pgd", "--eps", "0.2", "--steps", "8",
               "--n", "60", "--out", run, "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    assert (run / "examples.safetensors").is_file()

    titles = _titles(monkeypatch)
    res = _cli("report", run, "--json")
    assert res.exit_code == 0, res.output
    html = (run / "report.html").read_text()
    sec = re.search(r'<section class="chapter" id="attack-pgd">(.*?)</section>', html, re.S)
    assert sec, "no section for the attack run"
    body = sec.group(1)
    assert "<h2>Attack: pgd on linear</h2>" in body
    for label, key in (("Clean accuracy", "clean_accuracy"), ("Accuracy under attack",
                       "robust_accuracy"), ("Success rate", "success_rate")):  # fmt: skip
        assert re.search(rf"<td>{label}[^<]*</td><td>{re.escape(_pct(stats[key]))}</td>", body)
    assert "Mean passes per example" in body and "steps" in body  # the settings table
    assert len(re.findall(r'<img src="data:image/png;base64,', body)) >= 1
    assert any("perturbation ×2" in t for t in titles)  # eps 0.2: the largest factor that fits
    md = (run / "summary.md").read_text()
    assert "## Attack: pgd on linear" in md
    assert f"| Accuracy under attack | {_pct(stats['robust_accuracy'])} |" in md
    assert re.search(r"!\[[^]]+\]\(report-figures/[^)]+\.png\)", md)

    # the amplification is the reader's choice; the figure says which
    titles.clear()
    res = _cli("report", run, "--amplification", "3")
    assert res.exit_code == 0, res.output
    assert any("perturbation ×3" in t for t in titles), titles
    res = _cli("report", run, "--amplification", "0")
    assert res.exit_code != 0 and "amplification must be a positive number" in res.output


@pytest.mark.parametrize(("attack", "extra", "figure"), [
    ("deepfool", ("--norm", "l2"), "Accuracy vs perturbation size"),
    ("square", ("--eps", "0.2", "--max-queries", "200"), "Success vs queries"),
])  # fmt: skip
def test_attack_run_curve_from_per_example_results(attack_model, tmp_path, attack, extra, figure):
    run = tmp_path / attack
    res = _cli("attack", attack_model, "--attack", attack, *extra, "--n", "30", "--out", run,
               "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    page, _ = render_report(run)
    html = page.read_text()
    assert f"<b>{figure}.</b>" in html
    unit = "queries" if attack == "square" else "passes"
    assert f"Mean {unit} per example" in html


def test_curves_from_saved_per_example_values():
    from advx.report.plots import accuracy_at_eps, roc_points, success_by_queries

    # two flipped at 0.1 and 0.3, one resisted, one wrong from the start
    acc = accuracy_at_eps([0.1, 0.3, 0.0, 0.0], [True, True, False, False],
                          [True, True, True, False], [0.0, 0.1, 0.2, 0.3, 1.0])  # fmt: skip
    assert acc == [0.75, 0.5, 0.5, 0.25, 0.25]
    xs, ys = success_by_queries([5, 5, 40, 100], [True, True, True, False], [True] * 4)
    assert xs == [0, 5, 40] and ys == [0.0, 0.5, 0.75]
    fpr, tpr, auc = roc_points([0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6])
    assert auc == pytest.approx(11 / 12)  # one of 12 pairs misordered
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert all(a <= b for a, b in zip(fpr, fpr[1:], strict=False))
    _, _, tie = roc_points([0.5, 0.5], [0.5, 0.5])
    assert tie == 0.5
    with pytest.raises(InputError):
        roc_points([], [0.1])
