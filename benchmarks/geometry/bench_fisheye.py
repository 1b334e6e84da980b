"""Fisheye (Kannala-Brandt) model and undistortion maps against cv2.fisheye, cv2.initUndistortRectifyMap and
cv2.remap: agreement and CPU time.

Writes the ``fisheye`` section of docs/results/geometry.md. Run from the repository root:

    .venv/bin/python benchmarks/geometry/bench_fisheye.py [--runs 7]

Radial-tangential maps use the left camera of the shared chessboard data (its OpenCV calibration file); the
fisheye coefficients are synthetic (no fisheye images are shared). One thread, process CPU time, medians.
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

from torchworks.geometry.fisheye import (  # noqa: E402
    fisheye_project_points,
    fisheye_undistort_points,
    remap,
    undistort_rectify_map,
)

BOARD = ROOT.parent / "shared" / "data" / "opencv_samples_geometry" / "chessboard_stereo"


def cpu(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        c = time.process_time()
        fn()
        times.append(time.process_time() - c)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "geometry.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    machine = Machine.measure()
    k_f = torch.tensor([[400.0, 0, 320], [0, 410.0, 240], [0, 0, 1]], dtype=torch.float64)
    d_f = torch.tensor([0.1, -0.05, 0.01, -0.002], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(100_000, 3, generator=g, dtype=torch.float64)
    pts[:, 2] = pts[:, 2].abs() + 0.5
    kn, dn, pn = k_f.numpy(), d_f.numpy(), pts.numpy()[None]
    rows = []
    ours = fisheye_project_points(pts, k_f, d_f)
    ref = cv2.fisheye.projectPoints(pn, np.zeros(3), np.zeros(3), kn, dn)[0][0]
    rows.append(("fisheye projection, 100k points", cpu(lambda: cv2.fisheye.projectPoints(pn, np.zeros(3),
                 np.zeros(3), kn, dn), args.runs), cpu(lambda: fisheye_project_points(pts, k_f, d_f), args.runs),
                 f"max diff {np.abs(ours.numpy() - ref).max():.1e} px"))
    on = ours.numpy()[None]
    und = fisheye_undistort_points(ours, k_f, d_f, k_f)
    ref = cv2.fisheye.undistortPoints(on, kn, dn, P=kn)[0]
    truth = (pts[:, :2] / pts[:, 2:]) * k_f.diagonal()[:2] + k_f[:2, 2]
    rows.append(("fisheye undistortion, 100k points", cpu(lambda: cv2.fisheye.undistortPoints(on, kn, dn, P=kn),
                 args.runs), cpu(lambda: fisheye_undistort_points(ours, k_f, d_f, k_f), args.runs),
                 f"max diff {np.abs(und.numpy() - ref).max():.1e} px; error vs truth ours "
                 f"{float((und - truth).abs().max()):.1e}, OpenCV {np.abs(ref - truth.numpy()).max():.1e} px"))
    new_k = k_f.clone()
    new_k[0, 0] = new_k[1, 1] = 300.0
    m = undistort_rectify_map(k_f, d_f, new_k, 480, 640, model="fisheye")
    mx, my = cv2.fisheye.initUndistortRectifyMap(kn, dn, np.eye(3), new_k.numpy(), (640, 480), cv2.CV_32FC1)
    rows.append(("fisheye undistortion map, 640 x 480", cpu(lambda: cv2.fisheye.initUndistortRectifyMap(
        kn, dn, np.eye(3), new_k.numpy(), (640, 480), cv2.CV_32FC1), args.runs), cpu(lambda: undistort_rectify_map(
            k_f, d_f, new_k, 480, 640, model="fisheye"), args.runs),
        f"max diff {max(np.abs(m[..., 0].numpy() - mx).max(), np.abs(m[..., 1].numpy() - my).max()):.1e} px "
        "(OpenCV's maps are float32)"))
    fs = cv2.FileStorage(str(BOARD / "left_intrinsics.yml"), cv2.FILE_STORAGE_READ)
    k = torch.from_numpy(fs.getNode("camera_matrix").mat())
    d = torch.from_numpy(fs.getNode("distortion_coefficients").mat().ravel())
    img = cv2.imread(str(BOARD / "left01.jpg"), cv2.IMREAD_GRAYSCALE)
    h, w = img.shape
    m = undistort_rectify_map(k, d, k, h, w)
    mx, my = cv2.initUndistortRectifyMap(k.numpy(), d.numpy(), None, k.numpy(), (w, h), cv2.CV_32FC1)
    rows.append(("radial-tangential map (left camera), 640 x 480", cpu(lambda: cv2.initUndistortRectifyMap(
        k.numpy(), d.numpy(), None, k.numpy(), (w, h), cv2.CV_32FC1), args.runs), cpu(
        lambda: undistort_rectify_map(k, d, k, h, w), args.runs),
        f"max diff {max(np.abs(m[..., 0].numpy() - mx).max(), np.abs(m[..., 1].numpy() - my).max()):.1e} px"))
    t_img, t_map = torch.from_numpy(img).float()[None, None], m.float()
    out = remap(t_img, t_map)[0, 0].numpy()
    ref = cv2.remap(img, mx, my, cv2.INTER_LINEAR).astype(np.float32)
    rows.append(("remap left01.jpg (float32; grid_sample vs cv2.remap INTER_LINEAR)", cpu(
        lambda: cv2.remap(img, mx, my, cv2.INTER_LINEAR), args.runs), cpu(lambda: remap(t_img, t_map), args.runs),
        f"mean |diff| {np.abs(out - ref).mean():.2f}, max {np.abs(out - ref).max():.2f} gray levels (OpenCV: "
        "5-bit fixed-point weights, uint8 output)"))
    machine.finish()
    body = "\n".join([
        f"Command: `.venv/bin/python benchmarks/geometry/bench_fisheye.py --runs {args.runs}`.  ",
        f"Machine: {machine.describe()}; OpenCV {cv2.__version__}, 1 thread; shared machine, medians of runs.",
        "",
        "| operation | OpenCV CPU ms | ours CPU ms | ours / OpenCV | agreement |",
        "|---|---:|---:|---:|---|",
        *[f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} | {acc} |" for name, a, b, acc in rows],
        "",
        "Ours is float64 (maps and points) unless stated, differentiable, and batched over leading dimensions; "
        "`remap` is `torch.nn.functional.grid_sample` with align_corners=True, which puts OpenCV's integer pixel "
        "coordinates at the sampling grid's nodes.",
    ])
    write_section(args.out, "fisheye", body, heading="## Fisheye model and undistortion maps")
    print(body)


if __name__ == "__main__":
    main()
