"""Writing a sparse model: COLMAP's text format, a PLY point cloud, a picture; all into a folder, atomically.

COLMAP text format (``cameras.txt``, ``images.txt``, ``points3D.txt``; colmap.github.io/format.html): poses are
world_to_cam, quaternions ``QW QX QY QZ``, pixel coordinates with the origin at the top-left corner of the image
(COLMAP's convention: the centre of the top-left pixel is (0.5, 0.5)), hence + 0.5 on OpenCV's pixel coordinates.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from torchworks.core.atomic import atomic_dir
from torchworks.geometry.pipelines.sfm import Reconstruction


def _quaternion_wxyz(rot: np.ndarray) -> np.ndarray:
    from torchworks.geometry.rotations import matrix_to_quaternion

    return matrix_to_quaternion(torch.from_numpy(rot), order="wxyz", project=True).numpy()


def colmap_text(rec: Reconstruction) -> dict[str, str]:
    """The three files of COLMAP's text model, as strings keyed by file name."""
    h, w = rec.sizes[0]
    fx, fy, cx, cy, k1, k2, p1, p2, k3 = rec.intrinsics
    if np.any(rec.intrinsics[4:]):
        params = " ".join(repr(float(v)) for v in (fx, fy, cx + 0.5, cy + 0.5, k1, k2, p1, p2, k3, 0, 0, 0))
        camera = f"1 FULL_OPENCV {w} {h} {params}"
    else:
        camera = f"1 PINHOLE {w} {h} " + " ".join(repr(float(v)) for v in (fx, fy, cx + 0.5, cy + 0.5))
    cameras = "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n" \
              f"# Number of cameras: 1\n{camera}\n"
    # Each image lists the keypoints that observe a point; POINT2D_IDX below indexes these lists.
    per_image: dict[int, list[tuple[int, int]]] = {i: [] for i in rec.registered}
    slot: dict[tuple[int, int], int] = {}
    for p, track in enumerate(rec.tracks):
        for i, k in sorted(track.items()):
            slot[(i, k)] = len(per_image[i])
            per_image[i].append((k, p))
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)",
             f"# Number of images: {len(rec.registered)}, mean observations per image: "
             f"{np.mean([len(v) for v in per_image.values()]) if per_image else 0:.1f}"]
    for i in rec.registered:
        r, t = rec.poses[i]
        q = _quaternion_wxyz(r)
        lines.append(f"{i + 1} " + " ".join(repr(float(v)) for v in (*q, *t)) + f" 1 {rec.paths[i].name}")
        lines.append(" ".join(f"{float(rec.keypoints[i][k][0]) + 0.5!r} {float(rec.keypoints[i][k][1]) + 0.5!r} {p + 1}"
                              for k, p in per_image[i]))
    images = "\n".join(lines) + "\n"
    errors = _point_errors(rec)
    lines = ["# 3D point list with one line of data per point:",
             "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
             f"# Number of points: {len(rec.points)}"]
    colors = point_colors(rec)
    for p, (x, track) in enumerate(zip(rec.points, rec.tracks, strict=True)):
        track_text = " ".join(f"{i + 1} {slot[(i, k)]}" for i, k in sorted(track.items()))
        xyz = " ".join(repr(float(v)) for v in x)
        lines.append(f"{p + 1} {xyz} {colors[p][0]} {colors[p][1]} {colors[p][2]} {errors[p]!r} {track_text}")
    return {"cameras.txt": cameras, "images.txt": images, "points3D.txt": "\n".join(lines) + "\n"}


def _point_errors(rec: Reconstruction) -> list[float]:
    from torchworks.geometry._reprojection import project

    out = []
    for p, track in enumerate(rec.tracks):
        errs = [np.linalg.norm(project(rec.intrinsics, *rec.poses[i], rec.points[p])[0] - rec.keypoints[i][k])
                for i, k in track.items()]
        out.append(float(np.mean(errs)))
    return out


def point_colors(rec: Reconstruction) -> np.ndarray:
    """(P, 3) uint8 RGB: the mean colour of each point's observations."""
    if not rec.points:
        return np.zeros((0, 3), np.uint8)
    return np.stack([np.mean([rec.colors[i][k] for i, k in t.items()], 0) for t in rec.tracks]).round().astype(
        np.uint8)


