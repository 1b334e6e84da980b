"""The local inpainting web UI: a FastAPI app serving one static page and a small multipart/JSON API.

Endpoints: ``GET /`` (the page), ``GET /api/methods``, ``POST /api/inpaint`` (multipart in, PNG out),
``GET /health``; OpenAPI at ``/openapi.json`` (always available) and ``/docs`` (Swagger UI, whose JavaScript and
CSS FastAPI loads from a CDN: /docs needs a network, the page and the API do not).

Safety: the request body is buffered in memory and refused with 413 past ``max_upload_bytes``; images are
identified by their content (Pillow, PNG/JPEG/WebP/BMP/TIFF/GIF only) and refused with 422 past ``max_pixels``
before they are decoded; nothing is read from or written to a path a request names (multipart parts above 1 MB
are spooled by Starlette to anonymous files in the system temp dir, deleted when the request ends); one call runs
at a time per method, ``queue_size`` more may wait, the rest get 503 with ``Retry-After``. A request whose
``Host`` is not an allowed host gets 400 (DNS rebinding) and a POST from another site's page gets 403 (CSRF); see
:mod:`torchworks.ui.guard`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

import torchworks.inpainting  # noqa: F401  (registers the classical methods)
from torchworks.core.registry import INPAINTERS
from torchworks.inpainting.api import inpaint
from torchworks.inpainting.base import MissingExtraError
from torchworks.ui.guard import LOOPBACK_HOSTS, RequestGuard, check_hosts
from torchworks.ui.schemas import ErrorResponse, HealthResponse, Limits, MethodInfo, MethodsResponse

log = logging.getLogger("torchworks.ui")

STATIC = Path(__file__).resolve().parent / "static"
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
LEARNED_PREFIXES = ("lama", "relama")
# The page's own assets only: a CDN reference would be blocked, so "works offline" cannot silently regress.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
ERRORS = {code: {"model": ErrorResponse} for code in (400, 403, 413, 422, 500, 501, 503)}


class ApiError(Exception):
    """An error answered as :class:`ErrorResponse` JSON with ``status``."""

    def __init__(self, status: int, detail: str, close_matches: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.close_matches, self.headers = status, detail, close_matches, headers


@dataclass
class _Slot:
    """Per-method admission: one call runs under ``lock``, ``pending`` counts it plus those waiting."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: int = 0


def list_methods() -> list[MethodInfo]:
    """Every registered inpainter, learned first (learned models may be registered by ``inpainting.nets``)."""
    try:
        import importlib

        importlib.import_module("torchworks.inpainting.nets")
    except ImportError:  # learned models are optional; classical ones are always there
        pass
    infos = []
    for name in INPAINTERS.names():
        kind = INPAINTERS.meta(name).get("kind")
        learned = kind == "learned" or name.startswith(LEARNED_PREFIXES)
        doc = (INPAINTERS.get(name).__doc__ or "").strip().splitlines()
        infos.append(MethodInfo(name=name, kind="learned" if learned else "classical",
                                description=doc[0] if doc else ""))
    return sorted(infos, key=lambda m: (m.kind != "learned", m.name))


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n} bytes"


