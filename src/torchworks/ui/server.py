"""The local inpainting web UI: a FastAPI app serving one static page and a small multipart/JSON API.

Endpoints: ``GET /`` (the page), ``GET /api/methods``, ``POST /api/inpaint`` (multipart in, PNG out),
``POST /api/variations`` (K completions of one hole by a pluralistic method, streamed as NDJSON with the progress
of its transformer stage), ``GET /health``; OpenAPI at ``/openapi.json`` (always available) and ``/docs``
(Swagger UI, whose JavaScript and CSS FastAPI loads from a CDN: /docs needs a network, the page and the API do not).

Safety: the request body is buffered in memory and refused with 413 past ``max_upload_bytes``; images are
identified by their content (Pillow, PNG/JPEG/WebP/BMP/TIFF/GIF only) and refused with 422 past ``max_pixels``
before they are decoded; nothing is read from or written to a path a request names (multipart parts above 1 MB
are spooled by Starlette to anonymous files in the system temp dir, deleted when the request ends). One
process-wide budget, whatever the method, bounds memory: ``max_jobs`` calls run at once on at most
``max_busy_pixels`` pixels together, ``queue_size`` more requests may wait, the rest get 503 with ``Retry-After``
(their upload read and dropped, never held); the work of a client that disconnects is cancelled, and freed
memory is handed back to the system when the server falls idle (:mod:`torchworks.ui.jobs`). A request whose
``Host`` is not an allowed host gets 400 (DNS rebinding) and a POST from another site's page gets 403 (CSRF); see
:mod:`torchworks.ui.guard`.
Every error the API answers, request validation included, is an :class:`~torchworks.ui.schemas.ErrorResponse`.
The work itself (decoding, filling, encoding) is in :mod:`torchworks.ui.work`; this module holds the app, its
routes and the request limits.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

import torchworks.inpainting  # noqa: F401  (registers the classical methods)
from torchworks.core.registry import INPAINTERS
from torchworks.inpainting.api import inpaint, is_pluralistic
from torchworks.ui.guard import LOOPBACK_HOSTS, RequestGuard, check_hosts
from torchworks.ui.jobs import Admission, Busy, CancelToken, JobCancelled, ProgressFeed, release_memory, run_job
from torchworks.ui.ranking import methods_by_quality
from torchworks.ui.schemas import ErrorResponse, HealthResponse, Limits, Load, MethodInfo, MethodsResponse
from torchworks.ui.work import ApiError, check_content_type, identify, run_inpaint, run_variations

log = logging.getLogger("torchworks.ui")

STATIC = Path(__file__).resolve().parent / "static"
INPAINT_PATH = "/api/inpaint"
VARIATIONS_PATH = "/api/variations"
MAX_SAMPLES = 8
"""Most variations one request may ask for (each costs a full fill; the page shows them side by side)."""
API_TAKES_DEVICE = "device" in inspect.signature(inpaint).parameters
CLIENT_GONE = 499  # nginx's "client closed request": only the access log sees it
# The page's own assets only: a CDN reference would be blocked, so "works offline" cannot silently regress.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
ERRORS = {code: {"model": ErrorResponse} for code in (400, 403, 413, 422, 500, 501, 503)}


def list_methods() -> list[MethodInfo]:
    """Every registered inpainter, best for natural photos first (:func:`~torchworks.ui.ranking.methods_by_quality`;
    learned models are registered by ``inpainting.nets``)."""
    try:
        import importlib

        importlib.import_module("torchworks.inpainting.nets")
    except ImportError:  # learned models are optional; classical ones are always there
        pass
    infos = []
    for name in methods_by_quality():
        kind = INPAINTERS.meta(name).get("kind")
        doc = (INPAINTERS.get(name).__doc__ or "").strip().splitlines()
        infos.append(MethodInfo(name=name, kind=kind if kind in ("learned", "baseline") else "classical",
                                description=doc[0] if doc else "", pluralistic=is_pluralistic(name)))
    return infos


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


class _Admit:
    """ASGI middleware: counts each inpainting request into the :class:`Admission` before its body is buffered;
    when the server is full, the body is read and dropped (never held: a burst cannot pile uploads up in memory)
    and 503 answered. Reading it first lets the client finish sending and read the answer; refusing mid-upload
    and closing would break its pipe instead."""

    def __init__(self, app: Any, admission: Admission, drain_limit: int) -> None:
        self.app, self.admission, self.drain_limit = app, admission, drain_limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in (INPAINT_PATH, VARIATIONS_PATH):
            await self.app(scope, receive, send)
            return
        try:
            self.admission.enter()
        except Busy as exc:
            size, more = 0, True
            while more and size <= self.drain_limit:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
            headers = {"Retry-After": str(self.admission.retry_after()), **({"Connection": "close"} if more else {})}
            body = ErrorResponse(detail=str(exc)).model_dump(exclude_none=True)
            await JSONResponse(body, status_code=503, headers=headers)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()


def _validation_detail(exc: RequestValidationError) -> str:
    """One sentence for FastAPI's list of validation errors, naming each offending field."""
    parts, missing = [], []
    for err in exc.errors():
        name = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "header", "path"))
        if err.get("type") == "missing":
            missing.append(name)
        else:
            parts.append(f"{name}: {err.get('msg', 'invalid')} (got {err.get('input')!r})")
    if missing:
        files = [m for m in missing if m in ("image", "mask")]
        hint = (" (send the photo and the mask as files in a multipart/form-data body, e.g. curl -F image=@photo.jpg "
                "-F mask=@mask.png)") if files else ""
        parts.insert(0, f"missing form field{'s' if len(missing) > 1 else ''} "
                     f"{', '.join(repr(m) for m in missing)}{hint}")
    return "; ".join(parts) or "invalid request"


