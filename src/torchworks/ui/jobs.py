"""Admission, cancellation and memory release for the UI server's inpainting jobs.

One :class:`Admission` per app bounds the work of the whole process, whatever the method:

* at most ``max_jobs`` inpainting calls run at once, on at most ``max_busy_pixels`` image pixels together (a
  call's memory grows with its pixels; see ``docs/results/inpainting.md``, "Web UI under load");
* at most ``queue_size`` more requests may be inside the server, reading their upload or waiting for the budget;
  a request beyond that gets 503 and its upload is dropped as it arrives, so the uploads held in memory are
  bounded too.

Waiting is first come, first served: a large photo at the head of the queue is not overtaken by small ones.

A job whose client disconnects is cancelled: while it waits it leaves the queue; while it runs, a
:class:`CancelToken` is checked between decoding steps and at every ``torch.nn.Module`` call (a process-wide
forward pre-hook, installed only while jobs run), so a learned model stops at its next layer. A single OpenCV call
(Telea, NS, FSR) cannot be interrupted: it finishes, and the job stops right after it.

A long job (the K variations of a pluralistic method) reports progress and partial results through a
:class:`ProgressFeed`, which the server streams to the page as they come.

When the last running job ends, :func:`release_memory` hands freed heap pages back to the system (``gc`` and
glibc's ``malloc_trim``), so the server's resident memory falls back after a burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import math
import platform
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
import torch

T = TypeVar("T")


class Busy(Exception):
    """The server holds as many requests as it may; the client should retry later (HTTP 503)."""


class JobCancelled(Exception):
    """The client went away, so the job stopped at its next checkpoint."""


class Admission:
    """Process-wide budget of running inpainting jobs (count and pixels) with a bounded FIFO queue.

    Args:
        max_jobs: inpainting calls that may run at once.
        max_busy_pixels: sum of width x height over the running calls.
        queue_size: requests that may be inside the server beyond the running ones (reading their upload or
            waiting for the budget); more get :class:`Busy`.

        on_idle: called (on the event loop) each time the last running job ends, e.g. to release memory.

    Use :meth:`enter`/:meth:`leave` around a whole request, and ``async with admission.run(pixels)`` (or
    :func:`run_job`) around the call itself. Everything runs on the event loop thread (no locks needed).
    """

    def __init__(self, max_jobs: int, max_busy_pixels: int, queue_size: int,
                 on_idle: Callable[[], None] | None = None) -> None:
        if max_jobs < 1 or max_busy_pixels < 1 or queue_size < 0:
            raise ValueError(f"the job budget must be positive (queue_size >= 0), got max_jobs={max_jobs}, "
                             f"max_busy_pixels={max_busy_pixels}, queue_size={queue_size}")
        self.max_jobs, self.max_busy_pixels, self.queue_size = max_jobs, max_busy_pixels, queue_size
        self.inside = 0  # requests entered and not yet left (reading, waiting or running)
        self.running = 0
        self.busy_pixels = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self.on_idle = on_idle
        self.mean_seconds: float | None = None  # running mean of job durations (exponential, weight 0.2)
        self._starts: list[float] = []  # monotonic start times of the running jobs

    @property
    def waiting(self) -> int:
        """Requests queued for the budget."""
        return len(self._waiters)

    def retry_after(self) -> int:
        """Seconds a refused client should wait: until the jobs now queued have run, at the recent mean job time
        (before any job has finished: the age of the oldest running one, a lower bound), from 1 to 60."""
        per_job = self.mean_seconds
        if per_job is None:
            per_job = time.monotonic() - min(self._starts) if self._starts else 1.0
        return max(1, min(60, math.ceil(per_job * (self.waiting + 1) / self.max_jobs)))

    def enter(self) -> None:
        """Counts a request in, or raises :class:`Busy` when ``max_jobs + queue_size`` are already inside."""
        if self.inside >= self.max_jobs + self.queue_size:
            raise Busy(f"busy, retry in {self.retry_after()} s: {self.running} inpainting jobs are running and "
                       f"{self.inside - self.running} more requests are queued (at most {self.max_jobs} running + "
                       f"{self.queue_size} queued)")
        self.inside += 1

    def leave(self) -> None:
        """Counts a request out (whatever became of it)."""
        self.inside -= 1

    def _fits(self, pixels: int) -> bool:
        return self.running < self.max_jobs and self.busy_pixels + pixels <= self.max_busy_pixels

    def _take(self, pixels: int) -> None:
        self.running += 1
        self.busy_pixels += pixels

    def _release(self, pixels: int) -> None:
        self.running -= 1
        self.busy_pixels -= pixels
        self._wake()
        if self.running == 0 and self.on_idle is not None:
            self.on_idle()

    def _wake(self) -> None:
        """Starts the waiters at the head of the queue while they fit."""
        while self._waiters and self._fits(self._waiters[0][0]):
            need, future = self._waiters.popleft()
            if not future.done():  # a cancelled waiter is skipped
                self._take(need)
                future.set_result(None)

    @contextlib.asynccontextmanager
    async def run(self, pixels: int) -> AsyncIterator[None]:
        """Waits (first come, first served) until ``pixels`` fit in the budget, holds them for the block.

        Raises:
            ValueError: ``pixels`` exceeds ``max_busy_pixels`` (it could never run).
        """
        if pixels > self.max_busy_pixels:
            raise ValueError(f"a job of {pixels:,} pixels exceeds the budget of {self.max_busy_pixels:,}")
        if not self._waiters and self._fits(pixels):
            self._take(pixels)
        else:
            entry = (pixels, asyncio.get_running_loop().create_future())
            self._waiters.append(entry)
            try:
                await entry[1]
            except BaseException:  # cancelled while waiting (the client left)
                if entry[1].done() and not entry[1].cancelled():
                    self._release(pixels)  # granted just as it was cancelled: hand the budget on
                elif entry in self._waiters:
                    self._waiters.remove(entry)
                    self._wake()  # it may have blocked the head of the queue
                raise
        start = time.monotonic()
        self._starts.append(start)
        try:
            yield
        finally:
            self._starts.remove(start)
            took = time.monotonic() - start
            self.mean_seconds = took if self.mean_seconds is None else 0.8 * self.mean_seconds + 0.2 * took
            self._release(pixels)


class CancelToken:
    """Set from the event loop when the client disconnects; checked by the worker thread running the job."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raises :class:`JobCancelled` once :meth:`cancel` was called."""
        if self._event.is_set():
            raise JobCancelled("the client disconnected")


