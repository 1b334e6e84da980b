"""The UI's variations control against an ICT built from random-weight tiny models (registered for these tests
only): K seeds give K different fills streamed with progress, the same seed gives the same fill, the fill kept
(POST /api/inpaint with its seed) is that variation, and a bad K is one clear 422."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
PIL = pytest.importorskip("PIL.Image")
from fastapi.testclient import TestClient  # noqa: E402

from torchworks.core.checkpoint import build_model, save_model  # noqa: E402
from torchworks.core.registry import INPAINTERS  # noqa: E402
from torchworks.inpainting import Inpainter  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chelsea_96x64.png"
METHOD = "ict_scenes"


@pytest.fixture(scope="module")
def ict_method(tmp_path_factory):
    """Registers ``ict_scenes`` with random-weight tiny models for this module only."""
    import torchworks.inpainting.ict  # noqa: F401  (registers the tiny prior and upsampler)
    from torchworks.inpainting import learned

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    prior = build_model("ict_prior_tiny")
    prior.palette.copy_(torch.rand(16, 3))
    entry = learned.ICT_SHIPPED[METHOD]
    save_model(root / entry["prior"], prior)
    save_model(root / entry["upsampler"], build_model("ict_upsampler_tiny"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCHWORKS_PRETRAINED_DIR", str(root))
        assert METHOD not in INPAINTERS.names()
        learned._register()
        try:
            yield METHOD
        finally:
            INPAINTERS._entries.pop(METHOD, None)  # test-only entry; the registry has no public removal
            INPAINTERS._meta.pop(METHOD, None)


@pytest.fixture(scope="module")
def client(ict_method):
    from torchworks.ui.server import create_app

    app = create_app(max_upload_bytes=200_000, max_pixels=100_000, queue_size=4, device="cpu")
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        yield c


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(PIL.open(io.BytesIO(data)).convert("RGB"))


PHOTO = np.asarray(PIL.open(FIXTURE).convert("RGB")).copy()
HOLE = np.zeros((64, 96), np.uint8)
HOLE[18:40, 30:62] = 255


def _files(mask: np.ndarray = HOLE) -> dict:
    return {"image": ("photo.png", _png(PHOTO), "image/png"), "mask": ("mask.png", _png(mask), "image/png")}


def _variations(client: TestClient, **fields) -> tuple[int, list[dict]]:
    data = {"method": METHOD, "dilate": "0", **{k: str(v) for k, v in fields.items()}}
    r = client.post("/api/variations", files=_files(), data=data)
    if r.status_code != 200:
        return r.status_code, [r.json()]
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return 200, [json.loads(line) for line in r.text.splitlines()]


def test_methods_mark_the_pluralistic_ones_and_the_bound(client):
    body = client.get("/api/methods").json()
    flags = {m["name"]: m["pluralistic"] for m in body["methods"]}
    assert flags[METHOD] is True and flags["telea"] is False
    assert not any(v for k, v in flags.items() if k != METHOD and not k.startswith("_"))  # "_": other tests' stubs
    assert body["max_samples"] == 8


def test_k_seeds_give_k_different_fills_with_progress(client):
    status, events = _variations(client, samples=3, seed=5)
    assert status == 200
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and kinds.count("variation") == 3 and "progress" in kinds
    assert kinds[0] == "progress"  # the transformer stage reports before the first fill is done
    done = [e["done"] for e in events if e["event"] in ("progress", "variation")]
    assert done == sorted(done) and done[-1] == events[0]["total"]
    shown = [e for e in events if e["event"] == "variation"]
    assert [v["seed"] for v in shown] == [5, 6, 7] and [v["index"] for v in shown] == [0, 1, 2]
    fills = [_pixels(base64.b64decode(v["png"])) for v in shown]
    assert all(np.array_equal(f[HOLE == 0], PHOTO[HOLE == 0]) for f in fills)  # known pixels bit-exact
    assert len({f[HOLE > 0].tobytes() for f in fills}) == 3  # three different completions


def test_same_seed_same_fill_and_keeping_one_returns_that_one(client):
    _, events = _variations(client, samples=2, seed=11)
    second = base64.b64decode([e for e in events if e["event"] == "variation"][1]["png"])
    _, again = _variations(client, samples=1, seed=12)
    assert base64.b64decode(again[-2]["png"]) == second  # seed 12 alone = variation 1 of seed 11
    kept = client.post("/api/inpaint", files=_files(), data={"method": METHOD, "seed": "12", "dilate": "0"})
    assert kept.status_code == 200 and kept.content == second  # keeping it: the full fill of that seed
    other = client.post("/api/inpaint", files=_files(), data={"method": METHOD, "seed": "11", "dilate": "0"})
    assert other.content != second


@pytest.mark.parametrize("k", [0, -2, 9])
def test_bad_k_is_one_clear_422(client, k):
    status, (body,) = _variations(client, samples=k)
    assert status == 422 and body == {"detail": f"samples must be between 1 and 8, got {k}"}


def test_a_non_number_k_and_a_single_answer_method_are_refused(client):
    r = client.post("/api/variations", files=_files(), data={"method": METHOD, "samples": "three"})
    assert r.status_code == 422 and r.json()["detail"].startswith("samples: ") and "'three'" in r.json()["detail"]
    r = client.post("/api/variations", files=_files(), data={"method": "telea", "samples": "3"})
    assert r.status_code == 422
    assert r.json()["detail"] == ("method 'telea' gives one completion per hole; variations need a pluralistic "
                                  "method (ict_*); use POST /api/inpaint")


def test_bad_mask_is_refused_before_anything_is_streamed(client):
    small = np.zeros((32, 48), np.uint8)
    r = client.post("/api/variations", files=_files(small), data={"method": METHOD})
    assert r.status_code == 422 and "must be the same size" in r.json()["detail"]
    r = client.post("/api/variations", files=_files(np.zeros_like(HOLE)), data={"method": METHOD})
    assert r.status_code == 422 and "hole" in r.json()["detail"]


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.timeout(180)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (/usr/bin/chromium)")
def test_page_shows_k_thumbnails_and_keeps_the_chosen_one_in_chromium(ict_method, client, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    pytest.importorskip("uvicorn")
    from test_ui_browser import ARGS
    from ui_server import serve

    from torchworks.ui.server import create_app

    (tmp_path / "photo.png").write_bytes(_png(PHOTO))
    (tmp_path / "mask.png").write_bytes(_png(HOLE))
    with serve(create_app(device="cpu")) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(url + "/")
            page.wait_for_selector(f"#method option[value={METHOD}]", state="attached")
            assert page.is_hidden("#variations-box")  # telea, the default: one completion, no control
            page.set_input_files("#file-image", str(tmp_path / "photo.png"))
            page.wait_for_selector("#view:not([hidden])")
            page.set_input_files("#file-mask", str(tmp_path / "mask.png"))
            page.select_option("#method", METHOD)
            assert page.is_visible("#variations-box") and page.input_value("#samples") == "3"
            page.fill("#samples", "9")
            page.click("#run")
            page.wait_for_selector("#status.error")
            assert page.text_content("#status") == 'Variations must be a whole number from 1 to 8, got "9".'
            page.fill("#samples", "3")
            page.fill("#seed", "5")
            page.click("#run")
            page.wait_for_selector("#variations figure:nth-child(3)")  # (the page's CSP forbids eval'd waits)
            page.wait_for_selector("#busy", state="hidden")
            captions = page.eval_on_selector_all("#variations figcaption span", "s => s.map(e => e.textContent)")
            assert "click one to keep it" in page.text_content("#status")
            assert page.is_hidden("#progress")
            page.click("#variations figure:nth-child(2) button")
            page.wait_for_selector("#variations figure.kept")
            kept = page.eval_on_selector_all("#variations figure", "f => f.map(e => e.classList.contains('kept'))")
            with page.expect_download() as download:
                page.click("#download")
            out = np.asarray(PIL.open(download.value.path()).convert("RGB"))
        finally:
            browser.close()
    assert captions == ["seed 5", "seed 6", "seed 7"] and kept == [False, True, False]
    expect = client.post("/api/inpaint", files=_files(), data={"method": METHOD, "seed": "6"})
    assert np.array_equal(out, _pixels(expect.content))  # the kept result is the fill of seed 6


# ---------------------------------------------------------------- streaming and cancellation on a real server

PRIOR_CALLS: list[int] = []


class SlowPrior(torch.nn.Module):
    """A 'transformer pass' of 40 ms, counted."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        PRIOR_CALLS.append(1)
        time.sleep(0.04)
        return x


