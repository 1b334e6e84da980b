"""Web UI under load: resident memory of a ``torchworks ui`` server before, at the peak of and after a burst.

Starts the server as a subprocess (``python -m torchworks.cli.main ui``, 1 torch thread), warms every method up
with one small request, then sends ``--requests`` requests at once (default 50 photos of 2500x2500, cycling over
the methods that run here); a client that gets 503 waits for ``Retry-After`` and sends again, as a user of the
page would. The server's RSS is read from ``/proc`` every 20 ms, its peak from ``VmHWM``, and "after" once the
server has been idle for ``--settle`` seconds. Each configuration runs in a fresh server:

* ``budget``: the defaults (2 jobs at once, 25 MP), memory handed back when the server falls idle;
* ``budget without trim``: the same without ``malloc_trim`` (garbage collection only);
* ``9 at once without trim``: as the server was with one queue per method (9 methods, 9 jobs at once).

It also measures what one call costs alone: for each method, a fresh process calls ``inpaint()`` once on the same
photo and reports its RSS growth (``VmHWM`` minus the RSS before the call, after a small warm-up call), which is
what ``--max-busy-pixels`` has to budget for.

Writes the ``ui-load`` section of ``docs/results/inpainting.md``::

    python benchmarks/inpainting/bench_ui_load.py
    python benchmarks/inpainting/bench_ui_load.py --requests 12 --size 1200 --no-doc
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import Machine, write_section  # noqa: E402

DOC = ROOT / "docs" / "results" / "inpainting.md"
PHOTO = ROOT.parent / "shared" / "data" / "kodak24" / "kodim23.png"
FALLBACK = ROOT / "tests" / "fixtures" / "chelsea_96x64.png"
NO_TRIM = "import torchworks.ui.jobs as jobs; jobs._TRIM = None; "
LAUNCH = "import sys; from torchworks.cli.main import main; sys.exit(main(sys.argv[1:]))"
CONFIGS = {
    "budget": ([], True),
    "budget without trim": ([], False),
    "9 at once without trim": (["--max-jobs", "9", "--queue-size", "64", "--max-busy-pixels", "1000000000"], False),
}


def multipart(fields: dict[str, str], files: dict[str, tuple[bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type; ``files`` maps field -> (bytes, content type)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    for name, (data, ctype) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def photo_and_mask(size: int) -> tuple[bytes, bytes, float]:
    """A size x size photo (JPEG, quality 90), its mask (PNG: a box and a long scratch) and the hole fraction."""
    import numpy as np
    from PIL import Image, ImageDraw

    src = Image.open(PHOTO if PHOTO.exists() else FALLBACK).convert("RGB").resize((size, size), Image.BICUBIC)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    draw.rectangle((int(size * 0.40), int(size * 0.40), int(size * 0.50), int(size * 0.48)), fill=255)
    draw.line((int(size * 0.08), int(size * 0.12), int(size * 0.88), int(size * 0.84)), fill=255,
              width=max(3, size // 200))
    image_buf, mask_buf = io.BytesIO(), io.BytesIO()
    src.save(image_buf, format="JPEG", quality=90)
    mask.save(mask_buf, format="PNG")
    return image_buf.getvalue(), mask_buf.getvalue(), float((np.asarray(mask) > 0).mean())


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB, from /proc (Linux)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def post(url: str, body: bytes, ctype: str, timeout: float = 600) -> tuple[int, dict[str, str]]:
    """POSTs to ``/api/inpaint``; returns the status and the headers, names in lower case (the body is dropped)."""
    req = urllib.request.Request(f"{url}/api/inpaint", data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, {k.lower(): v for k, v in e.headers.items()}


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def ui_server(args: list[str], trim: bool = True, log: Path | None = None) -> Iterator[tuple[str, int]]:
    """A ``torchworks ui`` subprocess on a free port; yields (base URL, pid) once ``/health`` answers.

    Its log (stdout and stderr) goes to ``log``, or is dropped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    code = (NO_TRIM if not trim else "") + LAUNCH
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-c", code, "ui", "--port", str(port), *args], env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode} (log: {log})")
            try:
                get_json(f"{url}/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not answer /health within 120 s") from None
                time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


