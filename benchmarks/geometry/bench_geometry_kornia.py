"""Problems measured against kornia (and OpenCV where it has the operation), for bench_geometry.py.

Each ``*_rows`` function returns rows ``(problem, setting, implementation, cpu ms, wall ms, accuracy)`` with
implementation names starting with "OpenCV", "kornia" or "ours"; bench_geometry.py turns them into ratios.
Parity facts ("max |ours - kornia|") are measured in float64 on the same inputs.
"""

from __future__ import annotations

import math

import cv2
import kornia
import numpy as np
import torch
from kornia.geometry import calibration as kcal
from kornia.geometry import camera as kcam
from kornia.geometry import conversions as kconv
from kornia.geometry import epipolar as kepi
from kornia.geometry import homography as khom

from torchworks.geometry.camera import project_points
from torchworks.geometry.distortion import distort_points, undistort_points
from torchworks.geometry.epipolar import essential_from_fundamental, find_fundamental
from torchworks.geometry.essential import essential_from_pose, recover_pose
from torchworks.geometry.five_point import solve_5point_normalized
from torchworks.geometry.homography import find_homography
from torchworks.geometry.quaternions import matrix_to_quaternion, quaternion_to_matrix
from torchworks.geometry.ransac import ransac
from torchworks.geometry.rotations import axis_angle_to_matrix, geodesic_angle, matrix_to_axis_angle
from torchworks.geometry.triangulation import triangulate_dlt

D = torch.float64
VERSION = kornia.__version__


def _maxdiff(a, b) -> float:
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return float(np.abs(a - b).max())


def _sign_align(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """b rescaled to a's Frobenius norm and sign (matrices equal up to scale), (..., 3, 3)."""
    b = b * (a.norm(dim=(-1, -2), keepdim=True) / b.norm(dim=(-1, -2), keepdim=True))
    sign = torch.where(((a * b).sum((-1, -2), keepdim=True)) < 0, -1.0, 1.0).to(b.dtype)
    return b * sign


def camera_rows(timed, repeats: int) -> list:
    rows = []
    g = torch.Generator().manual_seed(10)
    n = 100_000
    K = torch.tensor([[800.0, 0, 320], [0, 780, 240], [0, 0, 1]], dtype=D)
    X = torch.cat([(torch.rand(n, 2, generator=g, dtype=D) - 0.5) * 4, 4 + 6 * torch.rand(n, 1, generator=g,
                                                                                        dtype=D)], -1)
    Xn, Kn = X.numpy(), K.numpy()
    zero = np.zeros(3)
    ref = cv2.projectPoints(Xn, zero, zero, Kn, None)[0][:, 0]
    ours = project_points(X, K)
    kor = kcam.project_points(X, K)
    p = "projection, 100k points"
    rows.append((p, "", "OpenCV projectPoints f64", *timed(lambda: cv2.projectPoints(Xn, zero, zero, Kn, None),
                                                            repeats), "reference"))
    rows.append((p, "", "kornia project_points f64", *timed(lambda: kcam.project_points(X, K), repeats),
                 f"max diff vs OpenCV {_maxdiff(kor, ref):.1e}"))
    rows.append((p, "", "ours project_points f64", *timed(lambda: project_points(X, K), repeats),
                 f"max diff vs OpenCV {_maxdiff(ours, ref):.1e}, vs kornia {_maxdiff(ours, kor):.1e}"))

    # Brown-Conrady (k1, k2, p1, p2, k3), pixels inside a 640 x 480 image.
    dist = torch.tensor([-0.25, 0.08, 0.001, -0.0005, -0.01], dtype=D)
    und = torch.rand(n, 2, generator=g, dtype=D) * torch.tensor([640.0, 480.0], dtype=D)
    dn = dist.numpy()
    norm_h = np.concatenate([((und - K[:2, 2]) / K.diagonal()[:2]).numpy(), np.ones((n, 1))], 1)
    ref_d = cv2.projectPoints(norm_h, zero, zero, Kn, dn)[0][:, 0]
    ours_d = distort_points(und, K, dist)
    kor_d = kcal.distort_points(und, K, dist)
    p = "distortion, 100k points"
    rows.append((p, "", "OpenCV projectPoints (z=1 points) f64",
                 *timed(lambda: cv2.projectPoints(norm_h, zero, zero, Kn, dn), repeats), "reference"))
    rows.append((p, "", "kornia distort_points f64", *timed(lambda: kcal.distort_points(und, K, dist), repeats),
                 f"max diff vs OpenCV {_maxdiff(kor_d, ref_d):.1e}"))
    rows.append((p, "", "ours distort_points f64", *timed(lambda: distort_points(und, K, dist), repeats),
                 f"max diff vs OpenCV {_maxdiff(ours_d, ref_d):.1e}, vs kornia {_maxdiff(ours_d, kor_d):.1e}"))

    # Undistortion of the distorted pixels back to pixels of K; residual = |undistort - truth| in px.
    dp = ours_d
    dpn = dp.numpy()[:, None]
    p = "undistortion, 100k points"
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.0)
    ref_u = cv2.undistortPoints(dpn, Kn, dn, None, None, Kn, crit)[:, 0]
    kor_u = kcal.undistort_points(dp, K, dist)
    kor_u20 = kcal.undistort_points(dp, K, dist, num_iters=20)
    ours_u = undistort_points(dp, K, dist, K)
    rows.append((p, "converged", "OpenCV undistortPoints f64, 20 iterations",
                 *timed(lambda: cv2.undistortPoints(dpn, Kn, dn, None, None, Kn, crit), repeats),
                 f"error vs truth {_maxdiff(ref_u, und):.1e} px"))
    rows.append((p, "default", "kornia undistort_points f64 (5 iterations)",
                 *timed(lambda: kcal.undistort_points(dp, K, dist), repeats),
                 f"error vs truth {_maxdiff(kor_u, und):.1e} px"))
    rows.append((p, "converged", "kornia undistort_points f64, 20 iterations",
                 *timed(lambda: kcal.undistort_points(dp, K, dist, num_iters=20), repeats),
                 f"error vs truth {_maxdiff(kor_u20, und):.1e} px"))
    rows.append((p, "converged", "ours undistort_points f64 (Newton until converged)",
                 *timed(lambda: undistort_points(dp, K, dist, K), repeats),
                 f"error vs truth {_maxdiff(ours_u, und):.1e} px; vs OpenCV {_maxdiff(ours_u, ref_u):.1e}"))
    return rows


