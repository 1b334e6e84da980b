"""The page in a real browser: Debian's chromium driven headless by Playwright.

Loads the page, uploads a fixture photo, paints one horizontal stroke with mouse events, runs Telea, downloads
the PNG and checks it: changed inside the stroke, bit-identical to the upload far from it. A second test opens a
64x64 image, checks that it is shown enlarged (pixelated, a whole number of screen pixels per image pixel) and
that a stroke painted at a known place lands on those image pixels. A third opens a text file after a photo: the
photo stays shown and the status says why. Skips (with the reason) only where chromium or
Playwright is absent. ``TORCHWORKS_UI_SCREENSHOT=path`` also saves a screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
from PIL import Image  # noqa: E402
from ui_server import serve  # noqa: E402

from torchworks.ui.server import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# TORCHWORKS_UI_IMAGE swaps in a larger photo, e.g. for the docs screenshot (docs/ui.png used kodim23).
DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "fixtures" / "chelsea_96x64.png"
FIXTURE = Path(os.environ.get("TORCHWORKS_UI_IMAGE", DEFAULT_IMAGE))
# As the machine's probe starts it: no sandbox (root), and nothing that reaches for Google's servers.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (/usr/bin/chromium)")


@pytest.fixture(scope="module")
def server():
    with serve(create_app()) as url:
        yield url


@pytest.fixture
def page(server):
    """A fresh chromium page on the server's UI, its method list loaded."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(server + "/")
            page.wait_for_selector("#method option[value=telea]", state="attached")
            yield page
        finally:
            browser.close()


