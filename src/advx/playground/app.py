"""The playground's web app: a FastAPI server and a small static page (no CDN, offline).

Routes (JSON answers; errors are ``{"error": "..."}`` with a 4xx status, never a crash):

====================================  ===================================================
``GET  /``                            the page (sets the client cookie)
``GET  /static/{file}``               its script and style sheet
``GET  /api/info``                    models, attacks, recipes, limits
``GET  /api/photos/{model}``          bundled example images for a model's input
``GET  /api/classes/{model}``         class names (the target box searches them)
``POST /api/upload``                  raw PNG/JPEG body -> ``{"id", "preview"}``
``POST /api/run/{view}``              start a job: image, defense, text, transfer,
                                      robustness -> ``{"id"}``
``GET  /api/jobs/{id}``               state, progress, result
``POST /api/jobs/{id}/cancel``        stop it at its next model call
``GET  /api/jobs/{id}/adversarial.png``  the adversarial image, exactly as evaluated
``GET  /api/jobs/{id}/figure.png``    the report's figure of that result (same code)
====================================  ===================================================

API keys work as in ``advx serve``: with keys set, every request needs
``Authorization: Bearer KEY`` or ``x-api-key: KEY`` (401 otherwise); a browser opens
``/?key=KEY`` once, which stores the key in an HTTP-only, same-site cookie.
"""

# No `from __future__ import annotations`: FastAPI reads endpoint annotations at runtime.
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import resources
from typing import Any

from torch import Tensor

import advx
import advx.playground.images as images
import advx.playground.tasks as tasks
from advx.errors import AdvxError, InputError
from advx.playground.jobs import Busy, JobRunner
from advx.playground.zoo import Zoo, image_data

CLIENT_COOKIE = "advx_client"
KEY_COOKIE = "advx_key"
UPLOADS_PER_CLIENT = 4
MAX_CLIENTS = 256
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _keys(api_key: str | Sequence[str] | None) -> tuple[str, ...]:
    if api_key is None:
        return ()
    keys = (api_key,) if isinstance(api_key, str) else tuple(api_key)
    if any(not k for k in keys):
        raise InputError("API keys must be non-empty strings")
    return keys


def _matches(given: str | None, keys: tuple[str, ...]) -> bool:
    if not given:
        return False
    return any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)


