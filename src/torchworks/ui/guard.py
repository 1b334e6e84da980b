"""Trusted-host and same-origin checks for the local UI server (DNS rebinding and cross-site requests).

Binding to 127.0.0.1 keeps other machines out, not other web sites: any page open in the user's browser can send
requests to ``http://127.0.0.1:PORT``. Its scripts cannot read the answers (same-origin policy), but a plain form
POST still runs (CSRF), and a page whose host name the attacker re-points to 127.0.0.1 (DNS rebinding) becomes
same-origin with the server and could read them too. Two checks close both holes:

* **Host**: the ``Host`` header must name one of the allowed hosts (any port). A rebinding page's requests carry
  the attacker's name, so they get 400.
* **Origin**: a state-changing request (POST, PUT, PATCH, DELETE) carrying an ``Origin`` header other than the
  server's own origin gets 403. Browsers send ``Origin`` on every POST that crosses origins (forms included);
  scripts (curl, httpx, urllib) send none and are served. A request with no ``Origin`` but a
  ``Sec-Fetch-Site`` of ``cross-site`` or ``same-site`` (which browsers add by themselves) is refused too.

Starlette's ``TrustedHostMiddleware`` does the Host half, but answers a bare plain-text "Invalid host header";
this middleware answers both refusals as the API's JSON :class:`ErrorResponse`, naming the offending value and the
command-line flag that allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from torchworks.ui.schemas import ErrorResponse

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_host(name: str) -> str:
    """Lower-case host name without IPv6 brackets or a trailing dot; raises ``ValueError`` on a malformed one."""
    host = name.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".")
    wildcard_ok = host == "*" or (host.startswith("*.") and "*" not in host[1:])
    if not host or any(c in host for c in "/ @?#[]") or ("*" in host and not wildcard_ok):
        raise ValueError(f"not a host name or address: {name!r} (use e.g. photos.lan, 192.168.1.5, ::1, "
                         "*.example.lan, or * for any)")
    return host


def check_hosts(allowed_hosts: Sequence[str]) -> tuple[str, ...]:
    """The normalized, de-duplicated host list; ``ValueError`` for a malformed name or an empty list."""
    if isinstance(allowed_hosts, str):  # a lone name, not its characters
        allowed_hosts = [allowed_hosts]
    hosts = tuple(dict.fromkeys(normalize_host(h) for h in allowed_hosts))
    if not hosts:
        raise ValueError("allowed_hosts is empty: the server would refuse every request")
    return hosts


def split_host_header(value: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of a Host header (``name``, ``name:port``, ``[v6]:port``); None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[1:end], value[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    host = host.rstrip(".")
    if not host or any(c in host for c in "/ @?#[]*") or (port and not port.isdigit()):
        return None
    return host, int(port) if port else None


class RequestGuard:
    """ASGI middleware: 400 for an untrusted ``Host``, 403 for a cross-origin state-changing request.

    Args:
        app: the wrapped ASGI app.
        allowed_hosts: host names or addresses the server answers to (ports are not compared); ``*.example.lan``
            matches sub-domains, ``*`` turns the Host check off (the Origin check stays on).
    """

    def __init__(self, app: Any, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed = check_hosts(allowed_hosts)
        self.any_host = "*" in self.allowed

    def host_allowed(self, host: str) -> bool:
        return self.any_host or any(host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in self.allowed)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        raw_host = headers.get("host", "")
        parsed = split_host_header(raw_host)
        if parsed is None or not self.host_allowed(parsed[0]):
            shown = ", ".join(self.allowed)
            await _refuse(scope, receive, send, 400,
                          f"untrusted Host header {raw_host!r}: this server answers only to {shown} (a guard "
                          "against DNS rebinding); start it with --allow-host NAME to add the name you open it by")
            return
        if scope["method"] not in SAFE_METHODS:
            own = (scope.get("scheme", "http"), parsed[0], parsed[1] or DEFAULT_PORTS.get(scope.get("scheme"), 80))
            origin = headers.get("origin")
            if origin is not None and _origin_tuple(origin) != own:
                await _refuse(scope, receive, send, 403,
                              f"cross-origin request refused: Origin {origin!r} is not this server's own "
                              f"({own[0]}://{raw_host}); the API accepts requests from its own page and from "
                              "scripts that send no Origin header (curl, httpx, urllib)")
                return
            site = headers.get("sec-fetch-site", "").lower()
            if origin is None and site in ("cross-site", "same-site"):
                await _refuse(scope, receive, send, 403,
                              f"cross-origin request refused: the browser marked it Sec-Fetch-Site: {site}; the "
                              "API accepts requests from its own page and from scripts")
                return
        await self.app(scope, receive, send)


def _origin_tuple(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an Origin header; None for ``null`` or anything malformed."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or port is None or parts.path not in ("", "/"):
        return None
    return parts.scheme, parts.hostname.rstrip("."), port


async def _refuse(scope: dict, receive: Any, send: Any, status: int, detail: str) -> None:
    body = ErrorResponse(detail=detail).model_dump(exclude_none=True)
    await JSONResponse(body, status_code=status, headers={"Connection": "close"})(scope, receive, send)