@pytest.mark.timeout(120)
def test_paint_a_stroke_and_inpaint_in_chromium(page, tmp_path):
    src = np.asarray(Image.open(FIXTURE).convert("RGB"))
    page.select_option("#method", "telea")
    page.set_input_files("#file-image", str(FIXTURE))
    page.wait_for_selector("#view:not([hidden])")
    page.fill("#brush-size", os.environ.get("TORCHWORKS_UI_BRUSH", "8"))
    page.dispatch_event("#brush-size", "input")
    box = page.locator("#mask").bounding_box()
    assert box and box["width"] > 0
    y = box["y"] + box["height"] * 0.5  # a stroke across the middle, from 30 % to 70 % of the width
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    for f in np.linspace(0.3, 0.7, 12):
        page.mouse.move(box["x"] + box["width"] * f, y)
    page.mouse.up()
    with page.expect_response(lambda r: r.url.endswith("/api/inpaint")) as info:
        page.click("#run")
    response = info.value
    assert response.status == 200, response.text()
    assert response.headers["content-type"] == "image/png"
    page.wait_for_selector("#img-after:not([hidden])")
    with page.expect_download() as download:  # the user's way out: the lossless PNG download
        page.click("#download")
    saved = download.value.path()
    out = np.asarray(Image.open(saved).convert("RGB"))
    if os.environ.get("TORCHWORKS_UI_SCREENSHOT"):
        page.screenshot(path=os.environ["TORCHWORKS_UI_SCREENSHOT"])
    assert out.shape == src.shape
    h, w = src.shape[:2]
    changed = np.any(out != src, axis=2)
    row = h // 2
    assert changed[row, int(w * 0.35):int(w * 0.65)].mean() > 0.5  # the stroke was filled
    # Far from the stroke (top and bottom quarters, left and right fifths) the upload comes back bit-exact.
    assert not changed[: h // 4].any() and not changed[3 * h // 4:].any()
    assert not changed[:, : w // 5].any() and not changed[:, 4 * w // 5:].any()


def segment_distance(h: int, w: int, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Distance of each pixel centre ((x + 0.5, y + 0.5) in image coordinates) to the segment a-b, (H, W)."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    (ax, ay), (bx, by) = a, b
    t = np.clip(((xs - ax) * (bx - ax) + (ys - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2), 0, 1)
    return np.hypot(xs - (ax + t * (bx - ax)), ys - (ay + t * (by - ay)))


@pytest.mark.timeout(120)
def test_small_image_is_enlarged_and_the_stroke_lands_in_image_pixels(page, tmp_path):
    small = tmp_path / "face_64.png"
    Image.open(DEFAULT_IMAGE).convert("RGB").crop((16, 0, 80, 64)).save(small)  # 64x64
    src = np.asarray(Image.open(small))
    brush = 6  # image pixels
    a, b = (12.0, 44.0), (40.0, 44.0)  # the stroke, image coordinates: low and left of centre
    page.select_option("#method", "telea")
    page.fill("#dilate", "0")
    page.set_input_files("#file-image", str(small))
    page.wait_for_selector("#view:not([hidden])")
    box = page.locator("#img-before").bounding_box()
    zoom = box["width"] / 64
    assert zoom >= 4 and box["height"] == pytest.approx(box["width"])  # enlarged, not 64 px on screen
    assert zoom == int(zoom)  # a whole number of screen pixels per image pixel (device scale 1)
    mask_box = page.locator("#mask").bounding_box()
    assert mask_box == pytest.approx(box)  # the mask canvas covers the image exactly
    assert page.eval_on_selector("#mask", "c => [c.width, c.height]") == [64, 64]  # image-pixel grid
    for sel in ("#img-before", "#mask"):
        assert page.eval_on_selector(sel, "e => getComputedStyle(e).imageRendering") == "pixelated"
    page.fill("#brush-size", str(brush))
    page.dispatch_event("#brush-size", "input")
    assert page.text_content("#brush-size-value") == f"{brush} px"

    def screen(p: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + p[0] * zoom, box["y"] + p[1] * zoom

    page.mouse.move(*screen(a))
    cursor = page.locator("#brush-cursor").bounding_box()  # the brush outline, scaled with the image
    assert cursor and cursor["width"] == pytest.approx(brush * zoom, abs=1.5)
    assert cursor["x"] + cursor["width"] / 2 == pytest.approx(screen(a)[0], abs=1.5)
    page.mouse.down()
    for f in np.linspace(0, 1, 15):
        page.mouse.move(*screen((a[0] + f * (b[0] - a[0]), a[1])))
    page.mouse.up()
    with page.expect_response(lambda r: r.url.endswith("/api/inpaint")) as info:
        page.click("#run")
    response = info.value
    assert response.status == 200, response.text()
    page.wait_for_selector("#img-after:not([hidden])")
    with page.expect_download() as download:  # Playwright keeps no body for this response: download it
        page.click("#download")
    out = np.asarray(Image.open(download.value.path()).convert("RGB"))
    assert out.shape == src.shape
    changed = np.any(out != src, axis=2)
    dist = segment_distance(64, 64, a, b)
    # Every changed pixel is one the brush touched: its centre within the radius plus half a pixel's diagonal.
    assert changed.any() and dist[changed].max() <= brush / 2 + 0.75, dist[changed].max()
    core = dist <= brush / 2 - 1  # pixels well inside the stroke were filled
    assert changed[core].mean() > 0.8, changed[core].mean()


@pytest.mark.timeout(120)
def test_opening_a_non_image_keeps_the_current_image_in_chromium(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n")
    assert page.eval_on_selector("#method", "s => s.value") == "telea"  # the ranking's first, not learned
    page.set_input_files("#file-image", str(FIXTURE))
    page.wait_for_selector("#view:not([hidden])")
    before = page.eval_on_selector("#img-before", "i => [i.src, i.naturalWidth, i.naturalHeight]")
    page.set_input_files("#file-image", str(notes))
    page.wait_for_selector("#status.error")
    status = page.text_content("#status")
    after = page.eval_on_selector("#img-before", "i => [i.src, i.naturalWidth, i.naturalHeight]")
    shown = page.eval_on_selector("#img-before", "i => i.complete && i.naturalWidth > 0")
    w, h = Image.open(FIXTURE).size
    assert before[1:] == [w, h] and after == before and shown  # same picture, still decoded (no broken icon)
    assert status.startswith("notes.txt: the browser cannot open it as an image") and "stays open" in status
