"""``torchworks geometry {two-view, calibrate, sfm, convert-pose}``: argument parsing; the work is in geometry.

The pipelines live in :mod:`torchworks.geometry.pipelines` (two-view matching, chessboard calibration, incremental
structure from motion); this module
parses arguments, calls them and prints. Heavy imports (torch, cv2, torchworks.geometry) happen inside the
functions so ``torchworks --help`` stays fast. Register with :func:`add_parser` and dispatch with :func:`run`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from torchworks.cli._common import add_out, float_in, int_in, out_dir, read_text

CONVENTIONS = ("opencv", "colmap", "opengl", "nerf", "blender", "llff", "pytorch3d")
KINDS = ("world_to_cam", "cam_to_world")
SOLVERS = ("5point", "8point")  # torchworks.geometry.pipelines.two_view.SOLVERS (not imported: --help stays fast)


def _intrinsics_arg(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"--K takes fx,fy,cx,cy (4 finite numbers), got {text!r}")
    if vals[0] <= 0 or vals[1] <= 0:
        raise argparse.ArgumentTypeError(f"--K focal lengths fx, fy must be > 0, got {text!r}")
    return vals  # type: ignore[return-value]


def _pattern_arg(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--pattern takes COLSxROWS inner corners, e.g. 9x6; got {text!r}") from exc
    if cols < 2 or rows < 2:
        raise argparse.ArgumentTypeError(f"--pattern needs at least 2x2 inner corners, got {text!r}")
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
    add_out(tv, "write the pair side by side with epipolar lines to this PNG", metavar="PNG")
    tv.add_argument("--threshold", type=float_in(0, lo_open=True), default=1.0,
                    help="inlier threshold in pixels (default 1)")
    tv.add_argument("--seed", type=int, default=0)
    tv.add_argument("--solver", choices=SOLVERS, default="5point",
                    help="minimal solver inside RANSAC: 5point samples E directly (Nister/Stewenius, default); "
                    "8point searches F with 7-point samples and 8-point refits, then upgrades it to E with K")
    tv.add_argument("--force", action="store_true",
                    help="print a pose even when it rests on too few inliers (< 15, or < 20%% of the matches), "
                    "which is refused by default because such poses are usually wrong")
    ca = gsub.add_parser("calibrate", help="calibrate a camera from chessboard images",
                         description="Detect chessboard corners with OpenCV, then Zhang's closed form and "
                         "Levenberg-Marquardt refinement (k1, k2, p1, p2, k3).")
    ca.add_argument("images", help="glob of images, quoted, e.g. 'left*.jpg'")
    ca.add_argument("--pattern", type=_pattern_arg, default=(9, 6), help="inner corners COLSxROWS (default 9x6)")
    ca.add_argument("--square", type=float_in(0, lo_open=True), default=1.0,
                    help="square size (units of the translations)")
    sf = gsub.add_parser("sfm", help="incremental structure from motion: COLMAP text model, PLY and a picture",
                         description="SIFT features and matches (ratio test, mutual check), essential-matrix "
                         "verification, the best initial pair, PnP registration of one image after another, "
                         "triangulation with angle and reprojection checks, bundle adjustment after each step and at "
                         "the end. Writes cameras.txt, images.txt, points3D.txt (COLMAP's text format), points.ply "
                         "and model.png into --out, atomically (nothing is left behind on failure). All images must "
                         "share one camera.")
    sf.add_argument("images", nargs="+", help="image files and/or folders of images (two or more images)")
    sf.add_argument("--K", type=_intrinsics_arg, metavar="fx,fy,cx,cy",
                    help="intrinsics of the full-size images; default: f = 1.2 max(w, h), centred principal point")
    add_out(sf, "folder for the model (must not exist, or be empty; see --overwrite)", metavar="DIR", type=out_dir)
    sf.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    sf.add_argument("--max-size", type=int_in(64), default=2000,
                    help="detect features on copies at most this many pixels wide or high (default 2000)")
    sf.add_argument("--max-features", type=int_in(100), default=8000, help="features kept per image (default 8000)")
    sf.add_argument("--refine-focal", action="store_true", help="refine fx, fy in the final bundle adjustment")
    sf.add_argument("--seed", type=int, default=0)
    sf.add_argument("--threads", type=int_in(1), default=1,
                    help="torch and OpenCV threads (default 1: many small operations run faster on one thread)")
    sf.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
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
                       solver=args.solver, force=args.force)
        print(res["report"])
        return 0
    if args.geometry_verb == "calibrate":
        from torchworks.geometry.pipelines.chessboard import calibrate_images

        r = calibrate_images(args.images, pattern=args.pattern, square=args.square)
        k = r.intrinsics
        print(f"views {r.rotations.shape[0]}  rms {r.rms:.4f} px")
        print(f"fx {k[0, 0]:.4f}  fy {k[1, 1]:.4f}  cx {k[0, 2]:.4f}  cy {k[1, 2]:.4f}")
        print("distortion (k1 k2 p1 p2 k3) " + " ".join(f"{v:.6g}" for v in r.distortion.tolist()))
        return 0
    if args.geometry_verb == "sfm":
        return _sfm(args)
    if args.geometry_verb == "convert-pose":
        out = convert_pose_values(args.values, args.src, args.dst, args.from_kind, args.to_kind)
        for pose in out:
            for row in pose:
                print(" ".join(f"{v + 0.0: .10g}" for v in row))  # + 0.0 turns -0.0 into 0.0
            print()
        return 0
    raise ValueError(f"unknown geometry action {args.geometry_verb!r}")


def _sfm(args: argparse.Namespace) -> int:
    import sys

    from torchworks.geometry.pipelines.model_io import write_model
    from torchworks.geometry.pipelines.sfm import reconstruct

    if args.out is None:
        from torchworks.core.errors import ConfigError

        raise ConfigError("sfm needs -o/--out DIR for the model")
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise FileExistsError(f"{out} exists and is not an empty folder; choose another --out or pass --overwrite")
    rec = reconstruct(args.images, K=args.K, max_size=args.max_size, max_features=args.max_features,
                      refine_focal=args.refine_focal, seed=args.seed,
                      progress=None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)))
    write_model(rec, out, overwrite=args.overwrite)
    print(f"registered {len(rec.registered)} of {len(rec.paths)} images, {len(rec.points)} points; wrote {out}/"
          "{cameras.txt, images.txt, points3D.txt, points.ply, model.png}")
    return 0


def two_view(path_a: str, path_b: str, **kwargs) -> dict:
    """:func:`torchworks.geometry.pipelines.two_view.two_view` (kept here for callers of the old location)."""
    from torchworks.geometry.pipelines.two_view import two_view as run_two_view

    return run_two_view(path_a, path_b, **kwargs)


def convert_pose_values(values: list[str], src: str, dst: str, src_kind: str = "cam_to_world",
                        dst_kind: str | None = None) -> list[list[list[float]]]:
    """Convert poses given as 12/16 numbers (or a file of them, one pose per row); returns 4x4 nested lists."""
    import numpy as np
    import torch

    from torchworks.core.errors import ConfigError
    from torchworks.geometry.conventions import convert_pose

    if not values:
        raise ConfigError("no pose given: pass 12 (3x4) or 16 (4x4) numbers, or a pose file")
    if len(values) == 1 and Path(values[0]).is_file():
        arr = _read_pose_file(Path(values[0]))
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
    if not np.isfinite(arr).all():
        raise ConfigError("pose values must be finite numbers (no nan or inf)")
    poses = torch.from_numpy(arr).reshape(-1, arr.shape[-1] // 4, 4)
    if src == "pytorch3d" and poses.shape[-2] != 4:
        raise ConfigError("pytorch3d poses are 4x4 row-vector matrices (16 numbers)")
    try:
        out = convert_pose(poses, src, dst, src_kind=src_kind, dst_kind=dst_kind)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return out.tolist()


def _read_pose_file(path: Path):
    """Poses from a ``.npy`` array (never unpickled) or a text file of numbers, one pose per row."""
    import io

    import numpy as np

    from torchworks.core.errors import ConfigError

    with path.open("rb") as f:
        is_npy = f.read(6) == b"\x93NUMPY"
    if is_npy:
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:  # object arrays need unpickling, which could run code: refused
            raise ConfigError(f"pose file {path} is not a numeric .npy array ({exc})") from None
        except OSError as exc:
            raise ConfigError(f"pose file {path} is a corrupt .npy file ({exc})") from None
        if arr.dtype.kind not in "iuf" or arr.ndim == 0:
            raise ConfigError(f"pose file {path} holds {arr.dtype} values; need a numeric array of poses")
        return arr
    text = read_text(path, "pose file", "a text file of numbers or a .npy array")
    try:
        arr = np.loadtxt(io.StringIO(text), ndmin=2)
    except ValueError as exc:
        raise ConfigError(f"pose file {path} holds something other than numbers ({exc})") from None
    if arr.size == 0:
        raise ConfigError(f"pose file {path} holds no numbers")
    return arr


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
