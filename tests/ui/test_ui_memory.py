"""Memory comes back after a burst: ``release_memory`` hands freed heap pages to the system, and a real
``torchworks ui`` server's RSS falls back near where it was before a burst (measured from /proc, Linux only).

The full-size measurement (50 requests at 2500x2500) is ``benchmarks/inpainting/bench_ui_load.py``; its numbers
are in docs/results/inpainting.md, "Web UI under load".
"""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"))
from bench_ui_load import burst, multipart, photo_and_mask, ui_server  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)")

FRAGMENT = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    import torchworks.ui.jobs as jobs

    def rss():
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS"))
        return int(line.split()[1]) / 1024

    if sys.argv[1] == "off":
        jobs._TRIM = None
    kept, all_allocated = [], threading.Barrier(4)

    def work():  # 4 threads (4 malloc arenas) x 48 MB in 64 kB blocks, below glibc's mmap threshold
        blocks = [bytearray(64 * 1024) for _ in range(750)]
        kept.extend(blocks[::16])  # one live block per MB: the freed pages sit between live ones
        all_allocated.wait()  # all 192 MB at once, however the threads are scheduled

    base = rss()
    threads = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    peak = rss()
    trimmed = jobs.release_memory()
    print(base, peak, rss(), trimmed)
""")


def fragment(trim: str) -> tuple[float, float, float, str]:
    out = subprocess.run([sys.executable, "-c", FRAGMENT, trim], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    base, peak, after, trimmed = out.stdout.split()
    return float(base), float(peak), float(after), trimmed


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_memory_hands_freed_heap_pages_back():
    base, peak, after, trimmed = fragment("on")
    assert peak - base > 150  # ~192 MB allocated, 12 MB of it kept alive
    assert trimmed == "True"
    assert after - base < 0.25 * (peak - base), (base, peak, after)
    base, peak, after, trimmed = fragment("off")  # garbage collection alone keeps the pages
    assert trimmed == "False" and after - base > 0.75 * (peak - base), (base, peak, after)


def test_server_memory_returns_after_a_burst():
    image, mask, _ = photo_and_mask(800)
    methods = ["telea", "ns", "blur", "mean"]
    jobs = [multipart({"method": methods[i % 4]}, {"image": (image, "image/jpeg"), "mask": (mask, "image/png")})
            for i in range(10)]
    with ui_server(["--max-jobs", "2", "--queue-size", "4"]) as (url, pid):
        r = burst(url, pid, jobs, settle=1.0)  # "before" is the fresh server: no request served yet
    assert r.statuses == {200: 10} and r.busy_replies > 0  # 6 fit (2 running + 4 queued); the rest retried
    assert r.peak - r.before > 100, r  # the burst cost memory...
    # ...and most of it came back. First calls initialise libraries for good (~40 MB here); without the trim the
    # server kept ~160 of ~225 MB (70 %), with it ~40 (20 %).
    assert r.after - r.before < 0.4 * (r.peak - r.before), r