def ply_text(rec: Reconstruction) -> str:
    """ASCII PLY of the points with their colours."""
    colors = point_colors(rec)
    head = ["ply", "format ascii 1.0", f"element vertex {len(rec.points)}", "property float x", "property float y",
            "property float z", "property uchar red", "property uchar green", "property uchar blue", "end_header"]
    body = [f"{x[0]:.7g} {x[1]:.7g} {x[2]:.7g} {c[0]} {c[1]} {c[2]}" for x, c in zip(rec.points, colors,
                                                                                     strict=True)]
    return "\n".join(head + body) + "\n"


def render(rec: Reconstruction, size: tuple[int, int] = (720, 960)) -> np.ndarray:
    """A picture (BGR uint8) of the model seen orthographically along the normal of the cameras' plane (the
    smallest principal axis of their centres; of the points with fewer than three cameras): the points in their
    colours, each camera as a dot with a stroke along its viewing direction, numbered as in ``images.txt``."""
    import cv2

    h, w = size
    canvas = np.full((h, w, 3), 255, np.uint8)
    pts = np.stack(rec.points) if rec.points else np.zeros((0, 3))
    poses = [rec.poses[i] for i in rec.registered]
    centres = np.stack([-r.T @ t for r, t in poses]) if poses else np.zeros((0, 3))
    basis_src = centres if len(centres) >= 3 else pts
    if len(basis_src) < 2:
        return canvas
    mean = basis_src.mean(0)
    axes = np.linalg.svd(basis_src - mean, full_matrices=True)[2]  # rows: principal axes, largest first
    plane = axes[:2]
    # Frame every camera and all but the most distant 1 % of the points on each side.
    q_pts, q_cam = pts @ plane.T, centres @ plane.T
    lo = np.min(np.vstack([np.percentile(q_pts, 1, axis=0)[None], q_cam]) if len(pts) else q_cam, axis=0)
    hi = np.max(np.vstack([np.percentile(q_pts, 99, axis=0)[None], q_cam]) if len(pts) else q_cam, axis=0)
    span = max(float((hi - lo).max()), 1e-12) * 1.15
    scale, mid = min(h, w) / span, (lo + hi) / 2

    def to_pixels(x):
        q = (x @ plane.T - mid) * scale
        return np.stack([q[:, 0] + w / 2, q[:, 1] + h / 2], -1)

    if len(pts):
        uv = to_pixels(pts)
        colors = point_colors(rec)[:, ::-1]
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        for (u, v), c in zip(uv[inside].astype(int), colors[inside], strict=True):
            canvas[max(v - 1, 0):v + 1, max(u - 1, 0):u + 1] = c
    stroke = 0.06 * span
    for n, ((r, _), c) in enumerate(zip(poses, centres, strict=True)):
        (u0, v0), (u1, v1) = to_pixels(np.stack([c, c + stroke * r[2]])).astype(int)  # r[2]: the optical axis
        cv2.line(canvas, (u0, v0), (u1, v1), (40, 40, 200), 2, cv2.LINE_AA)
        cv2.circle(canvas, (u0, v0), 4, (40, 40, 200), -1, cv2.LINE_AA)
        cv2.putText(canvas, str(n + 1), (u0 + 5, v0 - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (40, 40, 200), 1,
                    cv2.LINE_AA)
    cv2.putText(canvas, f"{len(poses)} cameras, {len(rec.points)} points (orthographic, normal to the cameras' "
                "plane)", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def write_model(rec: Reconstruction, out: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Writes ``cameras.txt``, ``images.txt``, ``points3D.txt``, ``points.ply`` and ``model.png`` into the folder
    ``out``: everything goes to a temporary sibling folder first, which is renamed into place, so a failure leaves
    no half-written model.

    Raises:
        FileExistsError: ``out`` exists and is not empty (unless ``overwrite``).
    """
    import cv2

    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise FileExistsError(f"{target} exists and is not an empty folder; choose another --out or pass "
                              "--overwrite")
    with atomic_dir(target) as tmp:
        for name, text in colmap_text(rec).items():
            (tmp / name).write_text(text, encoding="utf-8")
        (tmp / "points.ply").write_text(ply_text(rec), encoding="utf-8")
        ok, png = cv2.imencode(".png", render(rec))
        if not ok:
            raise OSError(f"cannot encode the model picture for {target}")
        (tmp / "model.png").write_bytes(png.tobytes())
    return target
