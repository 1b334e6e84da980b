"""``torchworks demo``: a tour of the toolkit written as one offline HTML page with PNG figures beside it.

Each section (``torchworks.cli.demo_sections``, ``demo_distill``) calls one capability on a model shipped
inside the package, renders the result and shows the command that reproduces it. The page is built in a
temporary folder next to ``--out`` and renamed into place when complete, so an interrupted run never leaves half
a tour. A section whose data set is absent uses a sample shipped in the package and says so; one whose model is
not shipped yet says that; a section that fails is reported with its error and makes the exit code 1.

Only the standard library is imported at module level so that ``torchworks --help`` stays fast.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from torchworks.cli._common import OUT_RULE, out_dir, positive_int

SECTION_NAMES = ("inpainting", "geometry", "forecast", "gpt", "translation", "distill")
MARKER = ".torchworks-demo"  # marks a folder this command wrote, so that it may replace it
EXIT_SECTION_FAILED = 1

EXAMPLES = """\
sections (default: all, in this order); each shows the data set in brackets when it is on this
machine, else a sample shipped in the package, and the page says which:
  inpainting   every registered inpainter (the shipped LaMa and ReLaMa, the classical methods) on
               a 64 px face held out from training: hole PSNR and time
               [celebahq_samples; else a public-domain face]
  geometry     two calibrated views: matches, RANSAC pose, epipolar lines, error vs ground truth
               [multiview_temple_sparse_ring; else the Middlebury Motorcycle stereo pair]
  forecast     the shipped temperature LSTM against persistence, seasonal naive and drift
               [jbrownlee_timeseries (Melbourne); else Seattle 2012-2015]
  gpt          text from the shipped character-level Shakespeare GPT
  translation  German to English with the shipped Multi30k encoder-decoder (beam search)
  distill      the shipped resnet56 teacher and each shipped student on --cifar-limit test images
               [cifar10; else knowledge distillation from the shipped ViT to a small MLP on the
               shipped Fashion-MNIST slice, 3 seeds]
fetch a data set: torchworks data path NAME --download (make demo fetches the temple views and
the Melbourne series)

