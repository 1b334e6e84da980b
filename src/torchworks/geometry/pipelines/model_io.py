"""Writing a sparse model: COLMAP's text format, a PLY point cloud, a picture; all into a folder, atomically.

COLMAP text format (``cameras.txt``, ``images.txt``, ``points3D.txt``; colmap.github.io/format.html): poses are
world_to_cam, quaternions ``QW QX QY QZ``, pixel coordinates with the origin at the top-left corner of the image
(COLMAP's convention: the centre of the top-left pixel is (0.5, 0.5)), hence + 0.5 on OpenCV's pixel coordinates.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

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
    """A picture (BGR uint8) of the points (their colours) and the cameras (frustums, numbered), seen from behind
    and above the cameras' mean position, looking at the points' median."""
    import cv2

    from torchworks.geometry.synthetic import look_at

    h, w = size
    canvas = np.full((h, w, 3), 255, np.uint8)
    pts = np.stack(rec.points) if rec.points else np.zeros((0, 3))
    centres = np.stack([-r.T @ t for r, t in (rec.poses[i] for i in rec.registered)])
    target = np.median(pts, 0) if len(pts) else centres.mean(0)
    mean_dir = np.mean([r[2] for r, _ in (rec.poses[i] for i in rec.registered)], 0)  # cameras' mean viewing axis
    down = np.mean([r[1] for r, _ in (rec.poses[i] for i in rec.registered)], 0)
    extent = max(np.linalg.norm(centres - target, axis=1).max(), 1e-9)
    eye = centres.mean(0) - 1.2 * extent * mean_dir / max(np.linalg.norm(mean_dir), 1e-9) - 0.8 * extent * down
    rot = look_at(torch.from_numpy(eye[None]), torch.from_numpy(target), up=torch.from_numpy(-down))[0].numpy()
    t = -rot @ eye
    everything = np.vstack([pts, centres]) @ rot.T + t
    z = everything[:, 2]
    ok = z > 1e-6
    if not ok.any():
        return canvas
    xy = everything[ok, :2] / z[ok, None]
    span = np.percentile(np.abs(xy), 99, axis=0).max() * 1.1 + 1e-12
    f = 0.5 * min(h, w) / span

    def to_pixels(x):
        c = x @ rot.T + t
        return np.stack([f * c[:, 0] / c[:, 2] + w / 2, f * c[:, 1] / c[:, 2] + h / 2], -1), c[:, 2]

    if len(pts):
        uv, depth = to_pixels(pts)
        colors = point_colors(rec)[:, ::-1]
        for i in np.argsort(-depth):
            if depth[i] > 0 and 0 <= uv[i, 0] < w and 0 <= uv[i, 1] < h:
                cv2.circle(canvas, (int(uv[i, 0]), int(uv[i, 1])), 1, tuple(int(c) for c in colors[i]), -1)
    size_frustum = 0.08 * extent
    for n, i in enumerate(rec.registered):
        r, tt = rec.poses[i]
        c = -r.T @ tt
        corners = np.array([[-1, -0.75, 1.5], [1, -0.75, 1.5], [1, 0.75, 1.5], [-1, 0.75, 1.5]]) * size_frustum
        world = corners @ r + c  # camera axes to world: rows of R are the camera axes
        uv, depth = to_pixels(np.vstack([c[None], world]))
        if (depth <= 0).any():
            continue
        p = [(int(u), int(v)) for u, v in uv]
        color = (40, 40, 200)
        for a in range(1, 5):
            cv2.line(canvas, p[0], p[a], color, 1, cv2.LINE_AA)
            cv2.line(canvas, p[a], p[1 + a % 4], color, 1, cv2.LINE_AA)
        cv2.putText(canvas, str(n + 1), p[0], cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{len(rec.registered)} cameras, {len(rec.points)} points", (10, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        for name, text in colmap_text(rec).items():
            (tmp / name).write_text(text, encoding="utf-8")
        (tmp / "points.ply").write_text(ply_text(rec), encoding="utf-8")
        ok, png = cv2.imencode(".png", render(rec))
        if not ok:
            raise OSError(f"cannot encode the model picture for {target}")
        (tmp / "model.png").write_bytes(png.tobytes())
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
