"""The page's script (static/app.js) run in Node against a stand-in browser (page_harness.js): opening a file the
browser cannot decode keeps the image already open and says why, and the method list keeps the server's order.

The real-browser test (test_ui_browser.py) needs chromium; this one needs only ``node`` and skips without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from torchworks.ui.server import STATIC

NODE = shutil.which("node") or shutil.which("nodejs")
HARNESS = Path(__file__).resolve().parent / "page_harness.js"
pytestmark = pytest.mark.skipif(NODE is None, reason="node not installed (apt-get install nodejs)")


def play(scenario: str) -> dict:
    out = subprocess.run([NODE, str(HARNESS), str(STATIC / "app.js"), scenario], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("scenario, shown_type", [("non-image-keeps-image", "text/plain"),
                                                  ("broken-image-keeps-image", "image/jpeg")])
def test_a_file_that_does_not_decode_keeps_the_open_image_and_says_why(scenario, shown_type):
    got = play(scenario)
    first, after = got["first"], got["after"]
    assert first["image"] == {"name": "photo", "width": 40, "height": 30} and first["beforeSrc"] == "blob:1"
    assert after["image"] == first["image"]  # the photo stays the input
    assert after["beforeSrc"] == "blob:1"  # and stays on screen (no broken-image icon)
    assert after["canvas"] == [40, 30] and after["ops"] == 1  # the mask painted on it is kept
    assert got["revoked"] == ["blob:2"]  # only the refused file's URL is released, not the photo's
    assert after["statusError"]
    name = "notes.txt" if shown_type == "text/plain" else "broken.jpg"
    assert after["status"] == f"{name}: the browser cannot open it as an image ({shown_type}); photo stays open."


def test_a_non_image_before_any_image_says_why_and_opens_nothing():
    after = play("non-image-first")["after"]
    assert after["image"] is None and after["beforeSrc"] == ""
    assert after["statusError"] and after["status"] == "notes.txt: the browser cannot open it as an image (text/plain)."


def test_a_non_image_mask_keeps_the_painted_mask():
    after = play("mask-non-image")["after"]
    assert after["image"]["name"] == "photo" and after["beforeSrc"] == "blob:1"
    assert after["statusError"] and "the painted mask is kept" in after["status"]


def test_method_list_keeps_the_server_order_and_default():
    loaded = play("non-image-first")["loaded"]
    # The harness serves telea, ns (classical), lama_faces64 (learned), mean (baseline), default telea.
    assert loaded["methods"] == [{"label": "Classical", "names": ["telea", "ns"]},
                                 {"label": "Learned", "names": ["lama_faces64"]},
                                 {"label": "Baselines", "names": ["mean"]}]
    assert loaded["selected"] == ["telea"]