@dataclass
class BurstResult:
    """RSS (MB) before, at the peak of and after a burst, and what the clients got."""

    before: float
    peak: float
    after: float
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    busy_replies: int = 0

    @property
    def returned(self) -> float:
        """Share of the growth handed back once idle (1 = back to ``before``)."""
        grown = self.peak - self.before
        return (self.peak - self.after) / grown if grown > 0 else 1.0


ONE_CALL = """
import io, os, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[3])
from bench_ui_load import photo_and_mask, rss_mb
from PIL import Image
from torchworks.inpainting import inpaint
image, mask, _ = photo_and_mask(int(sys.argv[2]))
img, msk = Image.open(io.BytesIO(image)), Image.open(io.BytesIO(mask))
img.load(); msk.load()
inpaint(img.resize((64, 64)), msk.resize((64, 64)), method=sys.argv[1])  # warm-up: libraries, weights
before = rss_mb(os.getpid())[0]
inpaint(img, msk, method=sys.argv[1])
print(before, rss_mb(os.getpid())[1])
"""


def one_call_growth(method: str, size: int) -> float:
    """RSS growth (MB) of one ``inpaint()`` call on a size x size photo, in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", ONE_CALL, method, str(size), str(Path(__file__).resolve().parent)],
                         capture_output=True, text=True, env=env, timeout=1800, check=True)
    before, peak = map(float, out.stdout.split())
    return peak - before


def working_methods(url: str) -> list[str]:
    """Methods the server lists that answer a small request with 200 (one warm-up call each)."""
    image, mask, _ = photo_and_mask(128)
    ok = []
    for m in get_json(f"{url}/api/methods")["methods"]:
        body, ctype = multipart({"method": m["name"]}, {"image": (image, "image/jpeg"), "mask": (mask, "image/png")})
        if post(url, body, ctype)[0] == 200:
            ok.append(m["name"])
    return ok


def burst(url: str, pid: int, jobs: list[tuple[bytes, str]], settle: float) -> BurstResult:
    """Sends every job at once (retrying 503s), sampling RSS; returns the measurement."""
    before = rss_mb(pid)[0]
    stop, peak = threading.Event(), [before]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(pid)[0])
            time.sleep(0.02)

    busy = [0]

    def client(job: tuple[bytes, str]) -> int:
        while True:
            status, headers = post(url, *job)
            if status != 503:
                return status
            busy[0] += 1
            time.sleep(float(headers.get("retry-after", "1")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.monotonic()
    with ThreadPoolExecutor(len(jobs)) as pool:
        statuses = Counter(pool.map(client, jobs))
    seconds = time.monotonic() - start
    while get_json(f"{url}/health")["load"]["running"]:
        time.sleep(0.05)
    time.sleep(settle)
    stop.set()
    sampler.join()
    after, hwm = rss_mb(pid)
    return BurstResult(before, max(peak[0], hwm), after, seconds, statuses, busy[0])


def report(rows: dict[str, BurstResult], alone: dict[str, float], args: argparse.Namespace, methods: list[str],
           hole: float, machine: Machine, seconds: float) -> str:
    # The load at the end counts the burst itself (a server running up to nine jobs, fifty uploading clients):
    # only the load at the start says whether other jobs shared the machine.
    shared = (f" (above the {machine.cores} cores at the start: other jobs shared the machine, so wall times are "
              "inflated; the memory figures are not)") if machine.load_start > machine.cores else (
              "; the load at the end is the burst's own (server and clients)")
    lines = [
        f"Produced by `python benchmarks/inpainting/bench_ui_load.py --requests {args.requests} --size {args.size}` "
        f"on {datetime.date.today()} in {seconds:.0f} s; machine: {machine.describe()}{shared}.", "",
        f"{args.requests} requests sent at once, each a {args.size}x{args.size} JPEG photo and a PNG mask "
        f"({hole:.1%} hole: a box and a long scratch), cycling over the {len(methods)} methods that run here "
        f"({', '.join(methods)}); a client that gets 503 retries after `Retry-After`. RSS of the server process "
        "(one uvicorn process, 1 torch thread), before the burst (after one warm-up call per method), at its peak "
        f"(`VmHWM`), and {args.settle:g} s after the last job ended.", "",
        "| server | before MB | peak MB | after MB | growth handed back | burst s | answers | 503 retries |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        answers = ", ".join(f"{n}x{code}" for code, n in sorted(r.statuses.items()))
        lines.append(f"| {name} | {r.before:.0f} | {r.peak:.0f} | {r.after:.0f} | {r.returned:.0%} | "
                     f"{r.seconds:.1f} | {answers} | {r.busy_replies} |")
    lines += ["", "`budget` is `torchworks ui` as shipped (`--max-jobs 2`, `--max-busy-pixels` = `--max-pixels` = "
              "25 MP, `--queue-size 8`): it hands freed heap pages back with glibc's `malloc_trim(0)` (after "
              "`gc.collect()`) each time the last running job ends. `without trim` is the same server with only "
              "the garbage collection; `9 at once` lets nine jobs run together, as one queue per method did.", "",
              f"One call alone on the same {args.size}x{args.size} photo (`inpaint()` in a fresh process after a "
              "small warm-up call; RSS growth at its peak, MB, and bytes per image pixel):", "",
              "| method | " + " | ".join(alone) + " |", "|---|" + "---|" * len(alone),
              "| MB | " + " | ".join(f"{v:.0f}" for v in alone.values()) + " |",
              "| bytes per pixel | " + " | ".join(f"{v * 2**20 / args.size**2:.0f}" for v in alone.values()) + " |"]
    lines += ["", *findings(rows, alone)]
    return "\n".join(lines)


def findings(rows: dict[str, BurstResult], alone: dict[str, float]) -> list[str]:
    """The conclusions, worded from the numbers of this run."""
    out = []
    if "budget" in rows:
        r = rows["budget"]
        out.append(f"- With the budget the server peaked {r.peak - r.before:.0f} MB above its idle size (the costliest "
                   f"single call alone: {max(alone.values()):.0f} MB) and kept {max(r.after - r.before, 0):.0f} MB of "
                   "it once idle.")
    if "budget" in rows and "budget without trim" in rows:
        a, b = rows["budget"], rows["budget without trim"]
        out.append(f"- What returned the memory was `malloc_trim(0)`: without it the same server kept "
                   f"{max(b.after - b.before, 0):.0f} MB ({max(1 - b.returned, 0):.0%} of its growth) after the burst, "
                   f"with it {max(a.after - a.before, 0):.0f} MB ({max(1 - a.returned, 0):.0%}). Garbage collection "
                   "alone frees the objects, but glibc keeps their pages in its per-thread arenas.")
    if "9 at once without trim" in rows:
        c = rows["9 at once without trim"]
        out.append(f"- Nine jobs at once (one queue per method, as before) peaked at {c.peak:.0f} MB and kept "
                   f"{c.after - c.before:.0f} MB.")
        if "budget" in rows:
            ratio = rows["budget"].seconds / c.seconds
            verdict = ("cost no wall time here" if ratio <= 1.1 else
                       "cost wall time here (nine jobs take a larger share of CPUs that other jobs also use)")
            out.append(f"- The bound {verdict}: {rows['budget'].seconds:.0f} s for the burst against "
                       f"{c.seconds:.0f} s with nine jobs at once ({ratio:.2f}x; see the load average above).")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--size", type=int, default=2500, help="photo side in pixels")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds idle before 'after' is read")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS))
    ap.add_argument("--no-doc", action="store_true", help="print the section instead of writing the doc")
    args = ap.parse_args(argv)
    start, machine = time.monotonic(), Machine.measure(threads=1)
    if machine.load_start > machine.cores:
        print(f"warning: {machine.load_text()} on {machine.cores} cores: wall times will be inflated", file=sys.stderr)
    image, mask, hole = photo_and_mask(args.size)
    rows, methods = {}, []
    for name in args.configs.split(","):
        extra, trim = CONFIGS[name]
        with ui_server(extra, trim) as (url, pid):
            methods = working_methods(url)
            jobs = [multipart({"method": methods[i % len(methods)]},
                              {"image": (image, "image/jpeg"), "mask": (mask, "image/png")})
                    for i in range(args.requests)]
            rows[name] = burst(url, pid, jobs, args.settle)
            print(name, rows[name], f"returned {rows[name].returned:.0%}", flush=True)
    alone = {m: one_call_growth(m, args.size) for m in methods}
    print("one call alone, MB:", alone, flush=True)
    text = report(rows, alone, args, methods, hole, machine.finish(), time.monotonic() - start)
    if args.no_doc:
        print(text)
    else:
        write_section(DOC, "ui-load", text, heading="## Web UI under load")
        print(f"wrote the ui-load section of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
