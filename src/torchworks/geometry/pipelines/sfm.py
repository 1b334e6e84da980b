"""Incremental structure from motion: OpenCV features, torchworks geometry (RANSAC, PnP, triangulation, BA).

Steps (the classic incremental pipeline, as in COLMAP and Bundler):

1. SIFT features per image (detected on a copy downscaled to ``max_size``, coordinates in full-size pixels) and
   matches for every pair: Lowe's ratio test and a mutual nearest-neighbour check.
2. Geometric verification: the essential matrix by RANSAC (known intrinsics); pairs with too few inliers, or
   flagged degenerate (a plane or a pure rotation), do not seed the reconstruction.
3. Initial pair: the verified pair with the most inliers among those whose median triangulation angle is at least
   ``init_min_angle`` degrees; its points are triangulated and bundle adjusted.
4. Registration: the unregistered image with the most 2D-3D correspondences is localized by PnP RANSAC and LM,
   its matches to registered images are triangulated (angle, reprojection and cheirality checks) or added to the
   existing tracks, and everything is bundle adjusted (Huber loss); observations reprojecting worse than
   ``max_error`` px are dropped after each adjustment.
5. A final bundle adjustment.

The shared intrinsics are given (``K``) or guessed (f = 1.2 max(w, h)); they stay fixed unless ``refine_focal``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from torchworks.core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")


@dataclass
class Reconstruction:
    """A sparse model. Poses are world_to_cam; point ``p`` is seen in image ``i`` at keypoint ``k`` when
    ``(i, k)`` is in ``tracks[p]``."""

    paths: list[Path]
    sizes: list[tuple[int, int]]  # (height, width) per image
    intrinsics: np.ndarray  # (9,) fx, fy, cx, cy, k1, k2, p1, p2, k3
    keypoints: list[np.ndarray]  # (N_i, 2) full-size pixels
    colors: list[np.ndarray]  # (N_i, 3) uint8 RGB at the keypoints
    poses: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # image -> (R, t)
    points: list[np.ndarray] = field(default_factory=list)  # (3,) each
    tracks: list[dict[int, int]] = field(default_factory=list)  # point -> {image: keypoint}
    verified_pairs: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def registered(self) -> list[int]:
        return sorted(self.poses)

    def point_of(self) -> dict[tuple[int, int], int]:
        """(image, keypoint) -> point index."""
        return {(i, k): p for p, track in enumerate(self.tracks) for i, k in track.items()}

    def reprojection_errors(self) -> np.ndarray:
        """Reprojection error (px) of every observation."""
        from torchworks.geometry._reprojection import project

        out = []
        for p, track in enumerate(self.tracks):
            for i, k in track.items():
                r, t = self.poses[i]
                uv, _ = project(self.intrinsics, r, t, self.points[p])
                out.append(float(np.linalg.norm(uv - self.keypoints[i][k])))
        return np.array(out)


def collect_images(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image paths from files and folders (a folder contributes its files with an image suffix, sorted).

    Raises:
        FileNotFoundError: a path that does not exist; DataError: a folder without images, or fewer than two images.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {p}")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"image not found: {p}")
    if len(dict.fromkeys(paths)) < 2:
        raise DataError(f"structure from motion needs at least two images, got {len(dict.fromkeys(paths))}")
    return list(dict.fromkeys(paths))


def _features(path: Path, max_size: int, max_features: int, contrast: float):
    import cv2

    from torchworks.geometry.pipelines.images import detect

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot decode image {path} (not an image OpenCV reads)")
    h, w = img.shape[:2]
    scale = min(1.0, max_size / max(h, w))
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if scale < 1:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    kps, desc = detect(gray, max_features, contrast)
    kps = (kps + 0.5) / scale - 0.5  # pixel centres of the small image back to full-size pixels
    ij = np.clip(np.round(kps).astype(int), 0, [w - 1, h - 1])
    colors = img[ij[:, 1], ij[:, 0], ::-1].copy()  # RGB
    return (h, w), kps, desc, colors, scale


def _angles(rot1, t1, rot2, t2, x):
    """Triangulation angles (degrees) of world points (N, 3) seen from two camera centres."""
    c1, c2 = -rot1.T @ t1, -rot2.T @ t2
    a, b = x - c1, x - c2
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _triangulate(intr, poses, obs):
    """DLT points (N, 3) from pairs of observations: poses [(R, t)] x 2, obs (2, N, 2) pixels."""
    from torchworks.geometry.triangulation import triangulate_dlt

    k = np.array([[intr[0], 0, intr[2]], [0, intr[1], intr[3]], [0, 0, 1]])
    proj = torch.from_numpy(np.stack([k @ np.hstack([r, t[:, None]]) for r, t in poses]))
    return triangulate_dlt(proj, torch.from_numpy(obs)).numpy()


def _reproj(intr, r, t, x, uv):
    from torchworks.geometry._reprojection import project

    proj, z = project(intr, r, t, x)
    err = np.linalg.norm(proj - uv, axis=-1)
    return np.where(z > 0, err, np.inf)


class _Builder:
    def __init__(self, rec: Reconstruction, matches: dict, max_error: float, min_angle: float,
                 progress: Callable[[str], None]):
        self.rec, self.matches, self.max_error, self.min_angle = rec, matches, max_error, min_angle
        self.say = progress
        self.owner: dict[tuple[int, int], int] = {}  # (image, keypoint) -> point

    def add_point(self, x, obs: dict[int, int]) -> None:
        p = len(self.rec.points)
        self.rec.points.append(x)
        self.rec.tracks.append(dict(obs))
        for i, k in obs.items():
            self.owner[(i, k)] = p

    def observe(self, p: int, i: int, k: int) -> None:
        if i in self.rec.tracks[p] or (i, k) in self.owner:
            return
        self.rec.tracks[p][i] = k
        self.owner[(i, k)] = p

    def pair_matches(self, i: int, j: int) -> np.ndarray:
        """Verified inlier matches (M, 2) of keypoints (in i, in j)."""
        if (i, j) in self.matches:
            return self.matches[(i, j)]["inliers"]
        if (j, i) in self.matches:
            return self.matches[(j, i)]["inliers"][:, ::-1]
        return np.zeros((0, 2), dtype=np.int64)

    def triangulate_with(self, new: int) -> int:
        """New points from the matches of image ``new`` with every registered image; returns how many."""
        rec, added = self.rec, 0
        for other in rec.registered:
            if other == new:
                continue
            m = self.pair_matches(new, other)
            if len(m) == 0:
                continue
            free, extend = [], []
            for a, b in m.tolist():
                pa, pb = self.owner.get((new, a)), self.owner.get((other, b))
                if pa is None and pb is None:
                    free.append((a, b))
                elif pa is None:
                    extend.append((pb, a))
            if extend:  # join existing tracks where the point reprojects well in the new image
                ep = np.array([p for p, _ in extend])
                ea = np.array([a for _, a in extend])
                r, t = rec.poses[new]
                ok = _reproj(rec.intrinsics, r, t, np.stack(rec.points)[ep], rec.keypoints[new][ea]) < self.max_error
                for p, a in zip(ep[ok].tolist(), ea[ok].tolist(), strict=True):
                    self.observe(p, new, a)
            if not free:
                continue
            fa = np.array(free)
            (r1, t1), (r2, t2) = rec.poses[new], rec.poses[other]
            obs = np.stack([rec.keypoints[new][fa[:, 0]], rec.keypoints[other][fa[:, 1]]])
            x = _triangulate(rec.intrinsics, [(r1, t1), (r2, t2)], obs)
            ok = (_reproj(rec.intrinsics, r1, t1, x, obs[0]) < self.max_error) & (
                _reproj(rec.intrinsics, r2, t2, x, obs[1]) < self.max_error) & (
                _angles(r1, t1, r2, t2, x) >= self.min_angle)
            for (a, b), xi in zip(fa[ok], x[ok], strict=True):
                if (new, a) not in self.owner and (other, b) not in self.owner:
                    self.add_point(xi, {new: int(a), other: int(b)})
                    added += 1
        return added

    def bundle(self, fixed: int, loss: str = "huber", refine_focal: bool = False, tolerance: float = 1e-5,
               iterations: int = 8, around: int | None = None, neighbours: int = 6) -> float:
        """Bundle adjustment, then drop observations with large errors and points left with fewer than two.

        Global by default. With ``around`` = a newly registered image it is local, as in COLMAP: that image and
        its ``neighbours`` most covisible images move, with every point they see; the other cameras observing
        those points are held. After each registration a few iterations suffice (the next step and the final
        adjustment continue from here).
        """
        from torchworks.geometry.bundle import bundle_adjust

        rec = self.rec
        pts, imgs_obs, kps, pix = self._observations()
        if around is not None:
            shared: dict[int, int] = {}
            seen = set(np.flatnonzero(imgs_obs == around).tolist())
            seen_pts = set(pts[list(seen)].tolist())
            for p, i in zip(pts.tolist(), imgs_obs.tolist(), strict=True):
                if p in seen_pts and i != around:
                    shared[i] = shared.get(i, 0) + 1
            moving = {around, *sorted(shared, key=lambda i: -shared[i])[:neighbours]}
            local_pts = np.array(sorted({p for p, i in zip(pts.tolist(), imgs_obs.tolist(), strict=True)
                                         if i in moving}))
            keep = np.isin(pts, local_pts)
            pts, imgs_obs, pix = pts[keep], imgs_obs[keep], pix[keep]
        else:
            moving = set(rec.registered)
            local_pts = np.arange(len(rec.points))
        imgs = sorted(set(imgs_obs.tolist()))
        slot = {i: n for n, i in enumerate(imgs)}
        point_slot = np.full(len(rec.points), -1)
        point_slot[local_pts] = np.arange(len(local_pts))
        held = [slot[i] for i in imgs if i not in moving]
        if fixed in slot and fixed not in held:
            held.append(slot[fixed])
        intr = rec.intrinsics
        k = torch.tensor([[intr[0], 0, intr[2]], [0, intr[1], intr[3]], [0, 0, 1]], dtype=torch.float64)
        result = bundle_adjust(torch.from_numpy(np.stack([rec.poses[i][0] for i in imgs])),
                               torch.from_numpy(np.stack([rec.poses[i][1] for i in imgs])),
                               torch.from_numpy(np.stack([rec.points[p] for p in local_pts])),
                               torch.tensor([slot[i] for i in imgs_obs.tolist()]),
                               torch.from_numpy(point_slot[pts]), torch.from_numpy(pix), k,
                               torch.from_numpy(intr[4:]), refine_intrinsics=("fx", "fy") if refine_focal else (),
                               loss=loss, loss_scale=1.0, fixed_cameras=tuple(held or [0]), iterations=iterations,
                               tolerance=tolerance)
        for n, i in enumerate(imgs):
            rec.poses[i] = (result.rotations[n].numpy(), result.translations[n].numpy())
        new_points = result.points.numpy()
        for n, p in enumerate(local_pts.tolist()):
            rec.points[p] = new_points[n]
        rec.intrinsics = result.intrinsics.numpy()
        self._filter()
        return result.rms

    def _observations(self):
        """All observations as arrays: point, image, keypoint (M,) and the observed pixels (M, 2)."""
        rec = self.rec
        pts, imgs, kps = [], [], []
        for p, track in enumerate(rec.tracks):
            for i, k in track.items():
                pts.append(p)
                imgs.append(i)
                kps.append(k)
        pts, imgs, kps = np.array(pts, dtype=np.int64), np.array(imgs, dtype=np.int64), np.array(kps, dtype=np.int64)
        pix = np.zeros((len(pts), 2))
        for i in np.unique(imgs):
            sel = imgs == i
            pix[sel] = rec.keypoints[i][kps[sel]]
        return pts, imgs, kps, pix

    def errors(self, pts, imgs, pix) -> np.ndarray:
        """Reprojection errors (M,) of observations given as arrays (one projection call)."""
        rec = self.rec
        rot = np.stack([rec.poses[i][0] for i in imgs])
        t = np.stack([rec.poses[i][1] for i in imgs])
        return _reproj(rec.intrinsics, rot, t, np.stack(rec.points)[pts], pix)

    def _filter(self) -> None:
        rec = self.rec
        if not rec.points:
            return
        pts, imgs, kps, pix = self._observations()
        good = self.errors(pts, imgs, pix) < self.max_error
        tracks: list[dict[int, int]] = [{} for _ in rec.points]
        for p, i, k in zip(pts[good].tolist(), imgs[good].tolist(), kps[good].tolist(), strict=True):
            tracks[p][i] = k
        keep = [p for p, t in enumerate(tracks) if len(t) >= 2]
        rec.points, rec.tracks = [rec.points[p] for p in keep], [tracks[p] for p in keep]
        self.owner = {(i, k): p for p, track in enumerate(rec.tracks) for i, k in track.items()}


def reconstruct(inputs: Sequence[str | os.PathLike[str]], K=None, max_size: int = 2000, max_features: int = 8000,
                ratio: float = 0.8, threshold: float = 1.0, max_error: float = 4.0, min_angle: float = 1.5,
                init_min_angle: float = 4.0, min_inliers: int = 30, refine_focal: bool = False, seed: int = 0,
                contrast: float = 0.01, min_pnp_inliers: int = 12,
                progress: Callable[[str], None] | None = None) -> Reconstruction:
    """Incremental SfM on images sharing one camera (see the module docstring).

    Args:
        inputs: image files and/or folders of images (two or more images in total).
        K: (fx, fy, cx, cy) of the full-size images; None guesses f = 1.2 max(w, h) and a centred principal point.
        max_size: features are detected on copies whose longer side is at most this many pixels.
        max_features: strongest SIFT features kept per image.
        contrast: SIFT's contrast threshold (lower: more, weaker features).
        ratio: Lowe's ratio for the matches (plus a mutual check).
        threshold: epipolar (Sampson) inlier threshold for the verification, in pixels of the detection images.
        max_error: reprojection error (full-size px) above which observations are rejected.
        min_angle: smallest triangulation angle (degrees) of a new point; ``init_min_angle`` the median angle the
            initial pair needs.
        min_inliers: verified matches a pair needs to count.
        refine_focal: refine fx, fy in the final bundle adjustment.
        min_pnp_inliers: PnP inliers an image needs to be registered (and at least 20 % of its 2D-3D matches).
        seed: RANSAC seed.
        progress: called with one line per step (e.g. ``print``).

    Returns:
        A :class:`Reconstruction` (``registered`` lists the localized images).

    Raises:
        DataError: fewer than two images, undecodable images, no verified pair, or no usable initial pair.
    """
    from torchworks.geometry.pipelines.images import match_descriptors
    from torchworks.geometry.pnp import pnp_ransac
    from torchworks.geometry.ransac import ransac

    say = progress or (lambda _line: None)
    paths = collect_images(inputs)
    feats = []
    for n, p in enumerate(paths):
        feats.append(_features(p, max_size, max_features, contrast))
        say(f"features {n + 1}/{len(paths)}: {p.name}: {len(feats[-1][1])} keypoints")
    sizes = [f[0] for f in feats]
    if len(set(sizes)) != 1:
        raise DataError(f"all images must have the same size (one shared camera); got {sorted(set(sizes))}")
    h, w = sizes[0]
    if K is None:
        K = (1.2 * max(h, w), 1.2 * max(h, w), (w - 1) / 2, (h - 1) / 2)
    if len(K) != 4 or not all(math.isfinite(v) for v in K) or K[0] <= 0 or K[1] <= 0:
        raise ValueError(f"K must be 4 finite numbers fx, fy, cx, cy with fx, fy > 0, got {K}")
    intr = np.array([*map(float, K), 0, 0, 0, 0, 0])
    k = torch.tensor([[K[0], 0, K[2]], [0, K[1], K[3]], [0, 0, 1]], dtype=torch.float64)
    rec = Reconstruction(paths, sizes, intr, [f[1] for f in feats], [f[3] for f in feats])
    th_full = threshold / min(f[4] for f in feats)
    matches = {}
    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            m = match_descriptors(feats[i][2], feats[j][2], ratio, mutual=True)
            if len(m) < min_inliers:
                continue
            x1, x2 = torch.from_numpy(feats[i][1][m[:, 0]]), torch.from_numpy(feats[j][1][m[:, 1]])
            # 1000 samples hold an all-inlier 5-point sample with probability 0.999 down to 35 % inliers; pairs
            # below that are not worth verifying (and would otherwise draw 10000 samples each).
            r = ransac(x1, x2, "essential", threshold=th_full, intrinsics1=k, intrinsics2=k, seed=seed,
                       max_iterations=1000, check_degeneracy=False)  # tested on initial-pair candidates only
            if r.rotation is None or r.num_inliers < min_inliers or r.few_inliers:
                continue
            matches[(i, j)] = {"inliers": m[r.inliers.numpy()], "R": r.rotation.numpy(),
                               "t": r.translation.numpy(), "degenerate": None, "threshold": th_full}
    rec.verified_pairs = len(matches)
    say(f"matching: {len(matches)} verified pairs of {len(paths) * (len(paths) - 1) // 2}")
    if not matches:
        raise DataError("no two images share enough verified matches to start a reconstruction")
    builder = _Builder(rec, matches, max_error, min_angle, say)
    first, second = _initial_pair(rec, matches, init_min_angle, k, seed)
    if first is None:
        raise DataError("no image pair has enough parallax (median triangulation angle >= "
                        f"{init_min_angle} deg) and a non-degenerate geometry to start from")
    info = matches[(first, second)]
    rec.poses[first] = (np.eye(3), np.zeros(3))
    rec.poses[second] = (info["R"], info["t"])
    n0 = builder.triangulate_with(second)
    rms = builder.bundle(first)
    say(f"initial pair {paths[first].name} + {paths[second].name}: {len(rec.points)} points ({n0} triangulated), "
        f"BA rms {rms:.2f} px")
    failed: set[int] = set()
    last_global = len(rec.poses)
    while len(rec.poses) + len(failed) < len(paths):
        point_of = builder.owner
        best, best_corr = None, []
        for i in range(len(paths)):
            if i in rec.poses or i in failed:
                continue
            corr = {}
            for other in rec.registered:
                for a, b in builder.pair_matches(i, other).tolist():
                    p = point_of.get((other, b))
                    if p is not None:
                        corr.setdefault(a, p)
            if len(corr) > len(best_corr):
                best, best_corr = i, list(corr.items())
        if best is None or len(best_corr) < min_pnp_inliers:
            failed.update(i for i in range(len(paths)) if i not in rec.poses)
            break
        kp = np.array([a for a, _ in best_corr])
        xw = np.stack([rec.points[p] for _, p in best_corr])
        res = pnp_ransac(torch.from_numpy(xw), torch.from_numpy(rec.keypoints[best][kp]), k,
                         threshold=max_error, seed=seed, min_inliers=min_pnp_inliers)
        if res.few_inliers or not torch.isfinite(res.rotation).all():
            failed.add(best)
            say(f"could not register {paths[best].name}: {res.num_inliers} PnP inliers of {len(best_corr)}")
            continue
        rec.poses[best] = (res.rotation.numpy(), res.translation.numpy())
        for (a, p), ok in zip(best_corr, res.inliers.tolist(), strict=True):
            if ok:
                builder.observe(p, best, int(a))
        added = builder.triangulate_with(best)
        # Local BA around the new image; a global one whenever the model has grown by a third since the last.
        if len(rec.poses) >= 1.33 * last_global:
            rms, last_global = builder.bundle(first), len(rec.poses)
        else:
            rms = builder.bundle(first, around=best)
        say(f"registered {paths[best].name} ({len(rec.poses)}/{len(paths)}): {res.num_inliers} PnP inliers, "
            f"{added} new points, {len(rec.points)} points, BA rms {rms:.2f} px")
    rms = builder.bundle(first, refine_focal=refine_focal, tolerance=1e-8, iterations=50)
    say(f"final bundle adjustment: {len(rec.poses)}/{len(paths)} images, {len(rec.points)} points, rms {rms:.2f} px")
    rec.log.append(f"final rms {rms:.3f} px")
    return rec


def _initial_pair(rec: Reconstruction, matches: dict, min_angle: float, k: torch.Tensor, seed: int):
    """The verified, non-degenerate pair with the most inliers whose median triangulation angle is large enough."""
    from torchworks.geometry.ransac import ransac

    ranked = sorted(matches.items(), key=lambda kv: -len(kv[1]["inliers"]))
    for (i, j), info in ranked:
        m = info["inliers"]
        poses = [(np.eye(3), np.zeros(3)), (info["R"], info["t"])]
        x = _triangulate(rec.intrinsics, poses, np.stack([rec.keypoints[i][m[:, 0]], rec.keypoints[j][m[:, 1]]]))
        if not len(x) or float(np.median(_angles(*poses[0], *poses[1], x))) < min_angle:
            continue
        # The degeneracy test (a plane or a pure rotation explains the inliers) runs on candidates only.
        r = ransac(torch.from_numpy(rec.keypoints[i][m[:, 0]]), torch.from_numpy(rec.keypoints[j][m[:, 1]]),
                   "essential", threshold=info["threshold"], intrinsics1=k, intrinsics2=k, seed=seed)
        info["degenerate"] = r.degenerate
        if not r.degenerate:
            return i, j
    return None, None


def compare_to_ground_truth(rec: Reconstruction, truth: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Errors of the registered poses after the similarity that best aligns the camera centres (Umeyama).

    Args:
        rec: the reconstruction.
        truth: image index -> (R, t) world_to_cam ground truth.

    Returns:
        A dict: registered and compared counts, median / max rotation error (degrees, after alignment), median /
        max camera-centre error as a fraction of the scene extent (the largest distance between true centres),
        and the similarity's scale.
    """
    common = [i for i in rec.registered if i in truth]
    if len(common) < 3:
        raise ValueError(f"need at least 3 registered images with ground truth to align, got {len(common)}")
    est = np.stack([-rec.poses[i][0].T @ rec.poses[i][1] for i in common])
    ref = np.stack([-truth[i][0].T @ truth[i][1] for i in common])
    mu_e, mu_r = est.mean(0), ref.mean(0)
    e, r = est - mu_e, ref - mu_r
    u, sv, vt = np.linalg.svd(r.T @ e / len(common))
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, 1.0, d]) @ vt  # ref ~ s rot est + t
    scale = float((sv * np.array([1.0, 1.0, d])).sum() / (e**2).sum(1).mean())
    shift = mu_r - scale * rot @ mu_e
    aligned = (scale * est @ rot.T) + shift
    extent = max(float(np.linalg.norm(ref[:, None] - ref[None], axis=-1).max()), 1e-12)
    centre_err = np.linalg.norm(aligned - ref, axis=1) / extent
    from torchworks.geometry.rotations import geodesic_angle, project_to_so3

    # world_est = rot^T (world_ref - shift) / s, so R_ref should equal R_est rot^T. Ground-truth files round their
    # rotations (fountain-P11: 6 decimals), so they are projected onto SO(3) first.
    rot_err = np.degrees(geodesic_angle(
        project_to_so3(torch.from_numpy(np.stack([rec.poses[i][0] @ rot.T for i in common]))),
        project_to_so3(torch.from_numpy(np.stack([truth[i][0] for i in common])))).numpy())
    return {"registered": len(rec.registered), "compared": len(common), "rotation_median_deg":
            float(np.median(rot_err)), "rotation_max_deg": float(np.max(rot_err)),
            "centre_median": float(np.median(centre_err)), "centre_max": float(np.max(centre_err)), "scale": scale}
