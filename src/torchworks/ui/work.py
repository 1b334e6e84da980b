"""The work behind the UI's two POST endpoints, run in a worker thread under the job budget: identifying and
decoding the uploaded images, filling (one fill, or K variations of a pluralistic method with the progress of its
transformer stage) and encoding the PNG answers; and :class:`ApiError`, how any of it reaches the client.
"""

from __future__ import annotations

import base64
import contextlib
import io
import time
from collections.abc import Iterator
from typing import Any

from fastapi import UploadFile

from torchworks.inpainting.api import inpaint
from torchworks.inpainting.base import MissingExtraError
from torchworks.ui.jobs import CancelToken, ProgressFeed

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")


class ApiError(Exception):
    """An error answered as :class:`ErrorResponse` JSON with ``status``."""

    def __init__(self, status: int, detail: str, close_matches: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.close_matches, self.headers = status, detail, close_matches, headers


def identify(data: bytes, field_name: str, max_pixels: int) -> Any:
    """Pillow image from uploaded bytes, not yet decoded: identified by content, its size checked."""
    from PIL import Image

    if not data:
        raise ApiError(422, f"{field_name}: the uploaded file is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise ApiError(422, f"{field_name}: too many pixels ({exc}); the limit is {max_pixels:,}") from None
    except Exception:  # UnidentifiedImageError and friends: not an image Pillow knows
        raise ApiError(422, f"{field_name}: not a supported image (the content is not "
                       f"{', '.join(FORMATS)})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ApiError(422, f"{field_name}: {w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} "
                       "(start the server with --max-pixels to change it)")
    return img


def _decode(img: Any, field_name: str) -> Any:
    """The pixels of an identified image, EXIF-upright (browsers show, and masks are drawn on, upright pixels)."""
    from PIL import ImageOps

    try:
        img.load()
        return ImageOps.exif_transpose(img)
    except Exception as exc:
        raise ApiError(422, f"{field_name}: the {img.format} file cannot be decoded ({exc})") from None


def check_content_type(upload: UploadFile, field_name: str) -> None:
    ctype = (upload.content_type or "").split(";")[0].strip().lower()
    if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
        raise ApiError(422, f"{field_name}: content type {ctype!r} is not an image; send PNG, JPEG, WebP, BMP, "
                       "TIFF or GIF")


def _decode_pair(token: CancelToken, image: Any, mask: Any) -> tuple[Any, Any]:
    """Both images decoded and checked to be the same size (stops once ``token`` is cancelled)."""
    img = _decode(image, "image")
    token.check()
    mask = _decode(mask, "mask")
    if img.size != mask.size:
        raise ApiError(422, f"the mask is {mask.size[0]}x{mask.size[1]} but the image is "
                       f"{img.size[0]}x{img.size[1]} (width x height); they must be the same size")
    token.check()
    return img, mask


@contextlib.contextmanager
def _user_errors(method: str) -> Iterator[None]:
    """Maps what ``inpaint`` raises for the user's input or a missing install to API errors."""
    try:
        yield
    except (MissingExtraError, FileNotFoundError) as exc:  # an optional package, or weights not installed
        raise ApiError(501, f"method {method!r} is not available here: {exc}") from None
    except ValueError as exc:  # MaskError, InpaintInputError: the user's input
        raise ApiError(422, str(exc)) from None


def _png(out: Any, like: Any) -> bytes:
    """PNG bytes of a PIL result, with the input's ICC profile."""
    buf = io.BytesIO()
    icc = like.info.get("icc_profile")
    out.save(buf, format="PNG", **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


def run_inpaint(token: CancelToken, image: Any, mask: Any, method: str, **opts: Any) -> tuple[bytes, float]:
    """Decodes, inpaints and encodes to PNG (in a worker thread, holding the job budget); stops between steps, and
    at every torch module call, once ``token`` is cancelled."""
    img, mask = _decode_pair(token, image, mask)
    start = time.perf_counter()
    with _user_errors(method):
        out = inpaint(img, mask, method=method, **opts)
    seconds = time.perf_counter() - start
    token.check()
    return _png(out, img), seconds


def run_variations(token: CancelToken, report: ProgressFeed, image: Any, mask: Any, method: str, samples: int,
                    seed: int, device: str | None, **opts: Any) -> dict[str, Any]:
    """The ``samples`` fills of seeds ``seed, seed + 1, ...`` (in a worker thread, holding the job budget).

    Reports, through ``report``, a ``progress`` event after each pass of the method's transformer (the
    inpainter's ``progress`` callback, when it has one: the slow stage) and a ``variation`` event with the PNG of
    each fill as it is done; returns the closing ``done`` event. The model is loaded once; each seed gets a
    shallow copy of the inpainter.
    """
    from torchworks.inpainting.api import get_inpainter
    from torchworks.inpainting.diversity import with_seed

    img, mask = _decode_pair(token, image, mask)
    with _user_errors(method):
        base = get_inpainter(method, seed=seed)
        if hasattr(base, "to"):
            base.to(device or "auto")
    steps = int(getattr(base, "steps", 1)) if hasattr(base, "progress") else 0
    total, current = samples * (steps + 1), 0  # steps transformer passes + one upsampling per variation

    def on_pass(step: int, _steps: int) -> None:  # the inpainter's progress callback, after each transformer pass
        report({"event": "progress", "stage": "transformer", "done": current * (steps + 1) + step, "total": total})

    start = time.perf_counter()
    for current in range(samples):
        t0 = time.perf_counter()
        fill = with_seed(base, seed + current)  # a shallow copy: the shared model's callback is never touched
        if steps:
            fill.progress = on_pass
        with _user_errors(method):
            out = inpaint(img, mask, method=fill, **opts)
        seconds = time.perf_counter() - t0
        token.check()
        report({"event": "variation", "index": current, "seed": seed + current, "seconds": round(seconds, 4),
                "done": (current + 1) * (steps + 1), "total": total,
                "png": base64.b64encode(_png(out, img)).decode("ascii")})
    return {"event": "done", "samples": samples, "seconds": round(time.perf_counter() - start, 4)}
