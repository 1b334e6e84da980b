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

API (usable from scripts; schema at /openapi.json, Swagger UI at /docs needs a network for its assets):
  curl -F image=@photo.jpg -F mask=@mask.png -F method=telea http://127.0.0.1:8765/api/inpaint -o out.png
  curl http://127.0.0.1:8765/api/methods
"""

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``ui`` verb."""
    p = subparsers.add_parser("ui", help="local web page to inpaint with a brush (FastAPI server)",
                              description="Serve the inpainting page and its API. Everything (page, scripts, "
                              "models) is local and works offline; images are processed in memory.",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only; "
                   "0.0.0.0 exposes the server to the network)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--max-upload-mb", type=float, default=20.0,
                   help="largest request (image + mask) in MB; larger ones get 413 (default 20)")
    p.add_argument("--max-pixels", type=int, default=25_000_000,
                   help="largest image width x height; larger ones get 422 (default 25000000)")
    p.add_argument("--queue-size", type=int, default=8,
                   help="requests that may wait per method while one runs; more get 503 (default 8)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")


def run(args: argparse.Namespace) -> int:
    """Starts the server and blocks until Ctrl-C."""
    try:
        import uvicorn

        from torchworks.ui.server import create_app
    except ImportError as exc:
        print(f"torchworks ui: error: {exc}; install the extra: pip install 'torchworks[ui]'", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"torchworks ui: error: --port must be in 1..65535, got {args.port}", file=sys.stderr)
        return 2
    app = create_app(max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                     queue_size=args.queue_size)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/"
    if args.host not in LOOPBACK:
        print(f"torchworks ui: warning: bound to {args.host}: anyone who can reach this machine can use the "
              "server (there is no authentication)", file=sys.stderr)
    print(f"torchworks ui: serving {url} (API docs: {url}docs, schema: {url}openapi.json); Ctrl-C to stop")
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    # limit_concurrency is a last line of defence above the per-method queues (uvicorn answers 503 past it).
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", limit_concurrency=256)
    return 0