def rotation_rows(timed, repeats: int, vec: torch.Tensor, mats: torch.Tensor) -> list:
    """Rotation conversions on the 100k rotations of the Rodrigues rows (ours/OpenCV are timed there)."""
    rows = []
    kor_m = kconv.axis_angle_to_rotation_matrix(vec)
    rows.append(("Rodrigues vec->mat 100k", "", "kornia axis_angle_to_rotation_matrix f64",
                 *timed(lambda: kconv.axis_angle_to_rotation_matrix(vec), repeats),
                 f"max |ours - kornia| {_maxdiff(axis_angle_to_matrix(vec), kor_m):.1e}"))
    kor_v = kconv.rotation_matrix_to_axis_angle(mats)
    rows.append(("Rodrigues mat->vec 100k", "", "kornia rotation_matrix_to_axis_angle f64",
                 *timed(lambda: kconv.rotation_matrix_to_axis_angle(mats), repeats),
                 f"max |ours - kornia| {_maxdiff(matrix_to_axis_angle(mats), kor_v):.1e}"))
    ours_q = matrix_to_quaternion(mats, order="wxyz")
    kor_q = kconv.rotation_matrix_to_quaternion(mats)
    kor_q = kor_q * torch.where(kor_q[..., :1] < 0, -1.0, 1.0).to(D)  # same hemisphere (w >= 0) as ours
    p = "matrix->quaternion 100k"
    rows.append((p, "", "kornia rotation_matrix_to_quaternion f64",
                 *timed(lambda: kconv.rotation_matrix_to_quaternion(mats), repeats), "(wxyz)"))
    rows.append((p, "", "ours matrix_to_quaternion f64",
                 *timed(lambda: matrix_to_quaternion(mats, order="wxyz"), repeats),
                 f"max |ours - kornia| {_maxdiff(ours_q, kor_q):.1e}"))
    p = "quaternion->matrix 100k"
    rows.append((p, "", "kornia quaternion_to_rotation_matrix f64",
                 *timed(lambda: kconv.quaternion_to_rotation_matrix(ours_q), repeats), ""))
    rows.append((p, "", "ours quaternion_to_matrix f64",
                 *timed(lambda: quaternion_to_matrix(ours_q, order="wxyz"), repeats),
                 f"max |ours - kornia| {_maxdiff(quaternion_to_matrix(ours_q, order='wxyz'), kconv.quaternion_to_rotation_matrix(ours_q)):.1e}"))  # noqa: E501
    return rows


