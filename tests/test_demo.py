"""`advx demo --quick` end to end: every chapter runs, in order, and leaves its report."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from typer.testing import CliRunner

from advx.cli import app
from advx.demo import chapters


def test_quick_demo_tells_the_whole_story(quick_demo: tuple[Path, str]) -> None:
    tmp_path, output = quick_demo  # the session's one quick run (tests/conftest.py)
    out = re.sub(r"\s+", " ", output)
    titles = [c.TITLE for c in chapters()]
    assert len(titles) >= 9
    # each chapter's title is printed, in order, followed by its timing
    positions = [out.find(t) for t in titles]
    assert all(p >= 0 for p in positions), [
        t for t, p in zip(titles, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions)
    assert len(re.findall(r"\(\d+\.\ds\)", out)) == len(titles)
    # the story's claims, with numbers (chapters 2, 5 and 8)
    assert re.search(r"PGD leaves robust accuracy at \d+\.\d%", out)
    assert re.search(r"fools the model on \d+% of the images", out)
    assert re.search(r"Robust accuracy goes from \d+\.\d% to \d+\.\d%", out)
    report = (tmp_path / "report.html").read_text()
    assert report.count('src="data:image/png;base64,') >= 3
    assert (tmp_path / "summary.md").read_text().strip()


def test_one_chapter_alone_gets_the_model_from_chapter_one(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = CliRunner().invoke(app, ["demo", "--quick", "--only", "ch02", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    out = re.sub(r"\s+", " ", res.output)
    titles = [c.TITLE for c in chapters()]
    assert titles[0] in out and titles[1] in out
    assert not any(t in out for t in titles[2:])
