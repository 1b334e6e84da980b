"""A burst of 50 concurrent requests against a real uvicorn server: each completes or gets a clean 503."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
from PIL import Image  # noqa: E402
from ui_server import multipart, serve  # noqa: E402

from torchworks.core.registry import INPAINTERS  # noqa: E402
from torchworks.inpainting import Inpainter, inpaint  # noqa: E402
from torchworks.ui.server import create_app  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chelsea_96x64.png"
SLOW = "_test_slow_fill"


class SlowFill(Inpainter):
    """Grey fill that takes a while, so a burst is sure to overflow the queue."""

    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        time.sleep(0.15)
        return torch.full_like(image, 0.5)


@pytest.fixture(scope="module")
def server():
    INPAINTERS.add(SLOW, SlowFill, kind="classical")
    try:
        with serve(create_app(queue_size=3)) as url:
            yield url
    finally:
        INPAINTERS._entries.pop(SLOW, None)  # test-only entry; the registry has no public removal
        INPAINTERS._meta.pop(SLOW, None)


def request(url: str, body: bytes | None = None, ctype: str | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype} if ctype else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_burst_of_50_completes_or_gets_clean_503(server):
    mask = np.zeros((64, 96), np.uint8)
    mask[20:36, 30:55] = 255
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    files = {"image": FIXTURE.read_bytes(), "mask": buf.getvalue()}
    expected = np.asarray(inpaint(Image.open(FIXTURE), Image.fromarray(mask), method="telea"))
    jobs = [multipart({"method": SLOW if i % 2 else "telea"}, files) for i in range(50)]
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda job: request(f"{server}/api/inpaint", *job), jobs))
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {200, 503}, statuses
    for job_index, (status, headers, body) in enumerate(results):
        if status == 503:
            detail = json.loads(body)["detail"]
            assert detail.startswith(f"busy, retry in {headers['retry-after']} s: ")
            assert 1 <= int(headers["retry-after"]) <= 60
        elif job_index % 2 == 0:  # telea answers are the Python API's, bit for bit
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), expected)
    slow = [statuses[i] for i in range(1, 50, 2)]
    assert 200 in slow and 503 in slow  # the server (2 running + 3 waiting, any method) overflowed
    assert statuses.count(200) >= 4
    status, _, body = request(f"{server}/health")  # and the server is still up
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, _ = request(f"{server}/api/inpaint", *jobs[0])  # and still serves
    assert status == 200
