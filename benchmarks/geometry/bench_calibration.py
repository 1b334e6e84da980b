"""Chessboard calibration against cv2.calibrateCamera: CPU time and agreement, 13, 5 and 2 real views.

Writes the ``calibration`` section of docs/results/geometry.md. Run from the repository root:

    .venv/bin/python benchmarks/geometry/bench_calibration.py [--runs 9]

Corners come from OpenCV (findChessboardCorners + cornerSubPix) on the shared chessboard images and are given
to both calibrators; only the calibration itself is timed (process CPU time, 1 thread, median of the runs, the
two methods interleaved run by run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import Machine, write_section  # noqa: E402

from torchworks.geometry.calibration import calibrate_camera  # noqa: E402
from torchworks.geometry.pipelines.chessboard import board_points, find_chessboards  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "opencv_samples_geometry" / "chessboard_stereo"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "geometry.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    start, machine = time.perf_counter(), Machine.measure()
    corners, used, size = find_chessboards(str(DATA / "left*.jpg"), (9, 6), verbose=False)
    board = board_points((9, 6), 1.0)
    rows = []
    for views in (len(corners), 5, 2):
        pix = corners[:views]
        obj32, img32 = [board.astype(np.float32)] * views, [p.astype(np.float32) for p in pix]

        def ours(pix=pix):
            return calibrate_camera(torch.from_numpy(board), torch.from_numpy(pix), image_size=size)

        def opencv(obj32=obj32, img32=img32):
            return cv2.calibrateCamera(obj32, img32, size[::-1], None, None)

        times = {"ours": [], "cv": []}
        for _ in range(args.runs + 1):
            for name, fn in (("ours", ours), ("cv", opencv)):
                c = time.process_time()
                fn()
                times[name].append(time.process_time() - c)
        r, (rms, k, d, _, _) = ours(), opencv()
        t_ours, t_cv = statistics.median(times["ours"][1:]) * 1e3, statistics.median(times["cv"][1:]) * 1e3
        rel = float(np.abs(r.intrinsics.numpy()[[0, 1, 0, 1], [0, 1, 2, 2]] / k[[0, 1, 0, 1], [0, 1, 2, 2]] - 1).max())
        rows.append(f"| {views} | {t_cv:.2f} | {t_ours:.2f} | {t_ours / t_cv:.2f} | {rms:.6f} | {r.rms:.6f} | "
                    f"{rel:.1e} | {float(np.abs(r.distortion.numpy() - d.ravel()).max()):.1e} | {r.iterations} |")
    machine.finish()
    body = "\n".join([
        f"Command: `.venv/bin/python benchmarks/geometry/bench_calibration.py --runs {args.runs}`; "
        f"{time.perf_counter() - start:.0f} s.  ",
        f"Machine: {machine.describe()}; OpenCV {cv2.__version__}, 1 thread. Shared machine (background training "
        "at nice 19): medians of interleaved runs.  ",
        f"Data: the first 2, 5 and all {len(corners)} of `chessboard_stereo/left*.jpg` (9 x 6 inner corners), corners "
        "from OpenCV given to both. Model: OpenCV's default (fx, fy, cx, cy, k1, k2, p1, p2, k3). Goal (issue 23): "
        "within 2x OpenCV's CPU time, and two views accepted.",
        "",
        "| views | OpenCV CPU ms | ours CPU ms | ours / OpenCV | OpenCV RMS px | ours RMS px | max rel. diff of "
        "fx, fy, cx, cy | max abs. diff of distortion | LM iterations |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Ours: Zhang's closed form (OpenCV's centred initialisation for two views), then LM with the analytic "
        "Jacobian of the projection and a Schur complement on the 6 pose parameters of each view (9 x 9 reduced "
        "system), in NumPy. Before (issue 23): central differences over all 9 + 6V parameters, 7x OpenCV, and three "
        "views at least.",
    ])
    write_section(args.out, "calibration", body, heading="## Camera calibration")
    print(body)


if __name__ == "__main__":
    main()
