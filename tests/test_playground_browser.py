"""The playground in a real browser (headless Debian Chromium via Playwright).

Drives the page as a person would: pick a photo, set eps, run a targeted PGD on the
ImageNet model, and check what the page shows (the prediction changed to the target, the
three images rendered) and that the downloaded PNG, fed back to the model, gives the same
adversarial prediction; upload a file that is not an image and read the message; run a
text attack and find the highlighted edits. Screenshots land in ``tests/artifacts/``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests import _browser

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "test-models"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    """The playground on a loopback port: ImageNet models, digits models, the text model."""
    _browser.require_browser()
    import os

    import uvicorn

    from advx.playground import create_app, default_zoo
    from advx.playground.zoo import imagenet_available

    if "efficientnet-lite0" not in imagenet_available():
        pytest.skip("this advx has no pretrained ImageNet model")
    cache = Path(os.environ.get("ADVX_TEST_CACHE", CACHE)) / "playground"
    zoo = default_zoo(cache=cache, small="digits")
    app = create_app(zoo, time_limit_s=300)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline:
            pytest.fail("the playground server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", zoo
    srv.should_exit = True
    thread.join(timeout=10)
    app.state.runner.close()


def test_targeted_pgd_on_a_photo_turns_it_into_an_ostrich(server: tuple[str, Any]) -> None:
    from advx.playground import images

    url, zoo = server
    with _browser.open_page(1300, 1000) as page:
        page.goto(url)
        page.wait_for_selector("#photos .thumb img")
        assert page.input_value("#model") == "efficientnet-lite0"  # the default model
        page.click('#photos .thumb[data-photo="imagenet:0"]')  # chelsea, a tiger cat
        page.select_option("#attack", "pgd")
        page.fill("#steps", "5")
        page.eval_on_selector("#eps", "e => { e.value = 8; e.dispatchEvent(new Event('input')); }")
        assert page.text_content("#eps-out") == "8/255"
        page.check("#goal-targeted")
        page.fill("#target-class", "ostrich")
        page.click("#run")
        page.wait_for_selector(
            "#image-results:not([hidden]), #run-error:not([hidden])", timeout=240_000
        )
        assert page.is_hidden("#run-error"), page.text_content("#run-error")
        _browser.screenshot(page, "playground-image")
        assert page.text_content("#pred-before").startswith("tiger cat")
        assert page.text_content("#pred-after").startswith("ostrich")
        for name in ("original", "perturbation", "adversarial"):  # rendered, not broken
            width = page.eval_on_selector(f"#img-{name}", "e => e.complete ? e.naturalWidth : 0")
            assert width == 224, name
        assert "amplified" in page.text_content("#factor")
        with page.expect_download() as dl:
            page.click("#download")
        png = Path(dl.value.path()).read_bytes()
    clf = zoo.classifier("efficientnet-lite0")
    x = images.from_png(png, 3).unsqueeze(0)
    with torch.no_grad():
        pred = int(clf(x).argmax(1))
    assert clf.class_names[pred] == "ostrich"  # the file reproduces the page's prediction


def test_a_non_image_upload_gets_a_clear_message(server: tuple[str, Any], tmp_path: Path) -> None:
    url, _ = server
    bad = tmp_path / "notes.png"
    bad.write_text("these are not pixels")
    with _browser.open_page() as page:
        page.goto(url)
        page.wait_for_selector("#photos .thumb img")
        page.set_input_files("#upload", str(bad))
        page.wait_for_selector("#upload-error:not([hidden])")
        _browser.screenshot(page, "playground-upload-error")
        assert "not an image" in page.text_content("#upload-error")
        # the server is still answering
        page.reload()
        page.wait_for_selector("#photos .thumb img")


def test_a_text_attack_highlights_the_edits(server: tuple[str, Any]) -> None:
    url, _ = server
    with _browser.open_page(1300, 900) as page:
        page.goto(url)
        page.click('#tabs button[data-tab="text"]')
        page.fill(
            "#text-input", "I hate waiting for the bus, it is always late and the drivers are rude"
        )
        page.select_option("#recipe", "deepwordbug")
        page.click("#text-run")
        error = "#tab-text .controls > .error"
        page.wait_for_selector(
            f"#text-results:not([hidden]), {error}:not([hidden])", timeout=240_000
        )
        assert page.is_hidden(error), page.text_content(error)
        _browser.screenshot(page, "playground-text")
        edits = page.eval_on_selector_all(
            "#text-adversarial mark.edit", "es => es.map(e => e.textContent)"
        )
        removed = page.eval_on_selector_all(
            "#text-original del.edit-old", "es => es.map(e => e.textContent)"
        )
        assert edits and len(edits) == len(removed)
        assert all(a != b for a, b in zip(edits, removed, strict=True))
        assert page.text_content("#text-before").startswith("negative")
        assert page.text_content("#text-after").startswith("positive")
