"""``torchworks geometry {two-view, calibrate, convert-pose}``: OpenCV for image IO and features, ours for geometry.

Heavy imports (torch, cv2, torchworks.geometry) happen inside the functions so ``torchworks --help`` stays fast.
Register with :func:`add_parser` and dispatch with :func:`run`. The plain functions :func:`two_view`,
:func:`calibrate` and :func:`convert_pose_values` are usable without argparse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONVENTIONS = ("opencv", "colmap", "opengl", "nerf", "blender", "llff", "pytorch3d")
KINDS = ("world_to_cam", "cam_to_world")
SOLVERS = ("5point", "8point")


def _intrinsics_arg(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise argparse.ArgumentTypeError(f"--K takes fx,fy,cx,cy (4 numbers), got {text!r}")
    return vals  # type: ignore[return-value]


def _pattern_arg(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--pattern takes COLSxROWS inner corners, e.g. 9x6; got {text!r}") from exc
    return cols, rows


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``geometry`` and its actions on an ``add_subparsers()`` object; returns the geometry parser."""
    g = subparsers.add_parser("geometry", help="two-view geometry, camera calibration, pose conventions",
                              description="Camera geometry from the command line. Features and image IO use "
                              "OpenCV (the [cv] extra); the geometry is torchworks.geometry.")
    gsub = g.add_subparsers(dest="geometry_verb", metavar="ACTION", required=True)
    tv = gsub.add_parser("two-view", help="match two images, estimate F/E robustly, recover and print the pose",
                         description="SIFT matches (ORB if SIFT is unavailable), RANSAC for the essential matrix "
                         "(5-point solver by default, see --solver), cheirality and LM refinement; prints the "
                         "relative pose x2 = R x1 + t (|t| = 1) and a degeneracy flag, and optionally writes a PNG "
                         "with epipolar lines.")
    tv.add_argument("image_a")
    tv.add_argument("image_b")
    tv.add_argument("--K", type=_intrinsics_arg, metavar="fx,fy,cx,cy",
                    help="intrinsics (both images); default: f = 1.2 max(w, h), centred principal point")
    tv.add_argument("--out", metavar="PNG", help="write the pair side by side with epipolar lines")
    tv.add_argument("--threshold", type=float, default=1.0, help="inlier threshold in pixels (default 1)")
    tv.add_argument("--seed", type=int, default=0)
    tv.add_argument("--solver", choices=SOLVERS, default="5point",
                    help="minimal solver inside RANSAC: 5point samples E directly (Nister/Stewenius, default); "
                    "8point searches F with 7-point samples and 8-point refits, then upgrades it to E with K")
    ca = gsub.add_parser("calibrate", help="calibrate a camera from chessboard images",
                         description="Detect chessboard corners with OpenCV, then Zhang's closed form and "
                         "Levenberg-Marquardt refinement (k1, k2, p1, p2, k3).")
    ca.add_argument("images", help="glob of images, quoted, e.g. 'left*.jpg'")
    ca.add_argument("--pattern", type=_pattern_arg, default=(9, 6), help="inner corners COLSxROWS (default 9x6)")
    ca.add_argument("--square", type=float, default=1.0, help="square size (units of the translations)")
    cp = gsub.add_parser("convert-pose", help="convert a pose between camera conventions",
                         description=f"Conventions: {', '.join(CONVENTIONS)}. Input: 12 (3x4) or 16 (4x4) "
                         "row-major numbers, or a text/.npy file with one pose per row. pytorch3d poses are "
                         "row-vector matrices (Transform3d.get_matrix()).")
    cp.add_argument("values", nargs="*", help="pose numbers, or a single file path")
    cp.add_argument("--from", dest="src", required=True, choices=CONVENTIONS)
    cp.add_argument("--to", dest="dst", required=True, choices=CONVENTIONS)
    cp.add_argument("--from-kind", choices=KINDS, default="cam_to_world",
                    help="what the input maps (default cam_to_world, as NeRF/LLFF files store)")
    cp.add_argument("--to-kind", choices=KINDS, help="kind of the output (default: same as --from-kind)")
    return g


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed ``geometry`` command; returns the exit code."""
    if args.geometry_verb == "two-view":
        res = two_view(args.image_a, args.image_b, K=args.K, out=args.out, threshold=args.threshold, seed=args.seed,
                       solver=args.solver)
        print(res["report"])
        return 0
    if args.geometry_verb == "calibrate":
        r = calibrate(args.images, pattern=args.pattern, square=args.square)
        k = r.intrinsics
        print(f"views {r.rotations.shape[0]}  rms {r.rms:.4f} px")
        print(f"fx {k[0, 0]:.4f}  fy {k[1, 1]:.4f}  cx {k[0, 2]:.4f}  cy {k[1, 2]:.4f}")
        print("distortion (k1 k2 p1 p2 k3) " + " ".join(f"{v:.6g}" for v in r.distortion.tolist()))
        return 0
    if args.geometry_verb == "convert-pose":
        out = convert_pose_values(args.values, args.src, args.dst, args.from_kind, args.to_kind)
        for pose in out:
            for row in pose:
                print(" ".join(f"{v + 0.0: .10g}" for v in row))  # + 0.0 turns -0.0 into 0.0
            print()
        return 0
    raise ValueError(f"unknown geometry action {args.geometry_verb!r}")


def _read_gray(path: str):
    import cv2

    if not Path(path).is_file():
        raise FileNotFoundError(f"image not found: {path}")
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        from torchworks.core.errors import DataError

        raise DataError(f"cannot decode image {path}")
    return img


def _match(img_a, img_b):
    import cv2

    try:
        det, norm, ratio = cv2.SIFT_create(contrastThreshold=0.01), cv2.NORM_L2, 0.8
    except AttributeError:  # builds without SIFT
        det, norm, ratio = cv2.ORB_create(4000), cv2.NORM_HAMMING, 0.75
    ka, da = det.detectAndCompute(img_a, None)
    kb, db = det.detectAndCompute(img_b, None)
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        return [], []
    pairs = cv2.BFMatcher(norm).knnMatch(da, db, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    return [ka[m.queryIdx].pt for m in good], [kb[m.trainIdx].pt for m in good]


def two_view(path_a: str, path_b: str, K=None, out: str | None = None, threshold: float = 1.0, seed: int = 0,
             solver: str = "5point") -> dict:
    """Relative pose of two images. Returns a dict with R, t, F, inliers, degenerate flags and a text report.

    ``solver`` is the RANSAC minimal solver for E: "5point" (default) or "8point" (F search upgraded with K).
    """
    import math

    import torch

    from torchworks.core.errors import DataError
    from torchworks.geometry.epipolar import fundamental_from_essential
    from torchworks.geometry.ransac import ransac
    from torchworks.geometry.rotations import matrix_to_axis_angle

    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    img_a, img_b = _read_gray(path_a), _read_gray(path_b)
    pa, pb = _match(img_a, img_b)
    if len(pa) < 8:
        raise DataError(f"only {len(pa)} feature matches between {path_a} and {path_b}; need at least 8")
    x1 = torch.tensor(pa, dtype=torch.float64)
    x2 = torch.tensor(pb, dtype=torch.float64)
    guessed = K is None
    if guessed:
        h, w = img_a.shape[:2]
        K = (1.2 * max(h, w), 1.2 * max(h, w), w / 2, h / 2)
    k = torch.tensor([[K[0], 0, K[2]], [0, K[1], K[3]], [0, 0, 1]], dtype=torch.float64)
    r = ransac(x1, x2, "essential", threshold=threshold, intrinsics1=k, intrinsics2=k, seed=seed,
               essential_solver=solver)
    if r.rotation is None:
        raise DataError(f"no consistent two-view geometry found ({r.num_inliers} inliers of {len(pa)} matches)")
    f = fundamental_from_essential(r.model, k, k)
    rvec = matrix_to_axis_angle(r.rotation, project=True)
    lines = [f"matches {len(pa)}  inliers {r.num_inliers}  samples {r.iterations} ({solver} solver)",
             f"K {'(guessed) ' if guessed else ''}fx {K[0]:.2f} fy {K[1]:.2f} cx {K[2]:.2f} cy {K[3]:.2f}",
             "R (x2 = R x1 + t):"] + ["  " + " ".join(f"{v: .6f}" for v in row) for row in r.rotation.tolist()]
    lines += [f"rotation {math.degrees(float(rvec.norm())):.3f} deg about "
              + " ".join(f"{v:.4f}" for v in (rvec / rvec.norm().clamp(min=1e-300)).tolist()),
              "t (unit) " + " ".join(f"{v: .6f}" for v in r.translation.tolist())]
    if r.degenerate:
        lines.append(f"WARNING: degenerate configuration ({r.degeneracy}): the pose is not determined by the data")
    if out:
        _draw(img_a, img_b, x1[r.inliers], x2[r.inliers], f, out)
        lines.append(f"wrote {out}")
    return {"R": r.rotation, "t": r.translation, "F": f, "E": r.model, "inliers": r.inliers, "K": k,
            "degenerate": r.degenerate, "degeneracy": r.degeneracy, "report": "\n".join(lines)}


def _draw(img_a, img_b, x1, x2, f, out: str, max_lines: int = 40) -> None:
    import cv2
    import numpy as np

    from torchworks.geometry.epipolar import epipolar_lines

    h = max(img_a.shape[0], img_b.shape[0])
    canvas = np.zeros((h, img_a.shape[1] + img_b.shape[1], 3), np.uint8)
    canvas[: img_a.shape[0], : img_a.shape[1]] = cv2.cvtColor(img_a, cv2.COLOR_GRAY2BGR)
    canvas[: img_b.shape[0], img_a.shape[1]:] = cv2.cvtColor(img_b, cv2.COLOR_GRAY2BGR)
    idx = np.linspace(0, len(x1) - 1, min(max_lines, len(x1))).astype(int)
    rng = np.random.default_rng(0)
    for img, lines, pts, off in ((img_b, epipolar_lines(f, x1[idx], 1), x2[idx], img_a.shape[1]),
                                 (img_a, epipolar_lines(f, x2[idx], 2), x1[idx], 0)):
        w = img.shape[1]
        for (a, b, c), p in zip(lines.tolist(), pts.tolist(), strict=True):
            color = tuple(int(v) for v in rng.integers(64, 256, 3))
            if abs(b) > 1e-12:
                y0, y1 = -c / b, -(c + a * (w - 1)) / b
                cv2.line(canvas, (off, int(round(y0))), (off + w - 1, int(round(y1))), color, 1, cv2.LINE_AA)
            cv2.circle(canvas, (off + int(round(p[0])), int(round(p[1]))), 3, color, -1, cv2.LINE_AA)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(out, canvas):
        from torchworks.core.errors import DataError

        raise DataError(f"cannot write {out}")


def calibrate(images: str, pattern: tuple[int, int] = (9, 6), square: float = 1.0):
    """Calibrate from a glob of chessboard images; returns a ``geometry.calibration.CalibrationResult``."""
    import glob

    import cv2
    import numpy as np
    import torch

    from torchworks.core.errors import DataError
    from torchworks.geometry.calibration import calibrate_camera

    paths = sorted(glob.glob(images))
    if not paths:
        raise FileNotFoundError(f"no images match {images!r}")
    found, size = [], None
    for p in paths:
        gray = _read_gray(p)
        size = size or gray.shape
        ok, corners = cv2.findChessboardCorners(gray, pattern)
        if ok:
            corners = cv2.cornerSubPix(gray, corners.reshape(-1, 1, 2), (11, 11), (-1, -1),
                                       (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3))
            found.append(corners.reshape(-1, 2).astype(np.float64))
        else:
            print(f"no {pattern[0]}x{pattern[1]} chessboard in {p}", file=sys.stderr)
    if len(found) < 3:
        raise DataError(f"chessboard found in {len(found)} of {len(paths)} images; need at least 3")
    board = np.zeros((pattern[0] * pattern[1], 3))
    board[:, :2] = np.mgrid[0:pattern[0], 0:pattern[1]].T.reshape(-1, 2) * square
    return calibrate_camera(torch.from_numpy(board), torch.from_numpy(np.stack(found)))


def convert_pose_values(values: list[str], src: str, dst: str, src_kind: str = "cam_to_world",
                        dst_kind: str | None = None) -> list[list[list[float]]]:
    """Convert poses given as 12/16 numbers (or a file of them, one pose per row); returns 4x4 nested lists."""
    import numpy as np
    import torch

    from torchworks.core.errors import ConfigError
    from torchworks.geometry.conventions import convert_pose

    if len(values) == 1 and Path(values[0]).is_file():
        path = Path(values[0])
        arr = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    elif len(values) == 1 and not _is_number(values[0]):
        raise FileNotFoundError(f"pose file not found: {values[0]}")
    else:
        try:
            arr = np.array([float(v) for v in values])
        except ValueError as exc:
            raise ConfigError(f"pose values must be numbers: {exc}") from exc
    arr = np.asarray(arr, dtype=np.float64).reshape(-1, arr.shape[-1] if arr.ndim > 1 else arr.size)
    if arr.shape[-1] not in (12, 16):
        raise ConfigError(f"each pose needs 12 (3x4) or 16 (4x4) numbers, got {arr.shape[-1]}")
    poses = torch.from_numpy(arr).reshape(-1, arr.shape[-1] // 4, 4)
    if src == "pytorch3d" and poses.shape[-2] != 4:
        raise ConfigError("pytorch3d poses are 4x4 row-vector matrices (16 numbers)")
    try:
        out = convert_pose(poses, src, dst, src_kind=src_kind, dst_kind=dst_kind)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return out.tolist()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