def create_app(max_upload_bytes: int = 20 * 2**20, max_pixels: int = 25_000_000, queue_size: int = 8,
               allowed_hosts: Sequence[str] = LOOPBACK_HOSTS, max_jobs: int = 2, max_busy_pixels: int | None = None,
               device: str = "auto") -> FastAPI:
    """The ASGI app of ``torchworks ui``.

    Args:
        max_upload_bytes: largest request body (image + mask + fields); larger ones get 413.
        max_pixels: largest width x height of an uploaded image or mask; larger ones get 422.
        queue_size: requests that may wait beyond the running ones, whatever their method; more get 503
            "busy, retry" (their upload is dropped as it arrives, never held).
        allowed_hosts: names the server may be reached by (its ``Host`` header, any port); others get 400.
            ``*.lan`` matches sub-domains, ``*`` disables the check. Cross-origin POSTs get 403 regardless.
        max_jobs: inpainting calls that run at once, over all methods.
        max_busy_pixels: width x height summed over the running calls (default ``max_pixels``: one photo of the
            largest accepted size runs alone); must be at least ``max_pixels``.
        device: where learned models run: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns:
        The FastAPI app; serve it with uvicorn.

    Raises:
        ValueError: a limit out of range, a malformed host name, or a device this machine does not have.
    """
    from torchworks.core.device import resolve_device

    if max_upload_bytes <= 0 or max_pixels <= 0 or queue_size < 0:
        raise ValueError(f"limits must be positive (queue_size >= 0), got max_upload_bytes={max_upload_bytes}, "
                         f"max_pixels={max_pixels}, queue_size={queue_size}")
    busy_pixels = max_pixels if max_busy_pixels is None else max_busy_pixels
    if busy_pixels < max_pixels:
        raise ValueError(f"max_busy_pixels ({busy_pixels:,}) is below max_pixels ({max_pixels:,}): an image of the "
                         "largest accepted size could never run")
    dev = str(resolve_device(device))
    if dev != "cpu" and not API_TAKES_DEVICE:
        raise ValueError(f"device {dev!r}: this version of torchworks.inpainting.api.inpaint runs on the CPU only")
    device_opts = {"device": dev} if API_TAKES_DEVICE else {}
    hosts = check_hosts(allowed_hosts)  # now, not at the first request (Starlette builds middleware lazily)
    app = FastAPI(title="torchworks inpainting", version="0.1.0",
                  description="Local inpainting server behind `torchworks ui`. Masks: white = hole. "
                  "`/openapi.json` works offline; this page loads Swagger UI from a CDN.")
    trims: set[asyncio.Task] = set()

    def trim_when_idle() -> None:  # the last running job ended: hand freed memory back (in a thread, once)
        if not trims:
            task = asyncio.get_running_loop().create_task(anyio.to_thread.run_sync(release_memory))
            trims.add(task)
            task.add_done_callback(trims.discard)

    admission = Admission(max_jobs, busy_pixels, queue_size, on_idle=trim_when_idle)
    limits = Limits(max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, queue_size=queue_size,
                    max_jobs=max_jobs, max_busy_pixels=busy_pixels)

    @app.exception_handler(ApiError)
    async def _api_error(request: Any, exc: ApiError) -> JSONResponse:
        body = ErrorResponse(detail=exc.detail, close_matches=exc.close_matches).model_dump(exclude_none=True)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Any, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(ErrorResponse(detail=_validation_detail(exc)).model_dump(exclude_none=True),
                            status_code=422)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_CSP,
                                                            "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", response_model=HealthResponse)
    async def health() -> HealthResponse:
        """Liveness, the limits the page checks before uploading, and the jobs under way."""
        return HealthResponse(device=dev, limits=limits, load=Load(
            running=admission.running, waiting=admission.waiting, busy_pixels=admission.busy_pixels))

    @app.get("/api/methods", response_model=MethodsResponse)
    async def methods() -> MethodsResponse:
        """Every registered inpainter, the best for natural photos first; the first is the default."""
        infos = list_methods()
        return MethodsResponse(methods=infos, default=infos[0].name, max_samples=MAX_SAMPLES)

    def check_method(method: str) -> None:
        if method not in INPAINTERS:
            close = INPAINTERS.close_matches(method)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(INPAINTERS.names())}"
            raise ApiError(422, f"unknown method {method!r}{hint}", close_matches=close)

    async def read_pair(image: UploadFile, mask: UploadFile) -> tuple[Any, Any]:
        check_content_type(image, "image")
        check_content_type(mask, "mask")
        return identify(await image.read(), "image", max_pixels), identify(await mask.read(), "mask", max_pixels)

    @app.post(INPAINT_PATH, response_class=Response, responses={
        200: {"content": {"image/png": {}}, "description": "the inpainted image, PNG (lossless); header "
              "X-Inpaint-Seconds gives the time of the inpainting call"}, **ERRORS})
    async def inpaint_endpoint(
        request: Request,
        image: Annotated[UploadFile, File(description="photo: PNG, JPEG, WebP, BMP, TIFF or GIF")],
        mask: Annotated[UploadFile, File(description="mask of the same size, white (non-zero) = hole")],
        method: Annotated[str, Form(description="a name from GET /api/methods")] = "telea",
        dilate: Annotated[int | None, Form(ge=0, le=256, description="grow the hole by N pixels first")] = None,
        feather: Annotated[bool | None, Form(description="blend the dilation ring into the photo")] = None,
        strategy: Annotated[Literal["auto", "full", "crop", "resize"], Form()] = "auto",
        seed: Annotated[int | None, Form(description="pluralistic methods: the seed of the completion (the same "
                                         "seed gives the same fill; default 0); ignored by the others")] = None,
    ) -> Response:
        """Fills the white part of the mask; pixels outside the (dilated) hole come back bit for bit."""
        check_method(method)
        img, msk = await read_pair(image, mask)
        seeded = {"seed": seed} if seed is not None and is_pluralistic(method) else {}

        def work(token: CancelToken) -> tuple[bytes, float]:
            return run_inpaint(token, img, msk, method, dilate=dilate, feather=feather, strategy=strategy,
                                **device_opts, **seeded)

        try:
            png, seconds = await run_job(admission, img.size[0] * img.size[1], work, _disconnect(request))
        except ApiError:
            raise
        except JobCancelled:
            log.info("client left: %s job on %dx%d cancelled", method, *img.size)
            return Response(status_code=CLIENT_GONE)
        except Exception:
            log.exception("inpainting failed")
            raise ApiError(500, "internal error while inpainting (see the server log)") from None
        return Response(png, media_type="image/png", headers={"X-Inpaint-Seconds": f"{seconds:.4f}",
                                                              "Cache-Control": "no-store"})

    @app.post(VARIATIONS_PATH, response_class=StreamingResponse, responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "one JSON object a line: `progress` "
              "{stage, done, total} while the transformer runs, `variation` {index, seed, seconds, done, total, "
              "png: base64 PNG} as each fill is done, then `done` {samples, seconds}; a failure after the first "
              "line is an `error` {status, detail} line"}, **ERRORS})
    async def variations_endpoint(
        request: Request,
        image: Annotated[UploadFile, File(description="photo: PNG, JPEG, WebP, BMP, TIFF or GIF")],
        mask: Annotated[UploadFile, File(description="mask of the same size, white (non-zero) = hole")],
        method: Annotated[str, Form(description="a pluralistic method (`pluralistic` in GET /api/methods)")],
        samples: Annotated[int, Form(description=f"how many completions, 1..{MAX_SAMPLES}")] = 3,
        seed: Annotated[int, Form(description="variation i uses seed + i (as `torchworks inpaint --samples "
                                  "K --seed S`); POST /api/inpaint with that seed gives the same fill")] = 0,
        dilate: Annotated[int | None, Form(ge=0, le=256, description="grow the hole by N pixels first")] = None,
        feather: Annotated[bool | None, Form(description="blend the dilation ring into the photo")] = None,
        strategy: Annotated[Literal["auto", "full", "crop", "resize"], Form()] = "auto",
    ) -> Response:
        """Several completions of one hole by a pluralistic method, streamed with the progress of its slow stage.

        Every refusal (unknown or single-answer method, ``samples`` out of range, a bad image or mask) is an
        :class:`ErrorResponse` with its status, answered before the first line is streamed.
        """
        check_method(method)
        if not is_pluralistic(method):
            raise ApiError(422, f"method {method!r} gives one completion per hole; variations need a pluralistic "
                           "method (ict_*); use POST /api/inpaint")
        if not 1 <= samples <= MAX_SAMPLES:
            raise ApiError(422, f"samples must be between 1 and {MAX_SAMPLES}, got {samples}")
        img, msk = await read_pair(image, mask)
        feed = ProgressFeed()

        def work(token: CancelToken) -> dict[str, Any]:
            return run_variations(token, feed, img, msk, method, samples, seed, device_opts.get("device"),
                                   dilate=dilate, feather=feather, strategy=strategy)

        job = asyncio.ensure_future(run_job(admission, img.size[0] * img.size[1], work, _disconnect(request)))
        events = feed.events(job)
        try:
            first = await anext(events, None)  # the model runs: the input was accepted, the answer is 200
        except BaseException:  # this request was cancelled (server shutdown): stop the work too
            job.cancel()
            raise
        if first is None:  # ended before its first report: an error to answer with its status, or nothing to show
            return _job_outcome(job, method, img.size)

        async def lines() -> AsyncIterator[bytes]:
            try:
                yield (json.dumps(first) + "\n").encode()
                async for event in events:
                    yield (json.dumps(event) + "\n").encode()
                try:
                    last = job.result()
                except ApiError as exc:
                    last = {"event": "error", "status": exc.status, "detail": exc.detail}
                except JobCancelled:
                    return
                except Exception:
                    log.exception("variations failed")
                    last = {"event": "error", "status": 500, "detail": "internal error while inpainting (see the "
                            "server log)"}
                yield (json.dumps(last) + "\n").encode()
            finally:
                if not job.done():  # the response was abandoned: stop the work
                    job.cancel()
                    await asyncio.wait({job})

        return StreamingResponse(lines(), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    app.add_middleware(_BodyLimit, limit=max_upload_bytes)
    app.add_middleware(_Admit, admission=admission, drain_limit=max_upload_bytes)  # a full server: 503, body dropped
    app.add_middleware(RequestGuard, allowed_hosts=hosts)  # added last = runs first, before any body read
    app.state.admission = admission
    return app


def _job_outcome(job: asyncio.Future[Any], method: str, size: tuple[int, int]) -> Response:
    """The answer for a variations job that ended before reporting anything (its error, as a plain response)."""
    try:
        last = job.result()
    except ApiError:
        raise
    except JobCancelled:
        log.info("client left: %s variations on %dx%d cancelled", method, *size)
        return Response(status_code=CLIENT_GONE)
    except Exception:
        log.exception("variations failed")
        raise ApiError(500, "internal error while inpainting (see the server log)") from None
    return Response(json.dumps(last) + "\n", media_type="application/x-ndjson")


async def _disconnect(request: Request) -> None:
    """Returns when the client has gone away (the ASGI server's ``http.disconnect``)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
