"""The quick demo's report.html in a real browser (headless Chromium): every chapter's
section, table and figures are there, visible and rendered; a screenshot is saved to
tests/artifacts/report.png. Skipped where Chromium or Playwright is missing."""

from __future__ import annotations

from tests._browser import open_page, require_browser, screenshot
from tests.test_report_story import CHAPTERS


def test_the_report_renders_every_chapter_in_a_browser(quick_demo):
    require_browser()
    out, _ = quick_demo
    with open_page() as page:
        page.goto((out / "report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        ids = page.eval_on_selector_all("section.chapter", "els => els.map(e => e.id)")
        assert ids == sorted(CHAPTERS)
        for key, (words, n_fig, _extra) in CHAPTERS.items():
            sec = page.locator(f"section#{key}")
            heading = sec.locator("h2")
            assert heading.is_visible() and words.lower() in heading.inner_text().lower()
            assert sec.locator("p.lede").is_visible()
            table = sec.locator("table").first
            assert table.is_visible()
            assert table.locator("th").count() >= 2 and table.locator("tbody tr").count() >= 1
            imgs = sec.locator("img")
            assert imgs.count() >= n_fig, key
            for i in range(imgs.count()):
                img = imgs.nth(i)
                img.scroll_into_view_if_needed()
                assert img.is_visible(), (key, i)
                w = img.evaluate("e => e.complete ? e.naturalWidth : 0")
                assert w > 0, (key, i, "image did not decode")
                assert img.bounding_box()["height"] > 20, (key, i)
        # the text diff's edits are highlighted (struck through / emphasised)
        diff = page.locator("section#ch06 .advx-diff").first
        assert diff.is_visible()
        assert "line-through" in diff.locator("del").first.evaluate(
            "e => getComputedStyle(e).textDecorationLine"
        )
        # the navigation jumps to each chapter
        assert page.locator("nav a[href='#ch05']").count() == 1
        shot = screenshot(page, "report")
    assert shot.stat().st_size > 10_000