class _BodyLimit:
    """ASGI middleware: buffers each request body in memory, answering 413 once it exceeds ``limit`` bytes.

    A ``Content-Length`` above the limit is refused before anything is read; a chunked body is counted as it
    arrives. The app then reads the buffered body, so nothing downstream can receive more than the limit.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode() or None
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send, size, at_least=True)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()  # waits for the disconnect, as a real receive would
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any, size: int, at_least: bool = False) -> None:
        what = f"more than {_fmt_bytes(self.limit)}" if at_least else _fmt_bytes(size)
        detail = (f"upload too large: {what}; the limit is {_fmt_bytes(self.limit)} for image and mask together "
                  "(start the server with --max-upload-mb to change it)")
        response = JSONResponse(ErrorResponse(detail=detail).model_dump(exclude_none=True), status_code=413,
                                headers={"Connection": "close"})
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> dict:  # pragma: no cover - a JSONResponse never reads the request
    return {"type": "http.disconnect"}


def _open_image(data: bytes, field_name: str, max_pixels: int) -> Any:
    """Pillow image from uploaded bytes: identified by content, size checked before decoding, EXIF-upright."""
    from PIL import Image, ImageOps

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
    try:
        img.load()
        return ImageOps.exif_transpose(img)  # browsers show (and masks are drawn on) upright pixels
    except Exception as exc:
        raise ApiError(422, f"{field_name}: the {img.format} file cannot be decoded ({exc})") from None


def _check_content_type(upload: UploadFile, field_name: str) -> None:
    ctype = (upload.content_type or "").split(";")[0].strip().lower()
    if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
        raise ApiError(422, f"{field_name}: content type {ctype!r} is not an image; send PNG, JPEG, WebP, BMP, "
                       "TIFF or GIF")


def _run_inpaint(image_bytes: bytes, mask_bytes: bytes, method: str, max_pixels: int,
                 **opts: Any) -> tuple[bytes, float]:
    """Decodes, inpaints and encodes to PNG (in a worker thread, under the method's lock)."""
    img = _open_image(image_bytes, "image", max_pixels)
    mask = _open_image(mask_bytes, "mask", max_pixels)
    if img.size != mask.size:
        raise ApiError(422, f"the mask is {mask.size[0]}x{mask.size[1]} but the image is "
                       f"{img.size[0]}x{img.size[1]} (width x height); they must be the same size")
    start = time.perf_counter()
    try:
        out = inpaint(img, mask, method=method, **opts)
    except MissingExtraError as exc:
        raise ApiError(501, f"method {method!r} is not available here: {exc}") from None
    except ValueError as exc:  # MaskError, InpaintInputError: the user's input
        raise ApiError(422, str(exc)) from None
    seconds = time.perf_counter() - start
    buf = io.BytesIO()
    icc = img.info.get("icc_profile")
    out.save(buf, format="PNG", **({"icc_profile": icc} if icc else {}))
    return buf.getvalue(), seconds


def create_app(max_upload_bytes: int = 20 * 2**20, max_pixels: int = 25_000_000, queue_size: int = 8,
               allowed_hosts: Sequence[str] = LOOPBACK_HOSTS) -> FastAPI:
    """The ASGI app of ``torchworks ui``.

    Args:
        max_upload_bytes: largest request body (image + mask + fields); larger ones get 413.
        max_pixels: largest width x height of an uploaded image or mask; larger ones get 422.
        queue_size: requests that may wait per method while one runs; beyond it, 503 "busy, retry".
        allowed_hosts: names the server may be reached by (its ``Host`` header, any port); others get 400.
            ``*.lan`` matches sub-domains, ``*`` disables the check. Cross-origin POSTs get 403 regardless.

    Returns:
        The FastAPI app; serve it with uvicorn.
    """
    if max_upload_bytes <= 0 or max_pixels <= 0 or queue_size < 0:
        raise ValueError(f"limits must be positive (queue_size >= 0), got max_upload_bytes={max_upload_bytes}, "
                         f"max_pixels={max_pixels}, queue_size={queue_size}")
    hosts = check_hosts(allowed_hosts)  # now, not at the first request (Starlette builds middleware lazily)
    app = FastAPI(title="torchworks inpainting", version="0.1.0",
                  description="Local inpainting server behind `torchworks ui`. Masks: white = hole. "
                  "`/openapi.json` works offline; this page loads Swagger UI from a CDN.")
    slots: dict[str, _Slot] = {}
    limits = Limits(max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, queue_size=queue_size)

    @app.exception_handler(ApiError)
    async def _api_error(request: Any, exc: ApiError) -> JSONResponse:
        body = ErrorResponse(detail=exc.detail, close_matches=exc.close_matches).model_dump(exclude_none=True)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_CSP,
                                                            "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", response_model=HealthResponse)
    async def health() -> HealthResponse:
        """Liveness, and the limits the page checks before uploading."""
        return HealthResponse(limits=limits)

    @app.get("/api/methods", response_model=MethodsResponse)
    async def methods() -> MethodsResponse:
        """Every registered inpainter, learned models first."""
        infos = list_methods()
        default = infos[0].name if infos and infos[0].kind == "learned" else "telea"
        return MethodsResponse(methods=infos, default=default if default in INPAINTERS else infos[0].name)

    @app.post("/api/inpaint", response_class=Response, responses={
        200: {"content": {"image/png": {}}, "description": "the inpainted image, PNG (lossless); header "
              "X-Inpaint-Seconds gives the time of the inpainting call"}, **ERRORS})
    async def inpaint_endpoint(
        image: Annotated[UploadFile, File(description="photo: PNG, JPEG, WebP, BMP, TIFF or GIF")],
        mask: Annotated[UploadFile, File(description="mask of the same size, white (non-zero) = hole")],
        method: Annotated[str, Form(description="a name from GET /api/methods")] = "telea",
        dilate: Annotated[int | None, Form(ge=0, le=256, description="grow the hole by N pixels first")] = None,
        feather: Annotated[bool | None, Form(description="blend the dilation ring into the photo")] = None,
        strategy: Annotated[Literal["auto", "full", "crop", "resize"], Form()] = "auto",
    ) -> Response:
        """Fills the white part of the mask; pixels outside the (dilated) hole come back bit for bit."""
        if method not in INPAINTERS:
            close = INPAINTERS.close_matches(method)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(INPAINTERS.names())}"
            raise ApiError(422, f"unknown method {method!r}{hint}", close_matches=close)
        _check_content_type(image, "image")
        _check_content_type(mask, "mask")
        slot = slots.setdefault(method, _Slot())
        if slot.pending > queue_size:
            raise ApiError(503, f"busy, retry: {slot.pending} requests for {method!r} are running or queued "
                           f"(queue size {queue_size})", headers={"Retry-After": "1"})
        slot.pending += 1
        try:
            image_bytes, mask_bytes = await image.read(), await mask.read()
            async with slot.lock:
                png, seconds = await anyio.to_thread.run_sync(
                    lambda: _run_inpaint(image_bytes, mask_bytes, method, max_pixels, dilate=dilate,
                                         feather=feather, strategy=strategy))
        except ApiError:
            raise
        except Exception:
            log.exception("inpainting failed")
            raise ApiError(500, "internal error while inpainting (see the server log)") from None
        finally:
            slot.pending -= 1
        return Response(png, media_type="image/png", headers={"X-Inpaint-Seconds": f"{seconds:.4f}",
                                                              "Cache-Control": "no-store"})

    app.add_middleware(_BodyLimit, limit=max_upload_bytes)
    app.add_middleware(RequestGuard, allowed_hosts=hosts)  # added last = runs first, before any body read
    return app
