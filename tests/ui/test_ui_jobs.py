"""The UI server's process-wide job budget and the cancellation of work for clients that went away.

Unit tests drive :class:`Admission` on an event loop; the others run a real uvicorn server with test-only
inpainters that record how many run at once, or that are torch modules taking a while layer by layer.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from PIL import Image  # noqa: E402
from ui_server import health, multipart, send_raw, serve, wait_for  # noqa: E402

from torchworks.core.registry import INPAINTERS  # noqa: E402
from torchworks.inpainting import Inpainter  # noqa: E402
from torchworks.ui.jobs import Admission, Busy, CancelToken, JobCancelled, cancellable  # noqa: E402
from torchworks.ui.server import create_app  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chelsea_96x64.png"  # 96x64 = 6144 pixels


# ---------------------------------------------------------------- Admission on its own


async def hold(adm: Admission, name: object, pixels: int, started: list, gate: asyncio.Event) -> None:
    """A job of ``pixels`` that notes its start in ``started`` and runs until ``gate`` opens."""
    async with adm.run(pixels):
        started.append(name)
        await gate.wait()


def test_jobs_beyond_max_jobs_wait_in_arrival_order():
    async def scenario():
        adm, order, gate = Admission(max_jobs=2, max_busy_pixels=100, queue_size=5), [], asyncio.Event()
        tasks = [asyncio.create_task(hold(adm, i, 10, order, gate)) for i in range(5)]
        await asyncio.sleep(0.01)
        assert (adm.running, adm.waiting, adm.busy_pixels, order) == (2, 3, 20, [0, 1])
        gate.set()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4] and (adm.running, adm.waiting, adm.busy_pixels) == (0, 0, 0)

    asyncio.run(scenario())


def test_pixels_bound_the_running_jobs_and_a_large_head_is_not_overtaken():
    async def scenario():
        adm, started, gate = Admission(max_jobs=10, max_busy_pixels=100, queue_size=5), [], asyncio.Event()
        tasks = []
        for name, pixels in [("small", 60), ("big", 90), ("tiny", 10)]:  # big does not fit beside small; tiny
            tasks.append(asyncio.create_task(hold(adm, name, pixels, started, gate)))  # would, but big came first
            await asyncio.sleep(0.01)
        assert started == ["small"] and adm.waiting == 2 and adm.busy_pixels == 60
        gate.set()
        await asyncio.gather(*tasks)
        assert started == ["small", "big", "tiny"]
        with pytest.raises(ValueError, match="exceeds the budget"):
            async with adm.run(101):
                pass

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_queue_and_unblocks_the_next():
    async def scenario():
        adm, started, gate = Admission(max_jobs=1, max_busy_pixels=100, queue_size=5), [], asyncio.Event()
        first = asyncio.create_task(hold(adm, "first", 50, started, gate))
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(hold(adm, "gone", 50, started, gate))
        after = asyncio.create_task(hold(adm, "after", 50, started, gate))
        await asyncio.sleep(0.01)
        assert adm.waiting == 2
        gone.cancel()
        await asyncio.sleep(0.01)
        assert adm.waiting == 1 and started == ["first"]
        gate.set()
        await asyncio.gather(first, after)
        assert gone.cancelled() and started == ["first", "after"] and adm.busy_pixels == 0

    asyncio.run(scenario())


def test_enter_refuses_beyond_jobs_plus_queue_and_idle_is_reported():
    idle = []
    adm = Admission(max_jobs=2, max_busy_pixels=100, queue_size=1, on_idle=lambda: idle.append(adm.running))
    for _ in range(3):
        adm.enter()
    with pytest.raises(Busy, match=r"busy, retry in 1 s: .*at most 2 running \+ 1 queued"):
        adm.enter()
    adm.leave()
    adm.enter()  # room again

    async def scenario():
        async with adm.run(10):
            async with adm.run(10):
                pass
            assert idle == []  # one still runs
        assert idle == [0]

    asyncio.run(scenario())
    assert adm.mean_seconds is not None and adm.mean_seconds < 0.5
    with pytest.raises(ValueError, match="max_jobs=0"):
        Admission(max_jobs=0, max_busy_pixels=1, queue_size=0)


def test_retry_after_grows_with_the_queue_and_the_job_time():
    async def scenario():
        adm, started, gate = Admission(max_jobs=2, max_busy_pixels=100, queue_size=5), [], asyncio.Event()
        assert adm.retry_after() == 1  # nothing runs, nothing measured
        tasks = [asyncio.create_task(hold(adm, i, 10, started, gate)) for i in range(5)]
        await asyncio.sleep(1.05)
        assert 3 <= adm.retry_after() <= 10  # no job has finished: the oldest ran >= 1.05 s, x (3 queued + 1) / 2
        adm.mean_seconds = 10.0
        assert adm.waiting == 3 and adm.retry_after() == 20  # the 3 queued + this one, 2 at a time, 10 s each
        adm.mean_seconds = 100.0
        assert adm.retry_after() == 60  # capped
        gate.set()
        await asyncio.gather(*tasks)
        assert adm.mean_seconds < 100.0  # the quick jobs pulled the mean down

    asyncio.run(scenario())


def test_cancellable_stops_a_torch_model_at_its_next_layer():
    calls = []

    class Layer(torch.nn.Module):
        def forward(self, x):
            calls.append(1)
            if len(calls) == 3:
                token.cancel()  # as the event loop does when the client disconnects
            return x + 1

    token = CancelToken()
    model = torch.nn.Sequential(*[Layer() for _ in range(10)])
    with pytest.raises(JobCancelled), cancellable(token):
        model(torch.zeros(1))
    assert len(calls) == 3
    assert not torch.nn.modules.module._global_forward_pre_hooks  # the hook is gone once no job runs
    assert model(torch.zeros(1)).item() == 10  # and models outside a job are untouched


# ---------------------------------------------------------------- against a real server


class Gauge:
    """Counts how many test fills run at once."""

    def __init__(self) -> None:
        self.lock, self.active, self.peak, self.calls = threading.Lock(), 0, 0, 0

    def __enter__(self) -> None:
        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.active -= 1


GAUGE = Gauge()
LAYER_CALLS: list[str] = []


class GaugedFill(Inpainter):
    """Grey fill taking 0.1 s, counted by GAUGE."""

    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with GAUGE:
            time.sleep(0.1)
        return torch.full_like(image, 0.5)


class SlowLayer(torch.nn.Module):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        LAYER_CALLS.append(self.tag)
        time.sleep(0.03)
        return x


class LayeredFill(Inpainter):
    """A 'network' of 100 layers of 30 ms each (3 s in all), as a learned model is."""

    tag = "long"

    def __init__(self) -> None:
        self.net = torch.nn.Sequential(*[SlowLayer(self.tag) for _ in range(100)])

    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class LayeredFillB(LayeredFill):
    tag = "queued"


TEST_METHODS = {"_gauge_a": GaugedFill, "_gauge_b": GaugedFill, "_gauge_c": GaugedFill, "_layers": LayeredFill,
                "_layers_b": LayeredFillB}


@pytest.fixture(scope="module", autouse=True)
def test_methods():
    for name, cls in TEST_METHODS.items():
        INPAINTERS.add(name, cls, kind="classical")
    yield
    for name in TEST_METHODS:  # test-only entries; the registry has no public removal
        INPAINTERS._entries.pop(name, None)
        INPAINTERS._meta.pop(name, None)


def job(method: str) -> tuple[bytes, str]:
    mask = np.zeros((64, 96), np.uint8)
    mask[20:36, 30:55] = 255
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    return multipart({"method": method}, {"image": FIXTURE.read_bytes(), "mask": buf.getvalue()})


def post(url: str, body: bytes, ctype: str) -> int:
    req = urllib.request.Request(f"{url}/api/inpaint", data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def burst(url: str, methods: list[str]) -> list[int]:
    jobs = [job(m) for m in methods]
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda j: post(url, *j), jobs))


def test_one_budget_bounds_running_jobs_across_methods():
    GAUGE.peak = GAUGE.calls = 0
    with serve(create_app(max_jobs=2, queue_size=20)) as url:
        statuses = burst(url, ["_gauge_a", "_gauge_b", "_gauge_c"] * 4)
        assert statuses == [200] * 12
        assert GAUGE.calls == 12 and GAUGE.peak == 2  # per-method queues would have run 3 at once
        assert health(url)["load"] == {"running": 0, "waiting": 0, "busy_pixels": 0}


def test_pixel_budget_serialises_large_images():
    GAUGE.peak = GAUGE.calls = 0
    with serve(create_app(max_jobs=4, max_pixels=6144, max_busy_pixels=9000, queue_size=20)) as url:
        assert burst(url, ["_gauge_a", "_gauge_b"] * 3) == [200] * 6
    assert GAUGE.calls == 6 and GAUGE.peak == 1  # two 6,144-pixel images do not fit in 9,000


def test_a_disconnected_client_stops_its_running_job_early():
    LAYER_CALLS.clear()
    with serve(create_app(max_jobs=1)) as url:
        sock = send_raw(url, "/api/inpaint", *job("_layers"))
        wait_for(lambda: len(LAYER_CALLS) >= 5)  # the model is running
        sock.close()  # the client goes away
        at_close = len(LAYER_CALLS)
        wait_for(lambda: health(url)["load"]["running"] == 0, timeout=10)
        calls = len(LAYER_CALLS)
        time.sleep(0.2)
        assert len(LAYER_CALLS) == calls  # nothing runs on in the background
        assert calls < 100, calls  # the model did not run to its end
        assert calls - at_close < 34, (at_close, calls)  # it stopped within about a second (30 ms a layer)
        assert post(url, *job("_gauge_a")) == 200  # the budget was handed back


def test_a_disconnected_client_leaves_the_queue_and_its_job_never_runs():
    LAYER_CALLS.clear()
    with serve(create_app(max_jobs=1)) as url:
        running = send_raw(url, "/api/inpaint", *job("_layers"))
        wait_for(lambda: "long" in LAYER_CALLS)
        queued = send_raw(url, "/api/inpaint", *job("_layers_b"))
        wait_for(lambda: health(url)["load"]["waiting"] == 1)
        queued.close()
        wait_for(lambda: health(url)["load"]["waiting"] == 0, timeout=2)
        assert health(url)["load"]["running"] == 1  # the first job is unaffected...
        reply = running.recv(65536)
        while b"\r\n\r\n" not in reply:
            reply += running.recv(65536)
        running.close()
        assert reply.startswith(b"HTTP/1.1 200")  # ...and completes
        wait_for(lambda: health(url)["load"]["running"] == 0)
        time.sleep(0.1)
    assert LAYER_CALLS.count("long") == 100 and "queued" not in LAYER_CALLS