INEXACT = "less exact: not a speed reference"


def _inexact(ours, theirs, tol: float = 1e-6) -> str:
    # The speed goal is "at least as fast as the fastest reference, never less exact": a reference that is off by
    # more than tol (kornia's LU solve of the normal equations) is reported but not used for the ratios.
    return f"; {INEXACT}" if _maxdiff(ours, theirs) > tol else ""


def homography_rows(timed, repeats: int, h1, h2, hb1, hb2) -> list:
    rows = []
    ours = find_homography(h1, h2)
    for solver in ("svd", "lu"):
        k = khom.find_homography_dlt(h1[None], h2[None], solver=solver)[0]
        rows.append(("homography, N=100", "single", f"kornia find_homography_dlt({solver}) f64",
                     *timed(lambda s=solver: khom.find_homography_dlt(h1[None], h2[None], solver=s), repeats * 5),
                     f"max |ours - kornia| (H22 = 1) {_maxdiff(ours, k / k[2, 2]):.1e}" + _inexact(ours, k / k[2, 2])))
        rows.append(("homography, N=100", "batch 1000 (per problem)", f"kornia find_homography_dlt({solver}) f64",
                     *[v / hb1.shape[0] for v in timed(lambda s=solver: khom.find_homography_dlt(hb1, hb2, solver=s),
                                                       max(1, repeats // 2))], _inexact(ours, k / k[2, 2])))
    return rows


def fundamental_rows(timed, repeats: int, x1, x2, b1, b2, K) -> list:
    rows = []
    ours = find_fundamental(x1, x2)
    k = kepi.find_fundamental(x1[None], x2[None])[0]
    rows.append(("8-point F, N=1000", "single", "kornia find_fundamental(8POINT) f64",
                 *timed(lambda: kepi.find_fundamental(x1[None], x2[None]), repeats * 5),
                 f"max |ours - kornia| (unit norm, sign aligned) {_maxdiff(ours, _sign_align(ours, k)):.1e}"))
    c, w = timed(lambda: kepi.find_fundamental(b1, b2), repeats)
    rows.append(("8-point F, N=1000", "batch 64 (per problem)", "kornia find_fundamental(8POINT) f64",
                 c / b1.shape[0], w / b1.shape[0], ""))
    # E from F: a pure matrix product; batched over 10k F's.
    fs = ours.expand(10_000, 3, 3).contiguous() * (1 + torch.arange(10_000, dtype=D))[:, None, None] / 1e4
    kk = K.expand(10_000, 3, 3).contiguous()
    e_ours = essential_from_fundamental(fs, kk, kk)
    e_kor = kepi.essential_from_fundamental(fs, kk, kk)
    p = "E from F, batch 10k"
    rows.append((p, "", "kornia essential_from_fundamental f64",
                 *timed(lambda: kepi.essential_from_fundamental(fs, kk, kk), repeats), ""))
    rows.append((p, "", "ours essential_from_fundamental f64",
                 *timed(lambda: essential_from_fundamental(fs, kk, kk), repeats),
                 f"max |ours - kornia| relative {_maxdiff(e_ours, e_kor) / float(e_kor.abs().max()):.1e}"))
    return rows


def triangulation_rows(timed, repeats: int, P, x, ref) -> list:
    rows = []
    p1, p2 = P[0][None], P[1][None]
    a, b = x[0][None], x[1][None]
    for solver in ("cofactor", "eigh", "svd"):
        out = kepi.triangulate_points(p1, p2, a, b, solver=solver)[0]
        rel = np.abs(out.numpy() - ref).max() / np.abs(ref).max()
        rows.append(("triangulation, 100k points", "", f"kornia triangulate_points({solver}) f64",
                     *timed(lambda s=solver: kepi.triangulate_points(p1, p2, a, b, solver=s), max(1, repeats // 2)),
                     f"max rel. diff vs OpenCV {rel:.1e}"))
    ours = triangulate_dlt(P, x, "adjugate")
    kor = kepi.triangulate_points(p1, p2, a, b, solver="svd")[0]
    rows.append(("triangulation, 100k points", "", "parity", math.nan, math.nan,
                 f"max rel. |ours adjugate - kornia svd| {float((ours - kor).abs().max() / kor.abs().max()):.1e}"))
    return rows


def pose_rows(timed, repeats: int, scene) -> list:
    """recoverPose (cheirality), the 5-point minimal solver, and robust E."""
    rows = []
    K, R, t, X, x1, x2 = scene(1000, seed=5)
    E = essential_from_pose(R, t)
    En, a1, a2, Kn = E.numpy(), x1.numpy(), x2.numpy(), K.numpy()
    _, rc, tc, _ = cv2.recoverPose(En, a1, a2, Kn)
    ro, to, _ = recover_pose(E, x1, x2, K, K)
    rk, tk, _, _ = kepi.motion_from_essential_choose_solution(E, K, K, x1, x2)
    p = "recover pose from E, N=1000"
    rows.append((p, "", "OpenCV recoverPose", *timed(lambda: cv2.recoverPose(En, a1, a2, Kn), repeats * 3),
                 "reference"))
    rows.append((p, "", "kornia motion_from_essential_choose_solution f64",
                 *timed(lambda: kepi.motion_from_essential_choose_solution(E, K, K, x1, x2), repeats * 3),
                 f"R max diff vs OpenCV {_maxdiff(rk, rc):.1e}"))
    rows.append((p, "", "ours recover_pose f64", *timed(lambda: recover_pose(E, x1, x2, K, K), repeats * 3),
                 f"R max diff vs OpenCV {_maxdiff(ro, rc):.1e}, vs kornia {_maxdiff(ro, rk):.1e}; "
                 f"t vs kornia {_maxdiff(to, tk[..., 0] if tk.dim() > 1 else tk):.1e}"))

    # 5-point minimal problems: 1000 random calibrated scenes, 5 exact correspondences each.
    g = torch.Generator().manual_seed(7)
    b = 1000
    q = torch.randn(b, 4, generator=g, dtype=D)
    rots = quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True), order="wxyz")
    rots = axis_angle_to_matrix(matrix_to_axis_angle(rots) * 0.3)  # moderate rotations, cameras see the points
    ts = torch.randn(b, 3, generator=g, dtype=D)
    pts = torch.cat([(torch.rand(b, 5, 2, generator=g, dtype=D) - 0.5) * 4,
                     4 + 4 * torch.rand(b, 5, 1, generator=g, dtype=D)], -1)
    pts2 = pts @ rots.transpose(-1, -2) + ts[:, None]
    n1, n2 = pts[..., :2] / pts[..., 2:], pts2[..., :2] / pts2[..., 2:]
    e_true = essential_from_pose(rots, ts)
    e_true = e_true / e_true.norm(dim=(-1, -2), keepdim=True)

    def best_err(cands: torch.Tensor, valid: torch.Tensor, truth: torch.Tensor = e_true) -> torch.Tensor:
        # (B, S, 3, 3) candidates -> (B,) distance of the closest one to the true E (up to scale and sign)
        c = cands / cands.norm(dim=(-1, -2), keepdim=True)
        d = torch.minimum((c - truth[:, None]).abs().amax((-1, -2)), (c + truth[:, None]).abs().amax((-1, -2)))
        return torch.where(valid, d.nan_to_num(nan=math.inf), torch.full_like(d, math.inf)).amin(-1)

    eo, vo = solve_5point_normalized(n1, n2)
    ek = kepi.find_essential(n1, n2)
    vk = torch.isfinite(ek).flatten(-2).all(-1)
    err_o, err_k = best_err(eo, vo), best_err(torch.nan_to_num(ek), vk)
    n1n, n2n = n1.numpy(), n2.numpy()
    eye = np.eye(3)
    err_c = []
    for i in range(b):
        ec = cv2.findEssentialMat(n1n[i], n2n[i], eye, cv2.RANSAC, 0.999, 1e-3)[0]
        if ec is None:
            err_c.append(math.inf)
            continue
        cands = torch.from_numpy(ec.reshape(-1, 3, 3))[None]
        err_c.append(float(best_err(cands, torch.ones(1, cands.shape[1], dtype=torch.bool), e_true[i:i + 1])[0]))
    err_c = torch.tensor(err_c, dtype=D)

    def summary(err: torch.Tensor) -> str:
        found = float((err < 1e-9).double().mean()) * 100
        return f"true E found to 1e-9 in {found:.1f}% (median error {float(err.median()):.0e})"

    p = "5-point minimal E, 1000 problems (per problem)"
    c, w = timed(lambda: [cv2.findEssentialMat(n1n[i], n2n[i], eye, cv2.RANSAC, 0.999, 1e-3) for i in range(200)],
                 max(1, repeats // 3))
    rows.append((p, "", "OpenCV findEssentialMat (5 points, one call each)", c / 200, w / 200, summary(err_c)))
    c, w = timed(lambda: kepi.find_essential(n1, n2), repeats)
    rows.append((p, "", "kornia find_essential f64, batched", c / b, w / b, summary(err_k)))
    c, w = timed(lambda: solve_5point_normalized(n1, n2), repeats)
    rows.append((p, "", "ours solve_5point_normalized f64, batched", c / b, w / b,
                 summary(err_o) + f"; {float(vo.sum(-1).double().mean()):.2f} real solutions per problem"))

    # Robust E, N = 1000 with 30 % outliers.
    K, R, t, X, x1, x2 = scene(1000, seed=3)
    g = torch.Generator().manual_seed(1)
    x2 = x2.clone()
    x2[:300] = torch.rand(300, 2, generator=g, dtype=D) * torch.tensor([640.0, 480.0], dtype=D)
    a1, a2, Kn = x1.numpy(), x2.numpy(), K.numpy()
    p = "robust E, N=1000, 30% outliers"

    def deg(rot) -> str:
        return f"rotation error {math.degrees(float(geodesic_angle(torch.as_tensor(rot, dtype=D), R))):.3f} deg"

    for name, method in (("RANSAC", cv2.RANSAC), ("USAC_MAGSAC", cv2.USAC_MAGSAC)):
        ec, mk = cv2.findEssentialMat(a1, a2, Kn, method, 0.999, 1.0)
        rc = cv2.recoverPose(ec[:3], a1, a2, Kn, mask=mk.copy())[1]
        rows.append((p, "", f"OpenCV findEssentialMat({name}) + recoverPose",
                     *timed(lambda m=method: cv2.findEssentialMat(a1, a2, Kn, m, 0.999, 1.0), repeats),
                     f"{deg(rc)}, {int(mk.sum())} inliers"))
    for solver in ("5point", "8point"):
        r = ransac(x1, x2, "essential", threshold=1.0, intrinsics1=K, intrinsics2=K, essential_solver=solver)
        rows.append((p, "", f"ours ransac({solver}, LO, LM, degeneracy check)",
                     *timed(lambda s=solver: ransac(x1, x2, "essential", threshold=1.0, intrinsics1=K, intrinsics2=K,
                                                    essential_solver=s), repeats),
                     f"{deg(r.rotation)}, {r.num_inliers} inliers"))
    return rows


def robust_f_rows(timed, repeats: int, x1, x2, quality) -> list:
    def run():
        est = kornia.geometry.RANSAC("fundamental", inl_th=1.0, max_iter=10, confidence=0.999, seed=0)
        return est(x1, x2)

    _, mask = run()
    return [("robust F, N=1000, 30% outliers", "", "kornia RANSAC('fundamental') f64, 10 x auto batch",
             *timed(run, repeats), quality(mask.bool()))]
