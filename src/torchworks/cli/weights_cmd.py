"""``torchworks weights import lama FILE``: turn official LaMa weights into a safetensors file once.

The file the user downloaded (advimman/lama's ``best.ckpt`` or IOPaint's ``big-lama.pt``) is read without running
any of its pickled or TorchScript code, checked against LaMa's generator layout and written to the user cache,
where ``--method big_lama`` (CLI, Python API, web UI) finds it. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """\
examples:
  torchworks weights import lama big-lama.pt              # IOPaint / lama-cleaner's TorchScript file
  torchworks weights import lama big-lama/models/best.ckpt  # advimman/lama's Lightning checkpoint
  torchworks weights path lama                           # where the imported file lives
  torchworks inpaint photo.jpg --mask m.png --method big_lama
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``weights`` verb."""
    w = subparsers.add_parser("weights", help="import official weights (Big LaMa) for offline use",
                              description=__doc__.splitlines()[0], epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = w.add_subparsers(dest="weights_verb", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="convert a downloaded checkpoint into the user cache")
    imp.add_argument("family", choices=("lama",), help="model family (lama: big-lama or lama-fourier)")
    imp.add_argument("file", help="best.ckpt (advimman/lama) or big-lama.pt (IOPaint)")
    from torchworks.cli import _common as c

    c.add_out(imp, "write here instead of the user cache (a .safetensors path)")
    pth = sub.add_parser("path", help="print where imported weights are stored")
    pth.add_argument("family", choices=("lama",))


def run(args: argparse.Namespace) -> int:
    """Runs ``weights``; returns the exit code (errors reach the CLI's one-line handler)."""
    from pathlib import Path

    from torchworks.core.errors import ConfigError
    from torchworks.inpainting.external import import_lama_weights, imported_lama_path

    if args.weights_verb == "path":
        print(imported_lama_path())
        return 0
    src = Path(args.file)
    if not src.is_file():
        raise FileNotFoundError(f"no such weights file: {src}")
    if args.out and Path(args.out).suffix != ".safetensors":
        raise ConfigError(f"-o/--out must name a .safetensors file, got {args.out}")
    out = import_lama_weights(src, args.out)
    print(f"imported {src.name} -> {out}", file=sys.stderr)
    print(out)
    return 0