class SlowPluralistic(Inpainter):
    """A pluralistic stand-in: ``steps`` passes of its prior, each reported to the ``progress`` callback as the
    ICT inpainter does, then a flat fill whose grey level is the seed's."""

    steps = 4

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.prior, self.progress = seed, SlowPrior(), None

    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for k in range(self.steps):
            self.prior(image)
            if self.progress is not None:
                self.progress(k + 1, self.steps)
        return torch.full_like(image, (self.seed % 10) / 10)


@pytest.fixture(scope="module")
def slow_method():
    INPAINTERS.add("_slow_plural", SlowPluralistic, kind="learned")
    yield "_slow_plural"
    INPAINTERS._entries.pop("_slow_plural", None)  # test-only entry
    INPAINTERS._meta.pop("_slow_plural", None)


def test_progress_streams_while_the_job_runs(slow_method):
    from ui_server import health, multipart, serve

    from torchworks.ui.server import create_app

    body, ctype = multipart({"method": slow_method, "samples": "3", "seed": "2"},
                            {"image": _png(PHOTO), "mask": _png(HOLE)})
    with serve(create_app(device="cpu")) as url:
        req = urllib.request.Request(f"{url}/api/variations", data=body, headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=60) as r:
            first = json.loads(r.readline())
            running_at_first = health(url)["load"]["running"]
            rest = [json.loads(line) for line in r.read().splitlines()]
    assert first == {"event": "progress", "stage": "transformer", "done": 1, "total": 15}
    assert running_at_first == 1  # the line arrived while the job was still running: streamed, not buffered
    events = [first, *rest]
    assert [e["done"] for e in events[:-1]] == list(range(1, 16))  # 4 passes + 1 fill per variation, in order
    shown = [e for e in events if e["event"] == "variation"]
    assert [v["seed"] for v in shown] == [2, 3, 4]
    levels = [int(_pixels(base64.b64decode(v["png"]))[HOLE > 0].mean()) for v in shown]
    assert levels == [51, 76, 102]  # grey 0.2, 0.3, 0.4 of seeds 2-4
    assert events[-1]["event"] == "done" and events[-1]["samples"] == 3


def test_a_client_leaving_mid_stream_stops_the_variations(slow_method):
    from ui_server import health, multipart, send_raw, serve, wait_for

    from torchworks.ui.server import create_app

    PRIOR_CALLS.clear()
    body, ctype = multipart({"method": slow_method, "samples": "8"}, {"image": _png(PHOTO), "mask": _png(HOLE)})
    with serve(create_app(device="cpu", max_jobs=1)) as url:
        sock = send_raw(url, "/api/variations", body, ctype)
        wait_for(lambda: len(PRIOR_CALLS) >= 6)  # into the second variation
        sock.close()
        at_close = len(PRIOR_CALLS)
        wait_for(lambda: health(url)["load"]["running"] == 0, timeout=10)
        calls = len(PRIOR_CALLS)
        time.sleep(0.2)
        assert len(PRIOR_CALLS) == calls  # nothing runs on
        assert calls < 32 and calls - at_close < 10, (at_close, calls)  # 8 x 4 passes had it run to its end
