"""The playground's server, without a browser: its API, jobs, uploads and keys.

Built on the digits models (trained once, cached under the test cache), so each test
runs in seconds; the ImageNet page is driven in a real browser in
``test_playground_browser.py``.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from advx.playground import create_app, default_zoo, images
from advx.playground.images import UploadError

CACHE = Path(
    os.environ.get(
        "ADVX_TEST_CACHE", Path(__file__).resolve().parents[1] / ".cache" / "test-models"
    )
)


def _png(a: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(a)
    if mode:
        img = img.convert(mode)
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def zoo() -> Any:
    return default_zoo(cache=CACHE / "playground", small="digits", imagenet=False, text=False)


@pytest.fixture()
def client(zoo: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    app = create_app(zoo)
    with TestClient(app) as c:
        assert c.get("/").status_code == 200  # sets the session cookie
        yield c
    app.state.runner.close()


def wait(c: Any, job_id: str, timeout: float = 300) -> dict[str, Any]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        j: dict[str, Any] = c.get(f"/api/jobs/{job_id}").json()
        if j["state"] not in ("queued", "running"):
            return j
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def run(c: Any, view: str, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post(f"/api/run/{view}", json=body)
    assert r.status_code == 200, r.text
    return wait(c, r.json()["id"])


# -- images ----------------------------------------------------------------------------
def test_png_round_trip_is_exact_on_the_8bit_grid() -> None:
    g = torch.Generator().manual_seed(0)
    for c in (1, 3):
        x = images.quantise(torch.rand(c, 9, 7, generator=g))
        assert torch.equal(images.from_png(images.to_png(x), c), x)
    off_grid = torch.full((3, 2, 2), 0.5 + 0.3 / 255)
    assert not torch.equal(images.from_png(images.to_png(off_grid), 3), off_grid)


def test_uploads_are_checked_with_messages_that_say_what_to_do() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    x = images.decode_upload(_png(rgb))
    assert x.shape == (3, 20, 30) and torch.equal(x, torch.from_numpy(rgb).permute(2, 0, 1) / 255.0)
    assert images.decode_upload(_png(rgb, "RGBA")).shape == (3, 20, 30)
    assert images.decode_upload(_png(rgb, "P")).shape == (3, 20, 30)
    assert images.decode_upload(_png(rgb, fmt="JPEG")).shape == (3, 20, 30)
    with pytest.raises(UploadError, match="not an image"):
        images.decode_upload(b"GIF? no: just text")
    with pytest.raises(UploadError, match="empty"):
        images.decode_upload(b"")
    with pytest.raises(UploadError, match="limit"):
        images.decode_upload(_png(rgb), max_bytes=100)
    with pytest.raises(UploadError, match="mode 'CMYK'"):
        images.decode_upload(_png(rgb, "CMYK", fmt="JPEG"))
    with pytest.raises(UploadError, match="BMP"):
        images.decode_upload(_png(rgb, fmt="BMP"))
    with pytest.raises(UploadError, match="could not be read"):
        images.decode_upload(_png(rgb)[:60])  # truncated


def test_fit_to_crops_and_resizes_onto_the_grid() -> None:
    x = images.quantise(torch.rand(3, 40, 80))
    y = images.fit_to(x, (1, 8, 8))
    assert y.shape == (1, 8, 8) and torch.equal(images.quantise(y), y)
    assert images.fit_to(x, (3, 24, 24)).shape == (3, 24, 24)


# -- the app ---------------------------------------------------------------------------
def test_page_static_files_and_info(client: Any) -> None:
    page = client.get("/").text
    assert "/static/app.js" in page and "http" not in page.split("<body>")[1].split("</body>")[0]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    info = client.get("/api/info").json()
    keys = [m["key"] for m in info["models"]]
    assert {"digits-cnn", "digits-cnn-advtrained", "digits-cnn+squeeze"} <= set(keys)
    assert [a["slug"] for a in info["attacks"]] == [
        "fgsm",
        "pgd",
        "apgd-ce",
        "cw-l2",
        "square",
        "hopskipjump",
    ]
    assert {r["slug"] for r in info["recipes"]} == {"deepwordbug", "hotflip", "pwws", "textfooler"}


def test_targeted_pgd_reaches_the_target_and_the_download_is_what_was_shown(
    client: Any, zoo: Any
) -> None:
    photos = client.get("/api/photos/digits-cnn").json()
    assert len(photos) == 10 and photos[0]["url"].startswith("data:image/png;base64,")
    j = run(client, "image", {"model": "digits-cnn", "image": {"photo": photos[0]["id"]},
                              "attack": "pgd", "eps_255": 64, "steps": 20, "target": 3})  # fmt: skip
    assert j["state"] == "done", j
    r = j["result"]
    assert r["before"]["name"] == photos[0]["label"] and r["after"]["name"] == "3" and r["fooled"]
    assert r["linf_255"] <= 64 + 1e-3 and r["queries"] > 0
    assert [t["p"] for t in r["after"]["top5"]] == sorted(
        (t["p"] for t in r["after"]["top5"]), reverse=True
    )
    png = client.get(f"/api/jobs/{j['id']}/adversarial.png")
    assert png.headers["content-type"] == "image/png"
    x = images.from_png(png.content, 1).unsqueeze(0)
    with torch.no_grad():
        assert int(zoo.classifier("digits-cnn")(x).argmax(1)) == 3
    fig = client.get(f"/api/jobs/{j['id']}/figure.png")  # the report's figure code
    assert fig.status_code == 200 and fig.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert r["factor"] in (1, 2, 5, 10, 20, 50)


def test_black_box_attacks_report_their_queries(client: Any) -> None:
    photo = client.get("/api/photos/digits-cnn").json()[2]["id"]
    for attack in ("square", "hopskipjump"):
        j = run(client, "image", {"model": "digits-cnn", "image": {"photo": photo}, "attack": attack,
                                  "eps_255": 64, "max_queries": 300})  # fmt: skip
        assert j["state"] == "done", j
        assert 0 < j["result"]["queries"] <= 300 and j["result"]["linf_255"] <= 64 + 1e-3


def test_uploaded_image_is_attacked_and_bad_uploads_get_messages(client: Any) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    up = client.post("/api/upload", content=_png(rgb))
    assert up.status_code == 200, up.text
    j = run(client, "image", {"model": "digits-cnn", "image": {"upload": up.json()["id"]},
                              "attack": "fgsm", "eps_255": 8})  # fmt: skip
    assert j["state"] == "done" and j["result"]["linf_255"] <= 8 + 1e-3
    bad = client.post("/api/upload", content=b"%PDF-1.4 not an image")
    assert bad.status_code == 400 and "not an image" in bad.json()["error"]
    huge = client.post("/api/upload", content=b"\0" * (images.MAX_UPLOAD_BYTES + 1))
    assert huge.status_code == 413 and "limit" in huge.json()["error"]
    gone = client.post("/api/run/image", json={"model": "digits-cnn", "image": {"upload": "nope"}})
    assert gone.status_code == 400 and "upload it again" in gone.json()["error"]
    wrong = client.post(
        "/api/run/image",
        json={"model": "digits-cnn", "image": {"photo": "digits:0"}, "eps_255": 999},
    )
    assert wrong.status_code == 400 and "eps" in wrong.json()["error"]
    assert client.get("/api/info").status_code == 200  # still serving


def test_one_run_per_client_and_cancel_stops_it(client: Any) -> None:
    body = {"model": "digits-cnn", "image": {"photo": "digits:3"}, "attack": "square",
            "eps_255": 1, "max_queries": 20000}  # fmt: skip
    job = client.post("/api/run/image", json=body).json()["id"]
    busy = client.post("/api/run/image", json=body)
    assert busy.status_code == 409 and "one run at a time" in busy.json()["error"]
    client.post(f"/api/jobs/{job}/cancel")
    j = wait(client, job, timeout=60)
    assert j["state"] == "cancelled"
    assert run(client, "image", {**body, "attack": "fgsm"})["state"] == "done"  # free again


def test_runs_stop_at_the_time_limit(zoo: Any) -> None:
    from fastapi.testclient import TestClient

    app = create_app(zoo, time_limit_s=0.3)
    with TestClient(app) as c:
        c.get("/")
        j = run(c, "image", {"model": "digits-cnn", "image": {"photo": "digits:3"}, "attack": "square",
                             "eps_255": 1, "max_queries": 20000})  # fmt: skip
    app.state.runner.close()
    assert j["state"] == "cancelled" and "time limit" in j["error"]


def test_api_key_as_in_advx_serve(zoo: Any) -> None:
    from fastapi.testclient import TestClient

    app = create_app(zoo, api_key="s3cret")
    with TestClient(app) as c:
        assert c.get("/").status_code == 401
        assert c.get("/api/info").status_code == 401
        assert c.get("/api/info", headers={"x-api-key": "wrong"}).status_code == 401
        assert c.get("/api/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        r = c.get("/?key=s3cret", follow_redirects=False)
        assert r.status_code == 303 and "advx_key" in r.headers["set-cookie"]
        assert "httponly" in r.headers["set-cookie"].lower()
        assert c.get("/").status_code == 200  # the cookie carries the key now
    app.state.runner.close()


def test_robustness_and_transfer_views(client: Any) -> None:
    j = run(client, "robustness", {"models": ["digits-cnn", "digits-mlp"], "attack": "fgsm",
                                   "max_eps_255": 40, "n": 60})  # fmt: skip
    assert j["state"] == "done", j
    r = j["result"]
    assert r["eps_255"][0] == 0 and r["eps_255"][-1] == 40
    for c in r["curves"]:
        assert c["accuracy"][0] > 0.8 and c["accuracy"][-1] < c["accuracy"][0]
    pts = r["projection"]["points"]
    assert len(pts) == 60 and any(p["pred_adv"] != p["pred_clean"] for p in pts)
    j = run(client, "transfer", {"model": "digits-cnn", "image": {"photo": "digits:3"}, "attack": "pgd",
                                 "eps_255": 51, "steps": 10, "n": 60})  # fmt: skip
    assert j["state"] == "done", j
    t = j["result"]
    assert t["models"][0]["source"] and "digits-mlp" in t["rates"]
    assert 0.0 <= t["rates"]["digits-mlp"] <= 1.0


def test_defense_view_adversarial_training_detector_and_adaptive_attack(client: Any) -> None:
    j = run(
        client,
        "defense",
        {"image": {"photo": "digits:3"}, "attack": "pgd", "eps_255": 51, "steps": 20},
    )
    assert j["state"] == "done", j
    rows = j["result"]["rows"]
    assert [r["model"] for r in rows] == [
        "digits-cnn",
        "digits-cnn-advtrained",
        "digits-cnn+squeeze",
        "digits-cnn+squeeze",
    ]
    assert rows[0]["fooled"] and not rows[0]["rejected"]
    assert rows[2]["image"] == rows[0]["image"]  # the plain model's example, shown to the guard
    for r in rows:
        assert not (r["fooled"] and r["rejected"]) and r["linf_255"] <= 51 + 1e-3
        assert (r["after"]["p"] is None) == (r["after"]["name"] == "rejected")


def test_cli_help_and_bad_options() -> None:
    from typer.testing import CliRunner

    from advx.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["playground", "--help"])
    assert r.exit_code == 0 and "--api-key" in r.output and "127.0.0.1" in r.output
    r = runner.invoke(app, ["playground", "--port", "70000"])
    assert r.exit_code != 0 and "--port" in r.output
    r = runner.invoke(app, ["playground", "--small", "cifar", "--no-imagenet", "--no-text"])
    assert r.exit_code != 0 and "fashion-mnist" in r.output
