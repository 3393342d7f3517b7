"""The demo's report tells the story: one section per chapter, in order, each with a
sentence, a table with human column names and its figures; summary.md reads the same;
nothing is recomputed. Uses the session's quick demo run (tests/conftest.py)."""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from pathlib import Path

import pytest

from advx.report.html import render_report
from advx.report.story import load_chapters

#: chapter -> (words its title holds, figures at least, what else it must show)
CHAPTERS = {
    "ch01": ("Train a classifier", 1, ()),
    "ch02": ("White-box", 2, ()),
    "ch03": ("Stronger white-box", 1, ()),
    "ch04": ("Transfer", 1, ("Papernot",)),
    "ch05": ("Black-box", 1, ()),
    "ch06": ("Text", 0, ('<del class="advx-del">', '<ins class="advx-ins">')),
    "ch07": ("detector", 1, ("adaptive",)),
    "ch08": ("adversarial training", 2, ()),
}
PNG = b"\x89PNG\r\n\x1a\n"


def sections(html: str) -> dict[str, str]:
    """Chapter key -> the HTML of its ``<section>``, in page order."""
    found = re.findall(r'<section class="chapter" id="(ch\d\d)">(.*?)</section>', html, re.S)
    return dict(found)


def headers(fragment: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", fragment)]


@pytest.fixture(scope="module")
def report(quick_demo):
    out, _ = quick_demo
    return out, (out / "report.html").read_text(encoding="utf-8")


def test_one_section_per_chapter_in_the_story_order(report):
    _, html = report
    secs = sections(html)
    assert list(secs) == sorted(CHAPTERS), list(secs)
    for key, (words, n_fig, extra) in CHAPTERS.items():
        body = secs[key]
        title = re.search(r"<h2>(.*?)</h2>", body)
        assert title and words.lower() in title.group(1).lower(), (key, title)
        lede = re.search(r'<p class="lede">(.*?)</p>', body, re.S)
        assert lede and len(lede.group(1).split()) >= 12, (key, "no sentence of what it shows")
        assert re.search(r"\d+(\.\d+)?%", lede.group(1)), (key, "the sentence has no number")
        # a table with human column names: words, no dotted or snake_case keys
        assert "<table" in body, key
        cols = headers(body)
        assert cols, key
        for c in cols:
            assert not re.search(r"[a-z]_[a-z]|\w\.\w+\.", c), (key, c)
        first = headers(body.split("</table>")[0])
        assert all(c[:1].isupper() for c in first), (key, first)  # words, not keys
        imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', body)
        assert len(imgs) >= n_fig, (key, len(imgs))
        for data, alt in imgs:
            assert base64.b64decode(data)[:8] == PNG and alt.strip(), key
        for text in extra:
            assert text in body, (key, text)
    # the old flattened dumps are gone
    assert "Notes" not in html and "summaries." not in html and "cost.latency" not in html


def test_each_chapter_draws_the_figures_of_the_story(report):
    _, html = report
    secs = sections(html)
    wanted = {
        "ch03": "Robust accuracy vs perturbation size",
        "ch04": "Transfer matrix",
        "ch05": "Success vs queries",
        "ch07": "ROC",
        "ch08": "across adversarial-training epochs",
    }
    for key, title in wanted.items():
        caps = re.findall(r"<figcaption><b>(.*?)</b>", secs[key])
        assert any(title in c for c in caps), (key, caps)
    assert "Robust accuracy vs eps, both models" in secs["ch08"]
    # chapter 2 opens with the ImageNet photo wherever the ImageNet packages are installed
    out, _ = report
    if (load_chapters(out)["ch02"].get("photo") or {}).get("photos"):
        caps = re.findall(r"<figcaption><b>(.*?)</b>", secs["ch02"])
        assert caps[0] == "A photo becomes an ostrich.", caps


def test_self_contained_and_offline(report):
    _, html = report
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # nothing to fetch
    assert "<script" not in html and "@import" not in html


def test_the_records_keep_what_the_figures_need(report):
    out, _ = report
    recs = load_chapters(out)
    assert set(CHAPTERS) <= set(recs)
    minimal = recs["ch03"]["minimal"]
    assert {"deepfool", "cw-l2"} <= set(minimal)
    assert all(len(v["distance"]) == recs["ch03"]["n"] for v in minimal.values())
    for r in recs["ch05"]["runs"]:
        assert len(r["queries"]) == len(r["succeeded"]) == recs["ch05"]["n"]
    scores = recs["ch07"]["scores"]
    assert len(scores["clean"]) == recs["ch07"]["n"] and scores["non_adaptive"]
    checks = recs["ch08"]["checks"]
    assert [c["epoch"] for c in checks] == list(range(1, recs["ch08"]["epochs"] + 1))
    sweep = recs["ch08"]["sweep"]
    assert all(len(v) == len(sweep["eps"]) for v in sweep["accuracy"].values())
    # the standard model falls further under attack than the adversarially trained one
    acc = list(sweep["accuracy"].values())
    assert acc[0][-1] <= acc[1][-1]


def test_summary_reads_the_same_way(report):
    out, html = report
    md = (out / "summary.md").read_text(encoding="utf-8")
    titles = [unescape(re.sub(r"<[^>]+>", "", t)) for t in re.findall(r"<h2>(.*?)</h2>", html)]
    story = [t for t in titles if re.match(r"\d\. ", t)]
    md_titles = re.findall(r"^## (.+)$", md, re.M)
    assert md_titles[: len(story)] == story
    assert md.count("| --- |") == 0 and md.count("|---|") >= len(CHAPTERS) - 1
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", md)
    assert len(links) >= 8
    for link in links:
        assert (out / link).read_bytes()[:8] == PNG
    assert "~~" in md and "**" in md  # the text diff
    assert "Notes" not in md


def test_rerendering_recomputes_nothing(report, tmp_path, monkeypatch):
    out, html = report
    from advx.attacks.base import Attack

    def forbidden(*a, **k):
        raise AssertionError("the report must not run attacks")

    monkeypatch.setattr(Attack, "__call__", forbidden)
    page, _ = render_report(out, out=tmp_path, galleries=True)
    again = page.read_text(encoding="utf-8")
    assert list(sections(again)) == list(sections(html))
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [s["key"] for s in doc["story"]] == sorted(CHAPTERS)
    assert all(s["tables"] and s["lede"] for s in doc["story"])


def test_a_damaged_chapter_record_does_not_sink_the_report(tmp_path):
    from advx.report.story import save_chapter

    save_chapter(tmp_path, "ch01", {"arch": "cnn", "dataset": "digits", "epochs": 3,
                                    "test_accuracy": 0.97, "n_test": 360, "parameters": 1234})  # fmt: skip
    save_chapter(tmp_path, "ch05", {"runs": [{"attack": "square", "queries": "oops"}]})
    (tmp_path / "ch03.json").write_text("{not json")
    page, md = render_report(tmp_path)
    html = page.read_text()
    assert list(sections(html)) == ["ch01"]
    assert "cannot render chapter ch05" in html
    assert "97.00%" in html and "| cnn | digits |" in md.read_text()


def test_chapter_record_is_plain_json(tmp_path):
    import torch

    from advx.report.story import save_chapter

    p = save_chapter(tmp_path, "ch09", {"x": torch.tensor([1.5, float("nan")]), "p": Path("a"),
                                        "t": (1, 2), "inf": float("inf")})  # fmt: skip
    doc = json.loads(p.read_text())
    assert doc == {"format": "advx.demo-chapter/1", "chapter": "ch09", "x": [1.5, None],
                   "p": "a", "t": [1, 2], "inf": None}  # fmt: skip


def test_chapter_two_opens_with_the_photo_when_its_record_holds_it(tmp_path):
    """Chapter 2's ImageNet moment (figure + per-photo table) comes first in its section."""
    from matplotlib.figure import Figure

    from advx.demo.ch09_report import whitebox_record
    from advx.report.story import save_chapter

    fig = Figure(figsize=(3, 2))
    fig.subplots().plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "ch02_imagenet_ostrich.png")
    fig.savefig(tmp_path / "ch02_fgsm.png")
    summ = {"attack": "fgsm", "n": 200, "clean_accuracy": 0.98, "robust_accuracy": 0.31,
            "success_rate": 0.68, "mean_queries": 1.0, "seconds": 0.1}  # fmt: skip
    imagenet = {
        "model": "efficientnet-lite0", "target": "ostrich", "n_photos": 1, "reached_at_4_255": 1,
        "photos": {"chelsea": {"label": "tiger cat", "top1": "tiger cat", "top1_prob": 0.61,
                               "eps_needed_255": 1.0}},
        "figure": str(tmp_path / "ch02_imagenet_ostrich.png"),
    }  # fmt: skip
    wb = {"eps": 0.2, "n": 200, "pair": ("3", "8"), "summaries": {"fgsm": summ}}
    save_chapter(tmp_path, "ch02", whitebox_record(wb, 0.98, imagenet))
    page, md = render_report(tmp_path)
    body = sections(page.read_text())["ch02"]
    assert '"tiger cat" becomes "ostrich" after a change of at most 1/255' in unescape(body)
    caps = re.findall(r"<figcaption><b>(.*?)</b>", body)
    assert caps[0] == "A photo becomes an ostrich." and "FGSM, untargeted." in caps
    assert headers(body)[:4] == ["Photo", "True label", "Model says", "Eps needed to reach ostrich"]
    assert "| chelsea | tiger cat | tiger cat (61%) | 1/255 |" in md.read_text()
    assert "<td>FGSM</td><td>untargeted</td><td>200</td><td>68.0%</td><td>31.0%</td>" in body