class _Uploads:
    """Decoded uploads per client (the last few only), bounded over all clients."""

    def __init__(self) -> None:
        self._data: OrderedDict[str, OrderedDict[str, Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, client: str, x: Tensor) -> str:
        uid = secrets.token_hex(6)
        with self._lock:
            mine = self._data.pop(client, OrderedDict())
            mine[uid] = x
            while len(mine) > UPLOADS_PER_CLIENT:
                mine.popitem(last=False)
            self._data[client] = mine
            while len(self._data) > MAX_CLIENTS:
                self._data.popitem(last=False)
        return uid

    def get(self, client: str, uid: str) -> Tensor:
        with self._lock:
            mine = self._data.get(client)
            x = None if mine is None else mine.get(uid)
        if x is None:
            raise InputError("that upload is gone (the page keeps your last 4); upload it again")
        return x


def _photos(zoo: Zoo, key: str) -> list[tuple[str, str, Tensor]]:
    """(id, label, image) of the bundled examples for model ``key``'s dataset."""
    entry = zoo.entry(key, "image")
    ds = image_data(entry.dataset)
    names = list(getattr(ds, "class_names", ()) or ())
    titles = list(getattr(ds, "names", ()) or ())
    picks: list[int] = []
    if entry.dataset == "imagenet":
        picks = list(range(len(ds.y)))
    else:  # one example of each class
        seen: set[int] = set()
        for i, c in enumerate(ds.y.tolist()):
            if c not in seen:
                seen.add(c)
                picks.append(i)
            if len(picks) >= 10:
                break
    out = []
    for i in picks:
        c = int(ds.y[i])
        label = titles[i] if i < len(titles) else (names[c] if c < len(names) else str(c))
        out.append((f"{entry.dataset}:{i}", str(label), ds.x[i]))
    return out


def create_app(
    zoo: Zoo,
    *,
    api_key: str | Sequence[str] | None = None,
    time_limit_s: float = 120.0,
    max_upload_bytes: int = images.MAX_UPLOAD_BYTES,
) -> Any:
    """The playground app over the models of ``zoo``.

    Args:
        zoo: the models on offer (:func:`advx.playground.zoo.default_zoo`).
        api_key: a key or several (as ``advx serve --api-key``); None: no authentication
            (keep the server on loopback then).
        time_limit_s: wall-clock bound of each run.
        max_upload_bytes: largest accepted upload.

    Returns:
        The FastAPI application (``app.state.runner`` runs the jobs).
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, RedirectResponse, Response

    keys = _keys(api_key)
    runner = JobRunner(time_limit_s=time_limit_s)
    uploads = _Uploads()
    photo_cache: dict[str, list[tuple[str, str, Tensor]]] = {}
    app = FastAPI(
        title="advx playground",
        version=advx.__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runner = runner
    app.state.zoo = zoo

    def error(status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(_Reject)
    async def _on_reject(request: Request, exc: _Reject) -> Response:
        return error(exc.status, exc.message)

    @app.exception_handler(AdvxError)
    async def _on_advx(request: Request, exc: AdvxError) -> Response:
        return error(409 if isinstance(exc, Busy) else 400, str(exc))

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if keys:
            auth = request.headers.get("authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            given = given or request.headers.get("x-api-key") or request.cookies.get(KEY_COOKIE)
            if not _matches(given, keys):
                q = request.query_params.get("key")
                if request.url.path == "/" and _matches(q, keys):
                    resp = RedirectResponse("/", status_code=303)
                    resp.set_cookie(KEY_COOKIE, q or "", httponly=True, samesite="strict")
                    return resp
                return error(
                    401,
                    "missing or wrong API key: open /?key=YOUR_KEY once in the browser, or "
                    "send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                )
        response: Response = await call_next(request)
        return response

    def client_of(request: Request) -> str:
        c = request.cookies.get(CLIENT_COOKIE)
        if not c:
            raise _Reject(400, "no session cookie; reload the page")
        return c

    def static(name: str) -> bytes:
        return resources.files("advx.playground").joinpath("static", name).read_bytes()

    @app.get("/")
    async def index(request: Request) -> Response:
        resp = Response(static("index.html"), media_type="text/html; charset=utf-8")
        if not request.cookies.get(CLIENT_COOKIE):
            resp.set_cookie(CLIENT_COOKIE, secrets.token_hex(12), httponly=True, samesite="strict")
        return resp

    @app.get("/static/{name}")
    async def static_file(name: str) -> Response:
        if name not in STATIC_FILES:
            raise _Reject(404, f"no static file {name!r}")
        return Response(static(name), media_type=STATIC_FILES[name])

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        from advx.text import recipes

        return {
            "version": advx.__version__,
            "models": [e.describe() for e in zoo.entries.values()],
            "attacks": [
                {"slug": k, "label": v[0], "access": v[1]} for k, v in tasks.IMAGE_ATTACKS.items()
            ],
            "recipes": [
                {
                    "slug": r,
                    "summary": recipes.get(r).summary,
                    "white_box": recipes.get(r).white_box,
                }
                for r in recipes.names()
            ],
            "limits": {
                "max_eps_255": tasks.MAX_EPS_255,
                "max_steps": tasks.MAX_STEPS,
                "max_queries": tasks.MAX_QUERIES,
                "max_upload_bytes": max_upload_bytes,
                "time_limit_s": time_limit_s,
            },
        }

    def photos_of(key: str) -> list[tuple[str, str, Tensor]]:
        ds = zoo.entry(key, "image").dataset
        if ds not in photo_cache:
            photo_cache[ds] = _photos(zoo, key)
        return photo_cache[ds]

    @app.get("/api/photos/{key}")
    async def photos(key: str) -> list[dict[str, Any]]:
        return [
            {"id": pid, "label": label, "url": tasks.data_url(images.to_png(x))}
            for pid, label, x in photos_of(key)
        ]

    @app.get("/api/classes/{key}")
    async def classes(key: str) -> list[str]:
        e = zoo.entry(key)
        if e._value is not None:
            return list(zoo.classifier(key).class_names)
        from anyio import to_thread

        m = await to_thread.run_sync(zoo.classifier, key)
        return list(m.class_names)

    @app.post("/api/upload")
    async def upload(request: Request) -> dict[str, Any]:
        client = client_of(request)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_upload_bytes:
            raise _Reject(
                413,
                f"the file is {int(length) / 2**20:.1f} MiB; the limit is "
                f"{max_upload_bytes / 2**20:.0f} MiB",
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_upload_bytes:
                raise _Reject(
                    413, f"the file is over the limit of {max_upload_bytes / 2**20:.0f} MiB"
                )
            chunks.append(chunk)
        x = images.decode_upload(b"".join(chunks), max_bytes=max_upload_bytes)
        uid = uploads.add(client, x)
        return {"id": uid, "width": int(x.shape[2]), "height": int(x.shape[1])}

    def image_for(client: str, spec: Any, key: str) -> Tensor:
        """The image the request names, fitted to model ``key``'s input."""
        shape = tuple(zoo.classifier(key).input_shape)
        if not isinstance(spec, dict):
            raise InputError("pick a photo or upload an image first")
        if "upload" in spec:
            x = uploads.get(client, str(spec["upload"]))
        elif "photo" in spec:
            pid = str(spec["photo"])
            ds_key = next((e.key for e in zoo.of("image") if pid.startswith(e.dataset + ":")), None)
            if ds_key is None:
                raise InputError(f"unknown photo {pid!r}")
            match = [p for p in photos_of(ds_key) if p[0] == pid]
            if not match:
                raise InputError(f"unknown photo {pid!r}")
            x = match[0][2]
        else:
            raise InputError("pick a photo or upload an image first")
        if tuple(x.shape) == shape:
            # on the 8-bit grid, as the page shows it: then the adversarial example,
            # rounded to 8 bits for its PNG, stays inside the eps-ball (eps is k/255)
            return images.quantise(x)
        if x.shape[0] == 1:
            x = x.repeat(3, 1, 1)
        return images.fit_to(x, shape)

    def settings_of(body: dict[str, Any]) -> tasks.AttackSettings:
        t = body.get("target")
        try:
            return tasks.AttackSettings(
                attack=str(body.get("attack", "pgd")),
                eps_255=int(body.get("eps_255", 4)),
                steps=int(body.get("steps", 10)),
                max_queries=int(body.get("max_queries", 1000)),
                target=None if t in (None, "") else int(t),
            ).check()
        except (TypeError, ValueError) as e:
            raise InputError(f"bad settings: {e}") from None

    @app.post("/api/run/{view}")
    async def run(view: str, request: Request) -> dict[str, Any]:
        client = client_of(request)
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            raise _Reject(400, "the request is not JSON") from None
        if not isinstance(body, dict):
            raise _Reject(400, "the request must be a JSON object")
        from anyio import to_thread

        def prepare() -> Any:
            """Validate and load inputs now (fast errors), return the job function."""
            if view == "image":
                key = str(body.get("model"))
                zoo.entry(key, "image")
                s = settings_of(body)
                x = image_for(client, body.get("image"), key)
                return lambda m: tasks.run_attack(zoo, key, x, s, m)
            if view == "defense":
                s = settings_of(body)
                plain = next(e for e in zoo.of("image") if e.role == "adversarial")
                ds = plain.dataset
                keys = {
                    role: next(e.key for e in zoo.of("image") if e.dataset == ds and e.role == role)
                    for role in ("adversarial", "guarded")
                }
                keys["plain"] = next(
                    e.key
                    for e in zoo.of("image")
                    if e.dataset == ds and e.role == "plain" and e.key.endswith("-cnn")
                )
                x = image_for(client, body.get("image"), keys["plain"])
                return lambda m: tasks.run_defense(zoo, keys, x, s, m)
            if view == "text":
                key = str(body.get("model"))
                zoo.entry(key, "text")
                text, recipe = str(body.get("text", "")), str(body.get("recipe", "deepwordbug"))
                q = int(body.get("max_queries", 500))
                return lambda m: tasks.run_text(zoo, key, text, recipe, q, m)
            if view == "transfer":
                key = str(body.get("model"))
                zoo.entry(key, "image")
                s = settings_of(body)
                x = image_for(client, body.get("image"), key)
                n = int(body.get("n", 100))
                if not 1 <= n <= 500:
                    raise InputError("examples must be 1..500")
                return lambda m: tasks.run_transfer(zoo, key, x, s, n, m)
            if view == "robustness":
                ks = [str(k) for k in body.get("models", [])]
                attack = str(body.get("attack", "fgsm"))
                mx, n = int(body.get("max_eps_255", 16)), int(body.get("n", 100))
                return lambda m: tasks.run_robustness(zoo, ks, attack, mx, n, m)
            raise _Reject(404, f"unknown view {view!r}")

        try:
            fn = await to_thread.run_sync(prepare)
        except StopIteration:
            raise _Reject(400, "this playground has no defended models for that view") from None
        except (TypeError, ValueError) as e:
            if isinstance(e, AdvxError):
                raise
            raise _Reject(400, f"bad request: {e}") from None
        job = runner.submit(client, view, fn)
        return {"id": job.id}

    @app.get("/api/jobs/{job_id}")
    async def job_state(job_id: str, request: Request) -> dict[str, Any]:
        job = runner.get(job_id, client_of(request))
        if job is None:
            raise _Reject(404, "no such run")
        return job.view()

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel(job_id: str, request: Request) -> dict[str, Any]:
        job = runner.cancel(job_id, client_of(request))
        if job is None:
            raise _Reject(404, "no such run")
        return job.view()

    @app.get("/api/jobs/{job_id}/adversarial.png")
    async def download(job_id: str, request: Request) -> Response:
        job = runner.get(job_id, client_of(request))
        if job is None or "adversarial.png" not in job.blobs:
            raise _Reject(404, "no adversarial image for that run")
        return Response(
            job.blobs["adversarial.png"],
            media_type="image/png",
            headers={"content-disposition": f'attachment; filename="adversarial-{job_id}.png"'},
        )

    @app.get("/api/jobs/{job_id}/figure.png")
    async def figure(job_id: str, request: Request) -> Response:
        from anyio import to_thread

        job = runner.get(job_id, client_of(request))
        if job is None or job.figure is None or job.result is None:
            raise _Reject(404, "no figure for that run")
        channels = int(zoo.classifier(job.result["model"]).input_shape[0])
        png = await to_thread.run_sync(tasks.figure_png, job.blobs, job.figure, channels)
        return Response(
            png,
            media_type="image/png",
            headers={"content-disposition": f'attachment; filename="figure-{job_id}.png"'},
        )

    return app


__all__ = ["create_app"]
