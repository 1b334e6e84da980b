"""Trusted Host (DNS rebinding) and same-origin (CSRF) checks in front of the UI server's API."""

from __future__ import annotations

import argparse
import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
PIL = pytest.importorskip("PIL.Image")
from fastapi.testclient import TestClient  # noqa: E402

from torchworks.cli import ui_cmd  # noqa: E402
from torchworks.ui.guard import split_host_header  # noqa: E402
from torchworks.ui.server import create_app  # noqa: E402

BASE = "http://127.0.0.1:8765"


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


IMAGE = png(np.full((16, 16, 3), 200, np.uint8))
HOLE = np.zeros((16, 16), np.uint8)
HOLE[6:10, 6:10] = 255
MASK = png(HOLE)


def post(client: TestClient, headers: dict[str, str] | None = None):
    files = {"image": ("a.png", IMAGE, "image/png"), "mask": ("m.png", MASK, "image/png")}
    return client.post("/api/inpaint", files=files, data={"method": "mean"}, headers=headers or {})


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(), base_url=BASE) as c:
        yield c


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "", "a b:1"])
def test_foreign_host_is_400_with_a_hint(client, host):
    r = client.get("/health", headers={"Host": host})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "untrusted Host" in detail and "--allow-host" in detail
    assert post(client, {"Host": host}).status_code == 400  # before the body is even read


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST", "[::1]:8765", "localhost."])
def test_loopback_hosts_are_served(client, host):
    r = client.get("/health", headers={"Host": host})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"


def test_no_origin_post_is_served_like_curl(client):
    r = post(client)
    assert r.status_code == 200, r.text
    out = np.asarray(PIL.open(io.BytesIO(r.content)))
    assert out.shape == (16, 16, 3) and (out == 200).all()  # mean of a flat image fills with the same grey


def test_same_origin_post_is_served(client):
    r = post(client, {"Origin": BASE, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    r = post(client, {"Origin": "http://localhost:8765", "Host": "localhost:8765"})  # opened via localhost
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:9999", "https://127.0.0.1:8765",
                                    "http://localhost:8765", "null", "garbage"])
def test_foreign_origin_post_is_403_with_a_clear_message(client, origin):
    r = post(client, {"Origin": origin})
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    detail = r.json()["detail"]
    assert detail.startswith("cross-origin request refused") and repr(origin) in detail


def test_cross_site_fetch_metadata_without_origin_is_403(client):
    r = post(client, {"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and "Sec-Fetch-Site: cross-site" in r.json()["detail"]
    assert post(client, {"Sec-Fetch-Site": "none"}).status_code == 200  # typed into the address bar, say


def test_foreign_origin_get_is_allowed_reads_need_the_host_check_only(client):
    r = client.get("/api/methods", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers  # no CORS: unreadable there


def test_extra_allowed_hosts_and_wildcards():
    app = create_app(allowed_hosts=["photos.lan", "*.home.arpa"])
    with TestClient(app, base_url="http://photos.lan:8765") as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"Host": "nas.home.arpa"}).status_code == 200
        assert c.get("/health", headers={"Host": "home.arpa.evil"}).status_code == 400
        assert c.get("/health", headers={"Host": "127.0.0.1:8765"}).status_code == 400  # the list is replaced
        assert post(c, {"Origin": "http://photos.lan:8765"}).status_code == 200
        assert post(c, {"Origin": "http://other.home.arpa:8765"}).status_code == 403  # another origin
    with TestClient(create_app(allowed_hosts=["*"]), base_url="http://anything.example") as c:
        assert c.get("/health").status_code == 200
        assert post(c, {"Origin": "http://evil.example"}).status_code == 403  # the Origin check stays on


@pytest.mark.parametrize("bad", [[], ["evil/path"], ["a*b.example"], ["*example"]])
def test_malformed_allowed_hosts_raise_at_creation(bad):
    with pytest.raises(ValueError, match="allowed_hosts is empty|not a host name"):
        create_app(allowed_hosts=bad)


def test_split_host_header():
    assert split_host_header("Example.LAN:80") == ("example.lan", 80)
    assert split_host_header("[::1]:8765") == ("::1", 8765)
    assert split_host_header("[::1]") == ("::1", None)
    assert split_host_header("::1") == ("::1", None)
    for bad in ("", "x:port", "[::1", "[::1]x", "a@b"):
        assert split_host_header(bad) is None, bad


def test_cli_allowed_hosts_include_the_bound_address_and_flags():
    parser = argparse.ArgumentParser()
    ui_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ui", "--host", "192.168.1.5", "--allow-host", "photos.lan", "--allow-host", "x.lan"])
    assert args.allow_host == ["photos.lan", "x.lan"]
    hosts = ui_cmd.allowed_hosts(args.host, args.allow_host)
    assert hosts == ["127.0.0.1", "localhost", "::1", "192.168.1.5", "photos.lan", "x.lan"]
    assert ui_cmd.allowed_hosts("0.0.0.0", []) == ["127.0.0.1", "localhost", "::1"]  # a wildcard is no name
