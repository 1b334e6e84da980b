"""Speed and accuracy of torchworks.geometry against OpenCV and kornia, same run, 1 thread.

Writes the ``core`` section of docs/results/geometry.md. Run from the repository root:

    .venv/bin/python benchmarks/geometry/bench_geometry.py [--repeats 7] [--out docs/results/geometry.md]

Timings are medians over ``--repeats`` runs after a warm-up, reported as process CPU time (contention on a
shared machine inflates wall time but hardly CPU time) and wall time. Ratios are ours / reference on CPU time:
below 1 means faster than the reference. kornia rows (bench_geometry_kornia.py) are added when kornia imports.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks")]

from _common import Machine, write_section  # noqa: E402

from torchworks.geometry.camera import intrinsics_matrix, project_points, projection_matrix  # noqa: E402
from torchworks.geometry.epipolar import find_fundamental, sampson_distance  # noqa: E402
from torchworks.geometry.homography import find_homography, transfer_error  # noqa: E402
from torchworks.geometry.ransac import ransac  # noqa: E402
from torchworks.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle  # noqa: E402
from torchworks.geometry.se3 import make_pose  # noqa: E402
from torchworks.geometry.triangulation import triangulate_dlt  # noqa: E402

D = torch.float64
TITLE = "# Geometry benchmarks: torchworks.geometry against OpenCV, kornia and pycolmap"


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median CPU ms, median wall ms) after one warm-up call."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu) * 1e3, statistics.median(wall) * 1e3


def scene(n: int, noise: float = 0.5, planar: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    K = intrinsics_matrix(800.0, 800.0, 320.0, 240.0)
    R = axis_angle_to_matrix(torch.tensor([0.05, -0.2, 0.03], dtype=D))
    t = torch.tensor([1.0, 0.1, 0.2], dtype=D)
    xy = (torch.rand(n, 2, generator=g, dtype=D) - 0.5) * 4
    if planar:
        X = torch.cat([xy, (6 + 0.3 * xy[:, :1] - 0.2 * xy[:, 1:])], -1)
    else:
        z = 4 + 6 * torch.rand(n, 1, generator=g, dtype=D)
        X = torch.cat([xy * z / 5, z], -1)
    x1 = project_points(X, K) + noise * torch.randn(n, 2, generator=g, dtype=D)
    x2 = project_points(X @ R.T + t, K) + noise * torch.randn(n, 2, generator=g, dtype=D)
    return K, R, t, X, x1, x2


def rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def bench(repeats: int) -> list[tuple[str, str, str, float, float, str]]:
    rows = []  # (problem, setting, implementation, cpu ms, wall ms, accuracy)
    try:
        import bench_geometry_kornia as kb
    except ImportError:
        kb = None

    # Rodrigues, 100k, both directions.
    g = torch.Generator().manual_seed(0)
    vec = torch.randn(100_000, 3, generator=g, dtype=D)
    vec = vec / vec.norm(dim=-1, keepdim=True) * torch.rand(100_000, 1, generator=g, dtype=D) * math.pi
    vnp = vec.numpy()
    mats = axis_angle_to_matrix(vec)
    mnp = mats.numpy()
    cv_m = np.stack([cv2.Rodrigues(v)[0] for v in vnp])
    rows.append(("Rodrigues vec->mat 100k", "", "OpenCV loop f64", *timed(lambda: [cv2.Rodrigues(v) for v in vnp],
                                                                         max(1, repeats // 3)), "reference"))
    for dt in (D, torch.float32):
        v = vec.to(dt)
        err = float(np.abs(axis_angle_to_matrix(v).double().numpy() - cv_m).max())
        rows.append(("Rodrigues vec->mat 100k", "", f"ours {str(dt)[6:]}",
                     *timed(lambda v=v: axis_angle_to_matrix(v), repeats), f"max diff vs OpenCV {err:.1e}"))
    cv_rt = np.stack([cv2.Rodrigues(cv2.Rodrigues(m)[0])[0] for m in mnp])
    rows.append(("Rodrigues mat->vec 100k", "", "OpenCV loop f64", *timed(lambda: [cv2.Rodrigues(m) for m in mnp],
                                                                         max(1, repeats // 3)),
                 f"round trip {np.abs(cv_rt - mnp).max():.1e}"))
    for dt in (D, torch.float32):
        m = mats.to(dt)
        back = axis_angle_to_matrix(matrix_to_axis_angle(m)).double()
        rows.append(("Rodrigues mat->vec 100k", "", f"ours {str(dt)[6:]}", *timed(lambda m=m: matrix_to_axis_angle(m),
                                                                              repeats),
                     f"round trip {float((back - m.double()).abs().max()):.1e}"))
    # Near-singular angles (the OpenCV warts): round-trip error at 1e-6 rad and pi - 1e-6.
    for ang in (1e-6, math.pi - 1e-6):
        v = torch.nn.functional.normalize(torch.randn(500, 3, generator=g, dtype=D), dim=-1) * ang
        m = axis_angle_to_matrix(v).numpy()
        e_cv = max(np.abs(cv2.Rodrigues(cv2.Rodrigues(x)[0])[0] - x).max() for x in m)
        e_us = float((axis_angle_to_matrix(matrix_to_axis_angle(torch.from_numpy(m))) - torch.from_numpy(m)).abs()
                     .max())
        rows.append((f"round trip at {ang:.6g} rad (500 axes)", "", "OpenCV vs ours", float("nan"), float("nan"),
                     f"OpenCV {e_cv:.1e}, ours {e_us:.1e}"))
    if kb:
        rows += kb.rotation_rows(timed, repeats, vec, mats)
        rows += kb.camera_rows(timed, repeats)

    # 8-point F, N = 1000, single problem and batch of 64.
    K, R, t, X, x1, x2 = scene(1000)
    a1, a2 = x1.numpy(), x2.numpy()
    f_cv = torch.from_numpy(cv2.findFundamentalMat(a1, a2, cv2.FM_8POINT)[0])
    rows.append(("8-point F, N=1000", "", "OpenCV FM_8POINT",
                 *timed(lambda: cv2.findFundamentalMat(a1, a2, cv2.FM_8POINT), repeats * 5),
                 f"Sampson RMS {rms(sampson_distance(f_cv, x1, x2)):.5f} px"))
    f_us = find_fundamental(x1, x2)
    rows.append(("8-point F, N=1000", "single", "ours f64", *timed(lambda: find_fundamental(x1, x2), repeats * 5),
                 f"Sampson RMS {rms(sampson_distance(f_us, x1, x2)):.5f} px"))
    b1, b2 = x1.expand(64, -1, -1).contiguous(), x2.expand(64, -1, -1).contiguous()
    c, w = timed(lambda: find_fundamental(b1, b2), repeats)
    rows.append(("8-point F, N=1000", "batch 64 (per problem)", "ours f64", c / 64, w / 64, ""))
    if kb:
        rows += kb.fundamental_rows(timed, repeats, x1, x2, b1, b2, K)

    # Homography DLT, N = 100, single and batch of 1000.
    K, R, t, X, h1, h2 = scene(100, planar=True)
    n1, n2 = h1.numpy(), h2.numpy()
    h_cv = torch.from_numpy(cv2.findHomography(n1, n2, 0)[0])
    rows.append(("homography, N=100", "", "OpenCV findHomography(0) (DLT + LM)",
                 *timed(lambda: cv2.findHomography(n1, n2, 0), repeats * 5),
                 f"transfer RMS {rms(transfer_error(h_cv, h1, h2)):.5f} px"))
    h_us = find_homography(h1, h2)
    rows.append(("homography, N=100", "single", "ours f64 (DLT, QR+SVD)",
                 *timed(lambda: find_homography(h1, h2), repeats * 5),
                 f"transfer RMS {rms(transfer_error(h_us, h1, h2)):.5f} px"))
    hb1, hb2 = h1.expand(1000, -1, -1).contiguous(), h2.expand(1000, -1, -1).contiguous()
    c, w = timed(lambda: find_homography(hb1, hb2), max(1, repeats // 2))
    rows.append(("homography, N=100", "batch 1000 (per problem)", "ours f64", c / 1000, w / 1000, ""))
    if kb:
        rows += kb.homography_rows(timed, repeats, h1, h2, hb1, hb2)

    # Triangulation of 100k points.
    K, R, t, X, x1, x2 = scene(100_000)
    eye = make_pose(torch.eye(3, dtype=D), torch.zeros(3, dtype=D))
    P = torch.stack([projection_matrix(K, eye), projection_matrix(K, make_pose(R, t))])
    x = torch.stack([x1, x2])
    p1, p2, t1, t2 = P[0].numpy(), P[1].numpy(), x1.numpy().T.copy(), x2.numpy().T.copy()
    ref = cv2.triangulatePoints(p1, p2, t1, t2)
    ref = (ref[:3] / ref[3]).T
    rows.append(("triangulation, 100k points", "", "OpenCV triangulatePoints f64",
                 *timed(lambda: cv2.triangulatePoints(p1, p2, t1, t2), repeats),
                 f"mean 3D error {np.linalg.norm(ref - X.numpy(), axis=1).mean():.5f}"))
    for solver, dt in (("adjugate", D), ("adjugate", torch.float32), ("svd", D)):
        Pd, xd = P.to(dt), x.to(dt)
        out = triangulate_dlt(Pd, xd, solver).double().numpy()
        rel = np.abs(out - ref).max() / np.abs(ref).max()
        rows.append(("triangulation, 100k points", "", f"ours {solver} {str(dt)[6:]}",
                     *timed(lambda Pd=Pd, xd=xd, s=solver: triangulate_dlt(Pd, xd, s), max(1, repeats // 2)),
                     f"max rel. diff vs OpenCV {rel:.1e}"))
    if kb:
        rows += kb.triangulation_rows(timed, repeats, P, x, ref)

    # Robust F, N = 1000 with 30 % outliers.
    K, R, t, X, x1, x2 = scene(1000, seed=3)
    g = torch.Generator().manual_seed(1)
    x2 = x2.clone()
    x2[:300] = torch.rand(300, 2, generator=g, dtype=D) * torch.tensor([640.0, 480.0], dtype=D)
    truth = torch.arange(1000) >= 300
    a1, a2 = x1.numpy(), x2.numpy()
    mask = torch.from_numpy(cv2.findFundamentalMat(a1, a2, cv2.USAC_MAGSAC, 1.0, 0.999)[1].ravel().astype(bool))

    def quality(m):
        hit = int((m & truth).sum())
        return f"recall {hit / 700:.3f}, precision {hit / max(int(m.sum()), 1):.3f}"

    rows.append(("robust F, N=1000, 30% outliers", "", "OpenCV USAC_MAGSAC",
                 *timed(lambda: cv2.findFundamentalMat(a1, a2, cv2.USAC_MAGSAC, 1.0, 0.999), repeats), quality(mask)))
    res = ransac(x1, x2, "fundamental", threshold=1.0)
    rows.append(("robust F, N=1000, 30% outliers", "", "ours ransac (LO, degeneracy check)",
                 *timed(lambda: ransac(x1, x2, "fundamental", threshold=1.0), repeats), quality(res.inliers)))
    if kb:
        rows += kb.robust_f_rows(timed, repeats, x1, x2, quality)
        rows += kb.pose_rows(timed, repeats, scene)
    return rows


def ratios(rows) -> dict:
    """Ratio columns per row index: ours / fastest OpenCV row of the problem, ours / fastest kornia row of the
    problem and setting (or of the problem when kornia has no row for that setting). Rows marked as less exact
    ("not a speed reference") do not count."""
    best: dict = {}
    for problem, setting, impl, cpu, _, acc in rows:
        lib = impl.split()[0]
        if lib in ("OpenCV", "kornia") and not math.isnan(cpu) and "not a speed reference" not in acc:
            for key in ((lib, problem, setting), (lib, problem, None)):
                best[key] = min(best.get(key, math.inf), cpu)
    out = {}
    for i, (problem, setting, impl, cpu, _, _) in enumerate(rows):
        if not impl.startswith("ours") or math.isnan(cpu):
            continue
        cv = best.get(("OpenCV", problem, ""), best.get(("OpenCV", problem, None)))
        ko = best.get(("kornia", problem, setting), best.get(("kornia", problem, None)))
        out[i] = ("" if cv is None else f"{cpu / cv:.2f}", "" if ko is None else f"{cpu / ko:.2f}")
    return out


# The speed-goal problems in batch mode: (problem, setting, our row).
GOAL = [("Rodrigues vec->mat 100k", "", "ours float64"), ("Rodrigues mat->vec 100k", "", "ours float64"),
        ("8-point F, N=1000", "batch 64 (per problem)", "ours f64"),
        ("homography, N=100", "batch 1000 (per problem)", "ours f64"),
        ("triangulation, 100k points", "", "ours adjugate float64")]


def goal_rows(per_run: list[list]) -> list[tuple[str, str, str, list[float]]]:
    """Per goal problem: ours / the fastest (exact enough) OpenCV or kornia row, one ratio per run."""
    out = []
    for problem, setting, impl in GOAL:
        ratios_run = []
        for rows in per_run:
            refs = [cpu for p, st, im, cpu, _, acc in rows
                    if p == problem and st in (setting, "") and im.split()[0] in ("OpenCV", "kornia")
                    and not math.isnan(cpu) and "not a speed reference" not in acc]
            ours = [cpu for p, st, im, cpu, _, _ in rows if (p, st, im) == (problem, setting, impl)]
            if refs and ours:
                ratios_run.append(ours[0] / min(refs))
        if ratios_run:
            out.append((problem, setting, impl, ratios_run))
    return out


def combine(per_run: list[list]) -> list:
    """One row per measurement: the median over runs of CPU and wall time (accuracy text from the first run)."""
    rows = []
    for i, first in enumerate(per_run[0]):
        same = [r[i] for r in per_run]
        assert all(r[:3] == first[:3] for r in same), "runs produced different rows"
        rows.append((*first[:3], statistics.median(r[3] for r in same), statistics.median(r[4] for r in same),
                     first[5]))
    return rows


def render(rows, args, elapsed: float, per_run: list[list], machine: Machine) -> str:
    try:
        import kornia

        kornia_version = f", kornia {kornia.__version__}"
        kornia_note = ("kornia runs on the same float64 tensors in the same process; its rows and the parity facts "
                       "(max |ours - kornia|) come from benchmarks/geometry/bench_geometry_kornia.py.")
    except ImportError:
        kornia_version = ""
        kornia_note = "kornia is not installed, so its rows are absent."
    lines = [
        f"Command: `.venv/bin/python benchmarks/geometry/bench_geometry.py --repeats {args.repeats} "
        f"--runs {args.runs}`  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}; run time {elapsed:.0f} s  ",
        f"Machine: {machine.arch} {machine.cpu}, {machine.cores} cores, {platform.platform()}, "
        f"{machine.load_text()}{args.machine_note}  ",
        f"Versions: Python {platform.python_version()}, torch {torch.__version__}, OpenCV {cv2.__version__}"
        f"{kornia_version}, numpy {np.__version__}  ",
        f"Threads: torch {torch.get_num_threads()} (torch.set_num_threads(1)), OpenCV {cv2.getNumThreads()}. "
        f"Times are medians over {args.runs} runs of the whole benchmark (this VM's speed drifts by up to 2x over "
        "seconds, so one run can flatter either side) of each run's median process CPU time (and wall time) after "
        "a warm-up; ratio = ours / reference CPU time (< 1 is faster), against the fastest OpenCV row of the "
        "problem and the fastest kornia row of the same problem and setting; rows marked less exact are not "
        "speed references.  ",
        kornia_note,
        "",
        "| problem | setting | implementation | CPU ms | wall ms | ours / OpenCV | ours / kornia | accuracy, parity |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]

    def fmt(v: float) -> str:
        return "" if math.isnan(v) else (f"{v:.4f}" if v < 1 else f"{v:.1f}")

    rat = ratios(rows)
    for i, (problem, setting, impl, cpu, wall, acc) in enumerate(rows):
        r_cv, r_k = rat.get(i, ("", ""))
        lines.append(f"| {problem} | {setting} | {impl} | {fmt(cpu)} | {fmt(wall)} | {r_cv} | {r_k} | {acc} |")
    lines += ["", "Speed goal (issue 3: in batch mode at least as fast as the fastest of OpenCV and kornia, never "
              "less exact): ours / fastest reference per run, median and range over the runs.", "",
              "| problem | setting | ours | median ratio | range over runs | met |", "|---|---|---|---:|---|---|"]
    for problem, setting, impl, ratio_runs in goal_rows(per_run):
        med = statistics.median(ratio_runs)
        lines.append(f"| {problem} | {setting} | {impl} | {med:.2f} | {min(ratio_runs):.2f}-{max(ratio_runs):.2f} "
                     f"| {'yes' if med <= 1 else 'no'} |")
    lines += ["", "Notes:",
              "- OpenCV's findFundamentalMat/findHomography round points to float32 and findHomography(0) adds LM "
              "refinement of the transfer error; ours is the plain normalized DLT in float64.",
              "- 8-point F (ours): the null vector of the normalized design matrix A comes from A^T A, built from "
              "a 6x6 moment matrix of the points (36 products per point instead of 81), and is accepted only where "
              "the bound eps * lambda_max / eigen-gap is below 1e4 ulps (the condition number of A is ~16 here); "
              "other problems take QR + SVD of A. Tests hold it to 1e-13 of the QR + SVD answer. Without autograd "
              "the monomials are written into reused block buffers: 64 x 1000 points as fresh temporaries cost "
              "~1,900 page faults per call (glibc maps allocations of several MB afresh each time), as much time "
              "as the arithmetic.",
              "- Homography (ours): QR of the 2N x 9 system, then inverse iteration on the 9x9 triangular factor "
              "(each step two triangular solves; accepted when its measured contraction proves convergence, else "
              "the SVD of R). Against a 40-digit mpmath reference it is as exact as QR + SVD (test). kornia's "
              "`svd` solver forms the normal equations A^T A first; its `lu` solver is 2e-2 off and is therefore "
              "not used as a speed reference.",
              "- Rodrigues in OpenCV handles one rotation per call, hence the Python loop; it returns exactly 0 "
              "below ~1e-5 rad, which shows in the round trip at 1e-6 rad.",
              "- `adjugate` triangulation: closed-form adjugate of the 4x4 DLT system + 2 inverse-iteration steps; "
              "`svd`: one LAPACK SVD per point (exact reference).",
              "- RANSAC (ours): all minimal samples of a round are solved as one batch and scored with one GEMM; "
              "many-hypothesis rounds are pre-ranked on a point subset (preemptive scoring). The robust rows "
              "include LO and, for ours, the degeneracy test (a homography RANSAC on the inliers) and, for E, "
              "cheirality + LM on the Sampson error; OpenCV's findEssentialMat rows exclude recoverPose.",
              "- ours matrix_to_quaternion / matrix_to_axis_angle first check that the input is a rotation "
              "(R^T R = I, det R = +1) and raise otherwise; kornia skips that check by default "
              "(check_rotation=False). Ours works on a (3, 3, M) copy of the entries (contiguous rows) and picks "
              "Shepperd's pivot by comparisons: argmax/gather across a leading dimension were ~10x slower.",
              "- Undistortion: ours runs Newton steps until the update is below a few ulps (3-4 steps here); "
              "kornia and OpenCV run a fixed number of fixed-point iterations (kornia's default 5 stops ~4e-4 px "
              "short, hence also the 20-iteration row).",
              "- 5-point: OpenCV is called once per problem (RANSAC on exactly 5 points runs its 5-point solver "
              "once); kornia and ours solve all 1000 problems in one batched call. \"true E found\" = some returned "
              "candidate equals the true E to 1e-9 (max abs entry, unit Frobenius norm, up to sign).",
              ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per row and run (median taken)")
    ap.add_argument("--runs", type=int, default=5, help="whole-benchmark runs; the table shows their medians")
    ap.add_argument("--machine-note", default="", help="appended to the machine line (e.g. what else ran)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "geometry.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_geometry_kornia
    start, machine = time.perf_counter(), Machine.measure()
    per_run = [bench(args.repeats) for _ in range(args.runs)]
    text = render(combine(per_run), args, time.perf_counter() - start, per_run, machine.finish())
    write_section(args.out, "core", text, heading="## Primitives against OpenCV and kornia", title=TITLE)
    print(text)


if __name__ == "__main__":
    main()
