"""Fixtures for the data tests: a local HTTP file server with Range support and scriptable failures."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Served:
    """What the test server serves and what it saw."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    # path -> "truncate" (send half the body, advertise all of it), "no-range" (ignore Range), "404"
    modes: dict[str, str] = field(default_factory=dict)
    # (path, Range header or None, status sent), in arrival order
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)

    def add(self, path: str, data: bytes, mode: str | None = None) -> str:
        self.files[path] = data
        if mode is None:
            self.modes.pop(path, None)
        else:
            self.modes[path] = mode
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str], sent: bytes | None = None) -> None:
            served.requests.append((self.path, self.headers.get("Range"), status))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if sent is None else sent)
            self.wfile.flush()

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            mode = served.modes.get(self.path)
            if mode == "404" or self.path not in served.files:
                self._send(404, b"not found", {})
                return
            data = served.files[self.path]
            rng = self.headers.get("Range")
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and mode != "no-range":
                start = int(m.group(1))
                if start >= len(data):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                body = data[start:]
                headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}", "Accept-Ranges": "bytes"}
                self._send(206, body, headers, body[: len(body) // 2] if mode == "truncate" else None)
                return
            self._send(200, data, {"Accept-Ranges": "bytes"}, data[: len(data) // 2] if mode == "truncate" else None)

    return Handler


@pytest.fixture
def http_server() -> Iterator[Served]:
    """A ThreadingHTTPServer on 127.0.0.1 (free port) serving ``Served.files``; HTTP/1.0, one request per
    connection, so a truncated body ends with the connection closing early."""
    served = Served()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
