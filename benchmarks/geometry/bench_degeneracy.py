"""How often RANSAC's degeneracy flag fires on planar, pure-rotation and general two-view scenes.

Writes the ``degeneracy`` section of docs/results/geometry.md. Run from the repository root:

    .venv/bin/python benchmarks/geometry/bench_degeneracy.py [--scenes 200] [--noise 0.5]

Scenes come from ``torchworks.geometry.synthetic.two_view_scene`` (seeds 1000 and up: the thresholds were
chosen on seeds 0-39). Each scene is solved with the defaults (1 px threshold) for E (5-point) and F (7-point);
a planar or pure-rotation scene counts as caught when ``degenerate`` is set, a general scene as a false positive.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import Machine, write_section  # noqa: E402

from torchworks.geometry.ransac import ransac  # noqa: E402
from torchworks.geometry.synthetic import KINDS, two_view_scene  # noqa: E402

SEED0 = 1000


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def run(scenes: int, noise: float, outliers: float, points: int, kinds=KINDS, baseline=(0.05, 0.3), label=None
        ) -> list[dict]:
    rows = []
    for kind in kinds:
        for model in ("essential", "fundamental"):
            flagged, reasons, cpu = 0, {}, 0.0
            for i in range(scenes):
                s = two_view_scene(kind, n=points, noise=noise, outliers=outliers, seed=SEED0 + i, baseline=baseline)
                c = time.process_time()
                r = ransac(s["x1"], s["x2"], model, intrinsics1=s["K"], intrinsics2=s["K"], seed=i)
                cpu += time.process_time() - c
                flagged += r.degenerate
                if r.degeneracy:
                    reasons[r.degeneracy] = reasons.get(r.degeneracy, 0) + 1
            rows.append({"kind": label or kind, "model": model, "outliers": outliers, "scenes": scenes,
                         "flagged": flagged, "reasons": reasons, "cpu_ms": 1e3 * cpu / scenes})
            print(rows[-1], flush=True)
    return rows


def render(rows: list[dict], args, machine: Machine, elapsed: float) -> str:
    lines = [
        f"Command: `.venv/bin/python benchmarks/geometry/bench_degeneracy.py --scenes {args.scenes} --noise "
        f"{args.noise} --points {args.points}`; {elapsed:.0f} s.  ",
        f"Machine: {machine.describe()}.  ",
        f"Scenes: `synthetic.two_view_scene`, {args.points} correspondences, {args.noise} px Gaussian noise on every "
        "coordinate, seeds from 1000 (the thresholds were set on seeds 0-39); general = depth ratio 1.5-4, baseline "
        "5-30 % of the median depth, rotation up to 20 deg; planar = plane tilted up to 60 deg; rotation = zero "
        "baseline (the last rows: general scenes with a 1-5 % baseline, no goal). RANSAC defaults (threshold 1 px). "
        "Goal (issue 23): >= 90 % of planar and pure-rotation scenes flagged, <= 2 % of general scenes.",
        "",
        "| scene | model | outliers | scenes | flagged | rate (95 % interval) | reasons | CPU ms / scene | goal |",
        "|---|---|---:|---:|---:|---|---|---:|---|",
    ]
    for r in rows:
        lo, hi = wilson(r["flagged"], r["scenes"])
        rate = r["flagged"] / r["scenes"]
        ok = rate <= 0.02 if r["kind"] == "general" else (rate >= 0.9 if r["kind"] in KINDS else None)
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items())) or "-"
        lines.append(f"| {r['kind']} | {r['model']} | {r['outliers']:.0%} | {r['scenes']} | {r['flagged']} | "
                     f"{rate:.1%} ({lo:.1%}-{hi:.1%}) | {reasons} | {r['cpu_ms']:.1f} | "
                     f"{'-' if ok is None else 'met' if ok else 'missed'} |")
    lines += ["", "How the flag works: a homography RANSAC on the F/E inliers, scored by the homography's Sampson "
              "error (noise in both images, ~ sigma^2 chi^2 with 2 degrees of freedom) at the F/E threshold times "
              "sqrt(chi2_2(0.95) / chi2_1(0.95)) = 1.25; the scene is degenerate when that homography explains at "
              "least 90 % of the F/E inliers, and a pure rotation (E only) when the rotation aligning the viewing "
              "rays explains them as well. Before this change the homography was scored by its one-sided transfer "
              "error at the F/E threshold, which at 0.5 px noise keeps only ~63 % of a plane's points, so the flag "
              "never fired (0 of 60 planar and 0 of 60 rotation scenes in issue 23)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=200, help="scenes per kind, model and outlier level")
    ap.add_argument("--noise", type=float, default=0.5, help="pixel noise (standard deviation)")
    ap.add_argument("--points", type=int, default=200, help="correspondences per scene")
    ap.add_argument("--outliers", type=float, nargs="+", default=[0.0, 0.3], help="outlier fractions")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "geometry.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    start, machine = time.perf_counter(), Machine.measure()
    rows = [r for o in args.outliers for r in run(args.scenes, args.noise, o, args.points)]
    # Not a goal, for the record: general scenes with a short baseline (1-5 % of the depth), where the pose is
    # poorly determined and a flag is arguably right.
    rows += run(args.scenes, args.noise, 0.0, args.points, ("general",), (0.01, 0.05), "general, baseline 1-5 %")
    body = render(rows, args, machine.finish(), time.perf_counter() - start)
    write_section(args.out, "degeneracy", body, heading="## Degeneracy flag: planar and pure-rotation scenes")
    print(body)


if __name__ == "__main__":
    main()
