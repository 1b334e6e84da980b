"""Relative pose of two photos: SIFT matches, robust essential matrix, cheirality, LM, and the flags that say when
the pose must not be trusted.

A pose is *weakly supported* when RANSAC keeps fewer than ``min_inliers`` inliers (default 15) or fewer than
``min_inlier_fraction`` of the matches (default 0.2): of the 16 neighbouring pairs of the temple ring (known K),
the 6 whose poses were 56-179 degrees wrong had 9-13 inliers (16-25 % of 40-63 matches), the 10 right ones
(0.05-1.3 degrees off) 106-461 inliers (68-90 %). :func:`two_view` refuses such a pose (:class:`WeakPoseError`)
unless ``force=True``.
"""

from __future__ import annotations

import math
import os

from torchworks.core.errors import DataError

SOLVERS = ("5point", "8point")


class WeakPoseError(DataError):
    """The two-view pose rests on too few inliers to be trusted (pass ``force=True`` to get it anyway)."""


def default_intrinsics(height: int, width: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) guessed for an image of unknown calibration: f = 1.2 max(w, h), centred principal point."""
    f = 1.2 * max(height, width)
    return f, f, width / 2, height / 2


def two_view(path_a: str | os.PathLike[str], path_b: str | os.PathLike[str], K=None, out: str | None = None,
             threshold: float = 1.0, seed: int = 0, solver: str = "5point", force: bool = False,
             min_inliers: int = 15, min_inlier_fraction: float = 0.2) -> dict:
    """Relative pose x2 = R x1 + t (|t| = 1) of two images.

    Args:
        path_a, path_b: the two images.
        K: (fx, fy, cx, cy) shared by both images; None guesses it (:func:`default_intrinsics`).
        out: optional PNG path for the pair side by side with the inliers' epipolar lines (written atomically,
            and only when the pose is returned).
        threshold: RANSAC inlier threshold in pixels (Sampson distance).
        seed: RANSAC seed.
        solver: RANSAC minimal solver for E, "5point" (default) or "8point" (F search upgraded with K).
        force: return a weakly supported pose instead of raising :class:`WeakPoseError`.
        min_inliers, min_inlier_fraction: the support below which the pose is weak (see the module docstring).

    Returns:
        A dict with R (3, 3), t (3,), F, E, inliers (M,) bool, K (3, 3), matches M, degenerate / degeneracy,
        weak (bool), and report (the text the CLI prints).

    Raises:
        FileNotFoundError, DataError: unreadable images, fewer than 8 matches, or no consistent geometry;
        WeakPoseError: a weakly supported pose without ``force``.
    """
    import torch

    from torchworks.geometry.epipolar import fundamental_from_essential
    from torchworks.geometry.pipelines.images import match_images, read_gray
    from torchworks.geometry.ransac import ransac
    from torchworks.geometry.rotations import matrix_to_axis_angle

    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    img_a, img_b = read_gray(path_a), read_gray(path_b)
    pa, pb = match_images(img_a, img_b)
    if len(pa) < 8:
        raise DataError(f"only {len(pa)} feature matches between {path_a} and {path_b}; need at least 8")
    x1, x2 = torch.from_numpy(pa), torch.from_numpy(pb)
    guessed = K is None
    if guessed:
        K = default_intrinsics(*img_a.shape[:2])
    k = torch.tensor([[K[0], 0, K[2]], [0, K[1], K[3]], [0, 0, 1]], dtype=torch.float64)
    r = ransac(x1, x2, "essential", threshold=threshold, intrinsics1=k, intrinsics2=k, seed=seed,
               essential_solver=solver, min_inliers=min_inliers, min_inlier_fraction=min_inlier_fraction)
    if r.rotation is None:
        raise DataError(f"no consistent two-view geometry found ({r.num_inliers} inliers of {len(pa)} matches)")
    support = (f"{r.num_inliers} inliers of {len(pa)} matches ({r.num_inliers / len(pa):.0%}); a pose needs at "
               f"least {min_inliers} inliers and {min_inlier_fraction:.0%} of the matches")
    if r.few_inliers and not force:
        raise WeakPoseError(f"pose refused: {support} (these views may not overlap enough; pass --force / "
                            "force=True to see it anyway)")
    f = fundamental_from_essential(r.model, k, k)
    rvec = matrix_to_axis_angle(r.rotation, project=True)
    lines = [f"matches {len(pa)}  inliers {r.num_inliers}  samples {r.iterations} ({solver} solver)",
             f"K {'(guessed) ' if guessed else ''}fx {K[0]:.2f} fy {K[1]:.2f} cx {K[2]:.2f} cy {K[3]:.2f}",
             "R (x2 = R x1 + t):"] + ["  " + " ".join(f"{v: .6f}" for v in row) for row in r.rotation.tolist()]
    lines += [f"rotation {math.degrees(float(rvec.norm())):.3f} deg about "
              + " ".join(f"{v:.4f}" for v in (rvec / rvec.norm().clamp(min=1e-300)).tolist()),
              "t (unit) " + " ".join(f"{v: .6f}" for v in r.translation.tolist())]
    if r.few_inliers:
        lines.append(f"WARNING: weakly supported pose ({support}); it is likely wrong")
    if r.degenerate:
        lines.append(f"WARNING: degenerate configuration ({r.degeneracy}): the pose is not determined by the data")
    if out:
        draw_epipolar(img_a, img_b, x1[r.inliers], x2[r.inliers], f, out)
        lines.append(f"wrote {out}")
    return {"R": r.rotation, "t": r.translation, "F": f, "E": r.model, "inliers": r.inliers, "K": k,
            "matches": len(pa), "degenerate": r.degenerate, "degeneracy": r.degeneracy, "weak": r.few_inliers,
            "report": "\n".join(lines)}


def draw_epipolar(img_a, img_b, x1, x2, fundamental, out: str | os.PathLike[str], max_lines: int = 40) -> None:
    """Writes the two grayscale images side by side with up to ``max_lines`` matches (dots) and the epipolar line
    each induces in the other image, as a PNG at ``out`` (atomically)."""
    import cv2
    import numpy as np

    from torchworks.geometry.epipolar import epipolar_lines
    from torchworks.geometry.pipelines.images import write_png

    h = max(img_a.shape[0], img_b.shape[0])
    canvas = np.zeros((h, img_a.shape[1] + img_b.shape[1], 3), np.uint8)
    canvas[: img_a.shape[0], : img_a.shape[1]] = cv2.cvtColor(img_a, cv2.COLOR_GRAY2BGR)
    canvas[: img_b.shape[0], img_a.shape[1]:] = cv2.cvtColor(img_b, cv2.COLOR_GRAY2BGR)
    idx = np.linspace(0, len(x1) - 1, min(max_lines, len(x1))).astype(int)
    rng = np.random.default_rng(0)
    for img, lines, pts, off in ((img_b, epipolar_lines(fundamental, x1[idx], 1), x2[idx], img_a.shape[1]),
                                 (img_a, epipolar_lines(fundamental, x2[idx], 2), x1[idx], 0)):
        w = img.shape[1]
        for (a, b, c), p in zip(lines.tolist(), pts.tolist(), strict=True):
            color = tuple(int(v) for v in rng.integers(64, 256, 3))
            if abs(b) > 1e-12:
                y0, y1 = -c / b, -(c + a * (w - 1)) / b
                cv2.line(canvas, (off, int(round(y0))), (off + w - 1, int(round(y1))), color, 1, cv2.LINE_AA)
            cv2.circle(canvas, (off + int(round(p[0])), int(round(p[1]))), 3, color, -1, cv2.LINE_AA)
    write_png(out, canvas)
