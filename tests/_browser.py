"""A real browser for page tests: Debian's Chromium driven by Playwright's sync API.

Playwright's own browser download is not used (nothing is downloaded): ``CHROMIUM``
(default ``/usr/bin/chromium``, override with ``ADVX_CHROMIUM``) runs headless with a
fresh profile, no GPU, no background networking. Tests that need it call
:func:`require_browser` (a skip, with the reason, when Chromium or Playwright is
missing) and use :func:`open_page`. Screenshots go to :data:`ARTIFACTS`
(``tests/artifacts/``, git-ignored; override with ``ADVX_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("ADVX_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("ADVX_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


def require_browser() -> None:
    """Skip the calling test unless Chromium and Playwright are both available."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set ADVX_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no browser download)")


@contextmanager
def open_page(width: int = 1200, height: int = 900) -> Iterator[Any]:
    """A Playwright ``Page`` in a headless Chromium with a fresh, temporary profile."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="advx-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot ``ARTIFACTS/<name>.png``; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
