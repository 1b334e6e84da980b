"""``torchworks ui``: the local inpainting web page (FastAPI + uvicorn), bound to 127.0.0.1 by default.

Only the standard library is imported here; FastAPI, uvicorn and torch are imported by :func:`run`.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """\
examples:
  torchworks ui                         # then open http://127.0.0.1:8765/
  torchworks ui --port 9000 --open      # another port, and open the browser
  torchworks ui --max-upload-mb 50 --max-pixels 40000000
  torchworks ui --device cuda           # learned models on the GPU (auto: CUDA, else MPS, else CPU)
  torchworks ui --max-jobs 1 --queue-size 4   # a small machine: one inpainting call at a time
  torchworks ui --host 0.0.0.0 --allow-host photos.lan --allow-host 192.168.1.5   # reachable from the LAN

Requests must name an allowed host (127.0.0.1, localhost, ::1, the --host address, any --allow-host) in their
Host header, or get 400: a web page cannot reach the server through a DNS name it controls (DNS rebinding).
POSTs from another site's page (their Origin header is not this server) get 403 (cross-site request forgery);
scripts such as curl send no Origin and are served.

Memory is bounded for the whole process, whatever the methods asked for: --max-jobs calls run at once on at
most --max-busy-pixels pixels together, --queue-size more requests wait, the rest get 503 (their upload is
dropped, never held). A request whose client disconnects is cancelled, and freed memory is returned to the
system when the server falls idle.

API (usable from scripts; schema at /openapi.json, Swagger UI at /docs needs a network for its assets):
  curl -F image=@photo.jpg -F mask=@mask.png -F method=telea http://127.0.0.1:8765/api/inpaint -o out.png
  curl http://127.0.0.1:8765/api/methods
"""

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")


def allowed_hosts(host: str, extra: list[str] | None) -> list[str]:
    """Host names the server answers to: loopback names, the bound address (unless a wildcard), ``extra``."""
    names = list(LOOPBACK)
    if host not in WILDCARD:
        names.append(host)
    return list(dict.fromkeys(names + list(extra or [])))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``ui`` verb."""
    p = subparsers.add_parser("ui", help="local web page to inpaint with a brush (FastAPI server)",
                              description="Serve the inpainting page and its API. Everything (page, scripts, "
                              "models) is local and works offline; images are processed in memory.",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only; "
                   "0.0.0.0 exposes the server to the network)")
    from torchworks.cli._common import float_in, int_in

    p.add_argument("--port", type=int_in(1, 65535), default=8765,
                   help="port (default 8765); one in use is an error before anything is served")
    p.add_argument("--max-upload-mb", type=float_in(0, 1e6, lo_open=True), default=20.0,
                   help="largest request (image + mask) in MB; larger ones get 413 (default 20)")
    p.add_argument("--max-pixels", type=int, default=25_000_000,
                   help="largest image width x height; larger ones get 422 (default 25000000)")
    p.add_argument("--queue-size", type=int, default=8,
                   help="requests that may wait while --max-jobs run, whatever their method; more get 503 (default 8)")
    p.add_argument("--max-jobs", type=int, default=2,
                   help="inpainting calls that run at once, over all methods (default 2)")
    p.add_argument("--max-busy-pixels", type=int, default=None,
                   help="width x height summed over the running calls; at least --max-pixels (default: "
                   "--max-pixels, so a photo of the largest accepted size runs alone)")
    p.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,mps}",
                   help="where learned models run: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps "
                   "(default auto); a device this machine lacks is an error")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also accept requests whose Host header names NAME (repeatable): the name or address you "
                   "open the page by when it is not 127.0.0.1/localhost/::1 or --host, e.g. a LAN name with "
                   "--host 0.0.0.0; *.example.lan matches sub-domains, '*' turns the Host check off (DNS "
                   "rebinding then becomes possible). Other hosts get 400")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")


def run(args: argparse.Namespace) -> int:
    """Starts the server and blocks until Ctrl-C."""
    try:
        import uvicorn

        from torchworks.ui.server import create_app
    except ImportError as exc:
        print(f"torchworks ui: error: {exc}; install the extra: pip install 'torchworks[ui]'", file=sys.stderr)
        return 2
    sock = _bind(args.host, args.port)  # a port in use fails here, before "serving" is printed
    hosts = allowed_hosts(args.host, args.allow_host)
    try:
        app = create_app(max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                         queue_size=args.queue_size, allowed_hosts=hosts, max_jobs=args.max_jobs,
                         max_busy_pixels=args.max_busy_pixels, device=args.device)
    except ValueError as exc:
        sock.close()
        print(f"torchworks ui: error: {exc}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/"
    if args.host not in LOOPBACK:
        print(f"torchworks ui: warning: bound to {args.host}: anyone who can reach this machine can use the "
              "server (there is no authentication)", file=sys.stderr)
    if args.host in WILDCARD and not args.allow_host:
        print(f"torchworks ui: note: only {', '.join(hosts)} are accepted as Host; add --allow-host NAME for the "
              "name or address other machines use to open the page", file=sys.stderr)
    print(f"torchworks ui: serving {url} (API docs: {url}docs, schema: {url}openapi.json); Ctrl-C to stop")
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    # limit_concurrency is a last line of defence above the per-method queues (uvicorn answers 503 past it).
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info", limit_concurrency=256)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _bind(host: str, port: int):
    """A socket bound to ``host:port`` for uvicorn to serve on; a port in use or a bad host is a ConfigError."""
    import errno
    import socket

    from torchworks.core.errors import ConfigError

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except OSError as exc:
        raise ConfigError(f"cannot use --host {host!r}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does; a live listener still fails
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        hint = "; another program (an earlier torchworks ui?) listens there: stop it or pick another --port" \
            if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    return sock
