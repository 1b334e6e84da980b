"""The UI server's API as a script or the page meets it: methods, a bit-exact round trip, and every refusal."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
PIL = pytest.importorskip("PIL.Image")
from fastapi.testclient import TestClient  # noqa: E402

from torchworks.core.registry import INPAINTERS  # noqa: E402
from torchworks.inpainting import inpaint  # noqa: E402
from torchworks.ui.ranking import methods_by_quality  # noqa: E402
from torchworks.ui.schemas import ErrorResponse  # noqa: E402
from torchworks.ui.server import STATIC, create_app  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chelsea_96x64.png"


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def box_mask(h: int = 64, w: int = 96) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[20:36, 30:55] = 255
    return mask


def post(client: TestClient, image: bytes, mask: bytes, image_type: str = "image/png", **fields: str):
    files = {"image": ("photo.png", image, image_type), "mask": ("mask.png", mask, "image/png")}
    return client.post("/api/inpaint", files=files, data={"method": "telea", **fields})


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(max_upload_bytes=200_000, max_pixels=100_000, queue_size=4)
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:  # a Host the server trusts
        yield c


def test_methods_come_best_for_photos_first_and_the_first_is_the_default(client):
    r = client.get("/api/methods")
    assert r.status_code == 200
    body = r.json()
    names = [m["name"] for m in body["methods"]]
    assert sorted(names) == INPAINTERS.names()
    assert names[:3] == ["telea", "ns", "fsr"] and body["default"] == "telea"  # not "learned first"
    assert names == methods_by_quality()
    kinds = [m["kind"] for m in body["methods"]]
    assert kinds == [{"learned": "learned", "baseline": "baseline"}.get(INPAINTERS.meta(n).get("kind"), "classical")
                     for n in names]
    learned = [i for i, k in enumerate(kinds) if k == "learned"]
    assert all(i > names.index("fsr") for i in learned)
    assert all(m["description"] for m in body["methods"])


def test_ranking_published_by_the_inpainting_package_wins(monkeypatch):
    import torchworks.inpainting.api as api

    monkeypatch.setattr(api, "methods_by_quality", lambda: ["mean", "ns", "not_registered"], raising=False)
    order = methods_by_quality()
    assert order[:2] == ["mean", "ns"] and "not_registered" not in order
    assert sorted(order) == INPAINTERS.names()
    assert methods_by_quality(["blur", "telea", "ns"]) == ["ns", "telea", "blur"]  # classical, then baseline


def test_health_reports_limits_load_and_device(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "device": "cpu",
                        "limits": {"max_upload_bytes": 200_000, "max_pixels": 100_000, "queue_size": 4,
                                   "max_jobs": 2, "max_busy_pixels": 100_000},
                        "load": {"running": 0, "waiting": 0, "busy_pixels": 0}}


@pytest.mark.parametrize("method", ["telea", "mean"])
def test_round_trip_is_bit_exact_with_the_python_api(client, method):
    image_bytes = FIXTURE.read_bytes()
    mask = box_mask()
    r = client.post("/api/inpaint", files={"image": ("chelsea.png", image_bytes, "image/png"),
                                           "mask": ("mask.png", png_bytes(mask), "image/png")},
                    data={"method": method, "dilate": "2"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert float(r.headers["X-Inpaint-Seconds"]) >= 0
    got = np.asarray(PIL.open(io.BytesIO(r.content)))
    src = PIL.open(FIXTURE)
    expected = np.asarray(inpaint(src, PIL.fromarray(mask), method=method, dilate=2))
    assert got.dtype == expected.dtype and got.shape == expected.shape == (64, 96, 3)
    np.testing.assert_array_equal(got, expected)
    original = np.asarray(src)
    grown = np.zeros_like(mask)
    grown[18:38, 28:57] = 255  # the hole dilated by 2 (square bound)
    np.testing.assert_array_equal(got[grown == 0], original[grown == 0])  # outside the hole: unchanged
    assert (got[mask > 0] != original[mask > 0]).any()


def test_options_and_grey_png_round_trip(client):
    grey = np.asarray(PIL.open(FIXTURE).convert("L"))
    r = post(client, png_bytes(grey), png_bytes(box_mask()), feather="true", dilate="3", strategy="full")
    assert r.status_code == 200, r.text
    got = PIL.open(io.BytesIO(r.content))
    assert got.mode == "L"
    expected = inpaint(grey, box_mask(), method="telea", dilate=3, feather=True, strategy="full")
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_too_large_upload_is_413_with_a_clear_message(client):
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)  # ~270 kB PNG
    r = post(client, png_bytes(noise), png_bytes(np.zeros((300, 300), np.uint8)))
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert "upload too large" in detail and "limit" in detail and "--max-upload-mb" in detail


def test_chunked_upload_without_length_is_cut_at_the_limit(client):
    def chunks():
        for _ in range(50):
            yield b"x" * 10_000  # 500 kB in all, no Content-Length

    r = client.post("/api/inpaint", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    assert "more than" in r.json()["detail"]


def test_too_many_pixels_is_422(client):
    big = np.zeros((400, 400), np.uint8)  # 160,000 px > 100,000, and tiny as a PNG
    r = post(client, png_bytes(big), png_bytes(big))
    assert r.status_code == 422
    assert "400x400" in r.json()["detail"] and "100,000" in r.json()["detail"]


def test_non_image_is_422_by_content_not_header(client):
    mask = png_bytes(box_mask())
    r = post(client, b"GIF89a? not really an image at all", mask)  # says image/png, is not
    assert r.status_code == 422
    assert "image: not a supported image" in r.json()["detail"]
    r = post(client, FIXTURE.read_bytes(), mask, image_type="text/plain")
    assert r.status_code == 422
    assert "text/plain" in r.json()["detail"]
    r = post(client, b"", mask)
    assert r.status_code == 422 and "empty" in r.json()["detail"]


def test_mismatched_sizes_name_both(client):
    r = post(client, FIXTURE.read_bytes(), png_bytes(box_mask(40, 50)))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "50x40" in detail and "96x64" in detail


def test_all_zero_mask_is_422(client):
    r = post(client, FIXTURE.read_bytes(), png_bytes(np.zeros((64, 96), np.uint8)))
    assert r.status_code == 422
    assert "no hole" in r.json()["detail"]


def test_unknown_method_is_422_with_close_names(client):
    r = post(client, FIXTURE.read_bytes(), png_bytes(box_mask()), method="tellea")
    assert r.status_code == 422
    body = r.json()
    assert "tellea" in body["detail"] and "telea" in body["close_matches"]


def test_bad_form_values_are_422_in_the_error_format(client):
    r = post(client, FIXTURE.read_bytes(), png_bytes(box_mask()), strategy="tile")
    assert r.status_code == 422 and set(r.json()) == {"detail"}
    assert r.json()["detail"].startswith("strategy: ") and "'tile'" in r.json()["detail"]
    r = post(client, FIXTURE.read_bytes(), png_bytes(box_mask()), dilate="-1")
    assert r.status_code == 422 and r.json()["detail"].startswith("dilate: ") and "'-1'" in r.json()["detail"]


@pytest.mark.parametrize("files, missing", [
    ({"mask": ("mask.png", b"x", "image/png")}, "missing form field 'image'"),
    ({"image": ("photo.png", b"x", "image/png")}, "missing form field 'mask'"),
    ({}, "missing form fields 'image', 'mask'"),
])
def test_missing_upload_field_follows_the_error_format(client, files, missing):
    r = client.post("/api/inpaint", files=files or None, data={"method": "telea"})
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)  # ErrorResponse, not FastAPI's list
    assert ErrorResponse.model_validate(body).detail == body["detail"]
    assert body["detail"].startswith(missing) and "multipart/form-data" in body["detail"]


def test_json_body_instead_of_a_form_names_the_missing_files(client):
    r = client.post("/api/inpaint", json={"image": "photo.png"})
    assert r.status_code == 422
    assert r.json() == {"detail": r.json()["detail"]} and "'image', 'mask'" in r.json()["detail"]


def test_openapi_documents_the_api(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/inpaint", "/api/methods", "/health"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/inpaint"]["post"]["requestBody"]["content"]
    assert "ErrorResponse" in spec["components"]["schemas"]


URL = re.compile(r"(?:https?:)?//[\w.-]+\.\w", re.I)


def test_page_is_served_and_references_only_local_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/app.js" in assets and "/static/app.css" in assets
    assert all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for name in ("app.js", "app.css"):
        served = client.get(f"/static/{name}")
        assert served.status_code == 200
        assert served.text == (STATIC / name).read_text(encoding="utf-8")
    for text in (html, client.get("/static/app.js").text, client.get("/static/app.css").text):
        assert "http://" not in text and "https://" not in text
        assert not URL.search(text), URL.search(text)


def test_static_files_cannot_escape_their_folder(client):
    r = client.get("/static/../server.py")
    assert r.status_code == 404
    r = client.get("/static/%2e%2e/server.py")
    assert r.status_code == 404


def test_cli_ui_help():
    out = subprocess.run([sys.executable, "-m", "torchworks.cli.main", "ui", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for flag in ("--host", "--port", "--max-upload-mb", "--max-pixels", "--allow-host", "DNS rebinding", "127.0.0.1",
                 "--max-jobs", "--max-busy-pixels", "--device"):
        assert flag in out.stdout


def absent_devices() -> list[str]:
    import torch

    absent = ["tpu"]
    if not torch.cuda.is_available():
        absent += ["cuda", "cuda:0"]
    if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        absent.append("mps")
    return absent


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from torchworks.cli.main import main

    code = main(["ui", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("device", absent_devices())
def test_cli_ui_absent_device_is_one_line_and_exit_2(capsys, device):
    code, out, err = run_cli(capsys, "--device", device, "--port", "1")
    assert code == 2
    assert out == ""  # nothing served, nothing announced
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchworks ui: error: ") and repr(device) in lines[0]


@pytest.mark.parametrize("flags, words", [(["--max-jobs", "0"], "max_jobs=0"),
                                          (["--max-pixels", "1000", "--max-busy-pixels", "999"], "max_busy_pixels")])
def test_cli_ui_bad_budget_is_one_line_and_exit_2(capsys, flags, words):
    code, out, err = run_cli(capsys, *flags)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err


def test_cpu_device_is_reported_and_an_absent_one_refused():
    import torch

    app = create_app(device="cpu")
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        assert c.get("/health").json()["device"] == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            create_app(device="cuda")


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_pixels"):
        create_app(max_pixels=0)


def test_device_reaches_the_api_when_it_takes_one(monkeypatch):
    import torchworks.ui.server as server
    import torchworks.ui.work as work

    seen = []

    def fake_inpaint(image, mask, method="telea", *, device=None, **opts):
        seen.append((method, device))
        return image

    monkeypatch.setattr(work, "inpaint", fake_inpaint)
    monkeypatch.setattr(server, "API_TAKES_DEVICE", True)
    with TestClient(create_app(device="cpu"), base_url="http://127.0.0.1:8765") as c:
        assert post(c, FIXTURE.read_bytes(), png_bytes(box_mask())).status_code == 200
    assert seen == [("telea", "cpu")]
    monkeypatch.setattr(server, "API_TAKES_DEVICE", False)  # an API without device=: nothing extra is passed
    seen.clear()
    with TestClient(create_app(device="cpu"), base_url="http://127.0.0.1:8765") as c:
        assert post(c, FIXTURE.read_bytes(), png_bytes(box_mask())).status_code == 200
    assert seen == [("telea", None)]