examples:
  torchworks demo                                   # everything, into out/demo/index.html
  torchworks demo --sections gpt,translation --out /tmp/tour
  torchworks demo --sections distill --cifar-limit 500 --threads 2
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers the ``demo`` verb."""
    p = subparsers.add_parser(
        "demo", help="a tour of every capability: writes out/demo/index.html and prints a summary",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Run each capability on the models shipped inside the package and write one offline HTML\n"
        "page (PNG figures beside it) showing the results and the command that reproduces each.\n"
        "Works offline on a lone clone: a data set absent on this machine is replaced by a sample\n"
        "shipped in the package (the page says so). Exit code 1 when a section failed; a model not\n"
        "shipped yet is reported on the page, not an error.")
    p.add_argument("-o", "--out", default="out/demo", metavar="DIR", type=out_dir,
                   help="output folder (default out/demo); replaced as a whole, so it must be empty, absent or an "
                   f"earlier demo output; {OUT_RULE}")
    p.add_argument("--sections", default=",".join(SECTION_NAMES), metavar="LIST",
                   help=f"comma-separated sections (default: all of {', '.join(SECTION_NAMES)})")
    p.add_argument("--cifar-limit", type=positive_int, default=2000, metavar="N",
                   help="CIFAR-10 test images the distill section scores (default 2000 of 10000; unused when it "
                   "falls back to Fashion-MNIST)")
    p.add_argument("--tokens", type=positive_int, default=300, help="characters the GPT generates (default 300)")
    p.add_argument("--prompt", default="ROMEO:", help="GPT prompt (default 'ROMEO:')")
    p.add_argument("--sentence", action="append", metavar="TEXT",
                   help="German sentence to translate (repeatable; default: three built-in sentences)")
    p.add_argument("--beam", type=positive_int, default=4, help="beam size of the translation (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of masks, RANSAC and sampling (default 0)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--data-dir", help="directory holding the data sets (searched first)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (plain lines on stderr instead)")


def parse_sections(text: str) -> list[str]:
    """Section names from ``--sections``, in page order.

    Raises:
        ConfigError: an unknown name (the message lists close matches) or an empty list.
    """
    import difflib

    from torchworks.core.errors import ConfigError

    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError(f"--sections names no section; choose from {', '.join(SECTION_NAMES)}")
    for name in names:
        if name not in SECTION_NAMES:
            close = difflib.get_close_matches(name, SECTION_NAMES, n=3, cutoff=0.4)
            close += [s for s in SECTION_NAMES if name in s and s not in close]
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ConfigError(f"unknown demo section {name!r}; {hint}sections: {', '.join(SECTION_NAMES)}")
    return [s for s in SECTION_NAMES if s in names]


def _check_out(out: Path) -> None:
    from torchworks.core.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(f"--out {out} holds files this command did not write; choose an empty or new folder "
                          "(the demo replaces its folder as a whole)")


class _Progress:
    """A tqdm bar over the sections on a terminal (the engine's convention), else one line per event on stderr."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # the [train] extra is absent: plain lines
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc="demo", unit="section", dynamic_ncols=True, leave=False)
        self.total = total

    def start(self, i: int, name: str) -> None:
        if self.bar is not None:
            self.bar.set_description(name)
        else:
            print(f"[{i}/{self.total}] {name} ...", file=sys.stderr, flush=True)

    def note(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(msg[-60:], refresh=True)

    def done(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
            self.bar.update(1)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_section(name: str, ctx) -> object:
    """Runs one section; never raises (except KeyboardInterrupt): the outcome is in the returned result."""
    import traceback

    from torchworks.cli import demo_page, demo_sections
    from torchworks.cli.demo_context import NotShipped
    from torchworks.core.errors import DataNotFoundError

    title, build = demo_sections.SECTIONS[name]
    res = demo_page.SectionResult(name, title)
    start = time.perf_counter()
    try:
        build(ctx, res)
    except NotShipped as exc:
        res.status, res.error = demo_page.NOT_SHIPPED, str(exc)
    except DataNotFoundError as exc:
        res.status, res.error = demo_page.NO_DATA, str(exc)
    except Exception as exc:  # reported in the page and the summary; the tour goes on
        res.status, res.error = demo_page.FAILED, f"{type(exc).__name__}: {exc}"
        res.detail = traceback.format_exc()
    res.seconds = time.perf_counter() - start
    return res


def run(args: argparse.Namespace) -> int:
    """Builds the tour; returns 0, or 1 when a section failed (user errors propagate as exceptions)."""
    import shutil
    import tempfile

    from torchworks.core.errors import ConfigError

    sections = parse_sections(args.sections)
    if args.data_dir is not None and not Path(args.data_dir).expanduser().is_dir():
        raise ConfigError(f"--data-dir {args.data_dir} is not a folder")
    out = Path(args.out)
    _check_out(out)
    wall = time.perf_counter()
    import torch

    from torchworks.cli import demo_page
    from torchworks.cli.demo_context import DEFAULT_SENTENCES, DemoContext

    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    progress = _Progress(len(sections), enabled=not args.no_progress)
    try:
        ctx = DemoContext(
            out=tmp, final_out=out, data_dir=args.data_dir, seed=args.seed, threads=args.threads,
            cifar_limit=args.cifar_limit, tokens=args.tokens, prompt=args.prompt, beam=args.beam,
            sentences=args.sentence or list(DEFAULT_SENTENCES), note=progress.note)
        results = []
        for i, name in enumerate(sections, 1):
            progress.start(i, name)
            res = run_section(name, ctx)
            results.append(res)
            progress.done(f"{name:12s} {res.status:11s} {res.seconds:6.1f} s  {res.summary or res.error or ''}")
        progress.close()
        wall = time.perf_counter() - wall
        command = _command_line(args)
        (tmp / "index.html").write_text(demo_page.render_page(results, wall=wall, command=command),
                                        encoding="utf-8")
        (tmp / MARKER).write_text("written by torchworks demo; the next run replaces this folder\n")
        tmp.chmod(0o755)  # mkdtemp makes a private folder; the page is an ordinary output
        _replace(tmp, out)
    except BaseException:
        progress.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads_before)  # callers in the same process keep their setting
    print(_summary(results, out / "index.html", wall))
    return EXIT_SECTION_FAILED if any(r.status == demo_page.FAILED for r in results) else 0


def _command_line(args: argparse.Namespace) -> str:
    """The ``torchworks demo`` command with the options that differ from their defaults."""
    parts = ["torchworks", "demo"]
    defaults = {"out": "out/demo", "sections": ",".join(SECTION_NAMES), "cifar_limit": 2000, "tokens": 300,
                "prompt": "ROMEO:", "beam": 4, "seed": 0, "threads": 1, "data_dir": None}
    for key, default in defaults.items():
        if getattr(args, key) != default:
            parts += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    for sentence in args.sentence or []:
        parts += ["--sentence", sentence]
    return shlex.join(parts)


def _replace(new: Path, out: Path) -> None:
    """Puts the finished folder ``new`` at ``out``: two renames, the old tour deleted only afterwards."""
    import os
    import shutil

    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _summary(results: list, page: Path, wall: float) -> str:
    from torchworks.cli.demo_page import FAILED

    failed = sum(r.status == FAILED for r in results)
    head = f"torchworks demo: {len(results)} section(s) in {wall:.1f} s" + (f", {failed} FAILED" if failed else "")
    lines = [head]
    for r in results:
        lines.append(f"  {r.name:12s} {r.status:11s} {r.summary or r.error or ''}")
        if r.status == FAILED and r.summary and r.error:
            lines.append(f"  {'':12s} {'':11s} {r.error}")
    lines.append(f"page: {page}")
    return "\n".join(lines)