_current = threading.local()
_hook_lock = threading.Lock()
_hook: dict[str, Any] = {"handle": None, "users": 0}


def _check_current(module: torch.nn.Module, args: Any) -> None:
    token = getattr(_current, "token", None)
    if token is not None:
        token.check()


@contextlib.contextmanager
def cancellable(token: CancelToken) -> Iterator[None]:
    """Within the block, every ``torch.nn.Module`` call on this thread raises :class:`JobCancelled` once
    ``token`` is cancelled. The process-wide hook exists only while some thread is inside such a block."""
    with _hook_lock:
        if _hook["users"] == 0:
            _hook["handle"] = torch.nn.modules.module.register_module_forward_pre_hook(_check_current)
        _hook["users"] += 1
    _current.token = token
    try:
        yield
    finally:
        _current.token = None
        with _hook_lock:
            _hook["users"] -= 1
            if _hook["users"] == 0:
                _hook["handle"].remove()
                _hook["handle"] = None


def _in_thread(work: Callable[[CancelToken], T], token: CancelToken) -> T:
    token.check()
    with cancellable(token):
        return work(token)


async def run_job(admission: Admission, pixels: int, work: Callable[[CancelToken], T],
                  disconnected: Awaitable[Any]) -> T:
    """Runs ``work(token)`` in a worker thread once ``admission`` has room for ``pixels``; cancels it when
    ``disconnected`` completes first (the client went away).

    The budget is held until the worker thread has really ended (a thread cannot be killed: ``work`` must check
    the token, which the module hook of :func:`cancellable` does for torch models).

    Raises:
        JobCancelled: ``disconnected`` completed before the job did.
    """
    token, started = CancelToken(), False

    async def job() -> T:
        nonlocal started
        async with admission.run(pixels):
            started = True
            return await anyio.to_thread.run_sync(_in_thread, work, token)

    job_task = asyncio.ensure_future(job())
    gone_task = asyncio.ensure_future(disconnected)
    try:
        await asyncio.wait({job_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this request itself is cancelled (server shutdown)
        gone_task.cancel()
        if not job_task.done():
            token.cancel()
            if not started:
                job_task.cancel()  # leave the queue; a running thread is stopped by the token instead
            await asyncio.wait({job_task})
    if token.cancelled:
        if not job_task.cancelled():
            job_task.exception()  # retrieved: a JobCancelled (or a late error) of a request nobody awaits
        raise JobCancelled("the client disconnected")
    return job_task.result()


class ProgressFeed:
    """Events a job's worker thread reports (progress, partial results), read in order on the event loop.

    Create it on the event loop; the worker calls it with a JSON-able dict from any thread. :meth:`events`
    yields them until the job has ended and every reported event was read, so a response can stream them.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def __call__(self, event: dict[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def events(self, job: asyncio.Future[Any]) -> AsyncIterator[dict[str, Any]]:
        """The reported events, in order, until ``job`` is done and the feed is empty."""
        while True:
            if not self._queue.empty():
                yield self._queue.get_nowait()
                continue
            if job.done():
                return
            getter = asyncio.ensure_future(self._queue.get())
            try:
                await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()  # nothing was taken: no event is lost
            if getter.done() and not getter.cancelled():
                yield getter.result()


def _malloc_trim() -> Any:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_memory() -> bool:
    """Collects garbage, empties accelerator caches and returns free heap pages to the system.

    glibc keeps freed memory in its arenas (one per worker thread) and only unmaps whole large blocks; after a
    burst of large images most of the heap is free but still resident. ``malloc_trim(0)`` releases the free pages
    of every arena. Elsewhere (musl, macOS, Windows) only the first two steps apply.

    Returns:
        True if ``malloc_trim`` ran and released memory.
    """
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        mps.empty_cache()
    return bool(_TRIM(0)) if _TRIM is not None else False


__all__ = ["Admission", "Busy", "CancelToken", "JobCancelled", "ProgressFeed", "cancellable", "release_memory",
           "run_job"]
