"""Images in and out of the playground: checked uploads, fitting to a model, PNG bytes.

The page shows and downloads 8-bit PNGs. A tensor on the 8-bit grid (values ``k/255``) is
exactly representable as one, so :func:`to_png` and :func:`from_png` round-trip it
bit for bit; the playground therefore puts every adversarial example on that grid
(:func:`quantise`) and reports whether doing so changed the model's answer.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from advx.errors import InputError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_PIXELS = 6000 * 6000
FORMATS = ("PNG", "JPEG")
# modes converted to RGB without guessing; others (CMYK, 16-bit, float) are refused
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")


class UploadError(InputError):
    """An upload the playground will not use; the message says why and what to send."""


def decode_upload(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Tensor:
    """Check and decode an uploaded PNG or JPEG to ``(3, H, W)`` float32 in ``[0, 1]``.

    Raises:
        UploadError: empty, too large (bytes or pixels), not a PNG/JPEG, damaged, or an
            image mode other than grayscale, palette, RGB or RGBA.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UploadError("the upload is empty; choose a PNG or JPEG file")
    if len(data) > max_bytes:
        raise UploadError(
            f"the file is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            w, h = img.size
            if fmt not in FORMATS:
                raise UploadError(f"this is a {fmt} image; upload a PNG or JPEG")
            if w * h > MAX_UPLOAD_PIXELS:
                raise UploadError(
                    f"the image is {w}x{h} pixels; the limit is {MAX_UPLOAD_PIXELS:,} pixels"
                )
            if img.mode not in MODES:
                raise UploadError(
                    f"image mode {img.mode!r} is not supported (grayscale, palette, RGB or "
                    "RGBA only); save it as an 8-bit RGB PNG or JPEG"
                )
            img.load()
    except UploadError:
        raise
    except UnidentifiedImageError:
        raise UploadError("this file is not an image; upload a PNG or JPEG") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as e:
        raise UploadError(f"the image could not be read ({e}); upload a PNG or JPEG") from None
    if img.mode in ("LA", "PA", "RGBA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)  # type: ignore[assignment]  # transparent pixels show as white
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0


def fit_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Centre-crop ``x`` ``(3, H, W)`` to the aspect of ``shape`` ``(C, h, w)`` and
    resize to it (grayscale when ``C == 1``); the result is on the 8-bit grid."""
    from PIL import Image

    c, h, w = (int(s) for s in shape)
    if c not in (1, 3):
        raise InputError(f"the playground shows 1- or 3-channel images, not {c} channels")
    img = Image.fromarray(_uint8(x).transpose(1, 2, 0))
    W, H = img.size
    if W * h > H * w:  # too wide: crop the sides
        cw = max(1, round(H * w / h))
        img = img.crop(((W - cw) // 2, 0, (W - cw) // 2 + cw, H))
    else:
        ch = max(1, round(W * h / w))
        img = img.crop((0, (H - ch) // 2, W, (H - ch) // 2 + ch))
    img = img.resize((w, h), Image.Resampling.LANCZOS)
    if c == 1:
        img = img.convert("L")
    a = np.asarray(img, dtype=np.uint8)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return torch.from_numpy(a.copy()).float() / 255.0


def quantise(x: Tensor) -> Tensor:
    """Round to the 8-bit grid ``k/255`` (what an 8-bit PNG holds)."""
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0


def _uint8(x: Tensor) -> np.ndarray:
    return np.asarray(torch.round(x.detach().float().clamp(0, 1) * 255).to(torch.uint8).numpy())


def to_png(x: Tensor) -> bytes:
    """An 8-bit PNG of ``x`` ``(C, H, W)`` in ``[0, 1]`` (C = 1 or 3); exact for values
    on the 8-bit grid."""
    from PIL import Image

    a = _uint8(x)
    img = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def from_png(data: bytes, channels: int) -> Tensor:
    """Read a PNG written by :func:`to_png` back to ``(channels, H, W)`` float32."""
    x = decode_upload(data, max_bytes=max(MAX_UPLOAD_BYTES, len(data)))
    if channels == 1:
        return x[:1]  # to_png wrote gray, decode_upload replicated it
    return x


def amplified(delta: Tensor) -> tuple[Tensor, float]:
    """The perturbation made visible as the report draws it: ``0.5 + k * delta`` with
    :func:`advx.report.figures.amplification`'s factor ``k`` (the largest 1-2-5 factor
    that does not clip); returns the image and ``k``."""
    from advx.report.figures import amplification

    k = amplification(delta, (0.0, 1.0))
    return (0.5 + k * delta).clamp(0, 1), k
