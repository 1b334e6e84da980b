"""The page in a real browser: Debian's chromium driven headless by Playwright.

Loads the page, uploads a fixture photo, paints one horizontal stroke with mouse events, runs Telea, downloads
the PNG and checks it: changed inside the stroke, bit-identical to the upload far from it. Skips (with the reason)
only where chromium or Playwright is absent. ``TORCHWORKS_UI_SCREENSHOT=path`` also saves a screenshot.
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


@pytest.mark.timeout(120)
def test_paint_a_stroke_and_inpaint_in_chromium(server, tmp_path):
    src = np.asarray(Image.open(FIXTURE).convert("RGB"))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(server + "/")
            page.wait_for_selector("#method option[value=telea]", state="attached")
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
        finally:
            browser.close()
    assert out.shape == src.shape
    h, w = src.shape[:2]
    changed = np.any(out != src, axis=2)
    row = h // 2
    assert changed[row, int(w * 0.35):int(w * 0.65)].mean() > 0.5  # the stroke was filled
    # Far from the stroke (top and bottom quarters, left and right fifths) the upload comes back bit-exact.
    assert not changed[: h // 4].any() and not changed[3 * h // 4:].any()
    assert not changed[:, : w // 5].any() and not changed[:, 4 * w // 5:].any()
