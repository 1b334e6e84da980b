"""Per-photo CPU time of ``torchworks.inpainting.inpaint`` at real photo sizes, classical and learned methods.

Writes the ``photo_sizes`` section of ``docs/results/inpainting.md``. Run from the repository root::

    .venv/bin/python benchmarks/inpainting/bench_photo_sizes.py               # 512 px, 2048 px, 4000x3000
    .venv/bin/python benchmarks/inpainting/bench_photo_sizes.py --quick       # 512 px only, 1 repeat

Each photo is a real scene photo (Kodak ``kodim23`` when the shared data is here, else the test fixture) resized
to the size, with the same hole drawn in proportion: a LaMa "thick" stroke set and a box, covering ~5 % of the
photo (an object or a scratch to remove, as users bring them). Methods run through the public API with its
defaults (``strategy="auto"``: above 800 px only crops around the hole are filled). Learned models are timed with
random weights of the shipped architectures: the time does not depend on the weights; big_lama is not timed at
4000x3000 (minutes per call). Every run is checked to be bit-exact outside the method's dilated hole. Times are
process CPU seconds on 1 thread, median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from _common import Machine, write_section  # noqa: E402

DOC = ROOT / "docs" / "results" / "inpainting.md"
SIZES = ((512, 512), (2048, 1536), (4000, 3000))


def photo(w: int, h: int) -> np.ndarray:
    """(h, w, 3) uint8: a real photo resized (area down, cubic up)."""
    import cv2

    from torchworks.inpainting.task import _photo_dir

    try:
        src = _photo_dir("kodak24") / "kodim23.png"
    except FileNotFoundError:
        src = ROOT / "tests" / "fixtures" / "chelsea_96x64.png"
    img = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(img, (w, h), interpolation=interp)


def hole(w: int, h: int) -> np.ndarray:
    """(h, w) uint8 mask, 255 = hole: LaMa thick strokes drawn at 256 px in a quarter of the photo, plus a box."""
    import cv2

    from torchworks.core.registry import MASKS
    from torchworks.data.masks import scaled_mask

    s = min(w, h) // 2
    strokes = scaled_mask(MASKS.build("thick_256"), s, 256, (0, 7, 1))[0].numpy() > 0.5
    m = np.zeros((h, w), np.uint8)
    m[h // 8:h // 8 + s, w // 8:w // 8 + s][strokes] = 255
    bw, bh = max(8, w // 12), max(8, h // 12)
    cv2.rectangle(m, (w * 5 // 8, h * 5 // 8), (w * 5 // 8 + bw, h * 5 // 8 + bh), 255, -1)
    return m


def methods(quick: bool) -> dict[str, object]:
    import torchworks.inpainting.nets  # noqa: F401
    from torchworks.core.checkpoint import build_model
    from torchworks.inpainting.learned import LearnedInpainter

    out: dict[str, object] = {"telea": "telea", "ns": "ns"}
    torch.manual_seed(0)
    small = build_model("lama_small").eval()
    out["lama_small (4.8 M), fp32"] = LearnedInpainter(small, "lama_small", 8, None)
    out["lama_small (4.8 M), bf16"] = LearnedInpainter(small, "lama_small", 8, None, precision="bf16")
    if not quick:
        big = build_model("big_lama").eval()
        out["big_lama (51 M), fp32"] = LearnedInpainter(big, "big_lama", 8, None)
        out["big_lama (51 M), bf16"] = LearnedInpainter(big, "big_lama", 8, None, precision="bf16")
    return out


def time_one(method: object, img: np.ndarray, mask: np.ndarray, repeats: int) -> tuple[float, int]:
    """Median CPU seconds of ``inpaint`` and the number of filled pixels; checks the known pixels."""
    from torchworks.inpainting import inpaint

    cpu = []
    for _ in range(repeats):
        t0 = time.process_time()
        out = inpaint(img, mask, method, device="cpu")
        cpu.append(time.process_time() - t0)
    changed = (out != img).any(-1)
    import cv2

    grown = cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0  # any method's default dilation is < 4 px
    if changed[~grown].any():
        raise AssertionError(f"{method}: pixels outside the dilated hole changed")
    return statistics.median(cpu), int(changed.sum())


def method_text() -> str:
    """The docstring's paragraph on what is measured, on one line."""
    return next(p for p in __doc__.split("\n\n") if p.startswith("Each photo")).replace("\n", " ").strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="512 px and lama_small only, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(DOC))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    machine = Machine.measure(threads=1)
    sizes = SIZES[:1] if args.quick else SIZES
    repeats = 1 if args.quick else args.repeats
    meths = methods(args.quick)
    rows = []
    for w, h in sizes:
        img, mask = photo(w, h), hole(w, h)
        for name, m in meths.items():
            if name.startswith("big_lama") and w * h > 4_000_000:
                continue  # ~2 CPU-min per call at this crop size; the 2048 px row gives its scaling
            sec, n = time_one(m, img, mask, repeats)
            rows.append((f"{w}x{h}", f"{100 * (mask > 0).mean():.1f} %", name, sec))
            print(f"{w}x{h} {name}: {sec:.2f} CPU s", flush=True)
    machine.finish()
    cmd = "python benchmarks/inpainting/bench_photo_sizes.py" + (" --quick" if args.quick else "")
    lines = ["## Per-photo time at real photo sizes", "",
             f"Produced by `{cmd}`; {machine.describe()}. " + method_text(), "",
             "| photo | hole | method | CPU s per photo |", "|---|---|---|---:|"]
    lines += [f"| {p} | {a} | {m} | {s:.2f} |" for p, a, m, s in rows]
    lines += ["", "Above 800 px the `auto` strategy fills crops around the hole (128 px of context), so the time "
              "follows the hole, not the megapixels; every output was checked bit-exact outside the dilated hole."]
    if machine.busy:
        lines += ["", f"Note: the machine was loaded ({machine.load_text()}); CPU times are affected less than "
                  "wall times, but repeat on a quiet machine before quoting them."]
    write_section(args.out, "photo_sizes", "\n".join(lines))
    print(f"wrote the photo_sizes section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
