"""Seeded, batched RANSAC (MSAC scoring, local optimisation) for H, F and E, with degeneracy and support flags.

Hypotheses are vectorised across iterations *and* across problems: a round draws all its minimal samples for all
B problems of a (B, N, 2) batch at once, solves them as one batched problem (4-point solve for H, the 7-point
algorithm for F, the 5-point solver for E) and scores every hypothesis against every point of its problem with
one batched GEMM; rounds with many hypotheses on many points first rank them on a random subset of the points
(preemptive scoring) and fully score only the best thirty-second. The number of rounds is usually one or two. Local
optimisation and the final refinement then run per problem.

E has two searches (``essential_solver``): ``"5point"`` (default) samples essential matrices directly,
``"8point"`` searches F in pixels and upgrades it with K (projection onto the essential manifold). (Projecting
minimal F's onto the essential manifold instead of using a true 5-point solver was clearly worse: temple ring
views 1-2, 20+ deg rotation error.) For E, local optimisation (LO) is the relative pose itself: cheirality on up
to 100 inliers, then a few Levenberg-Marquardt steps on the Huber cost (k = 2 thresholds) of the Sampson errors
(analytic Jacobian, NumPy) over the correspondences within 3 thresholds; the model is kept when the MSAC score
improves, and the search stops when an all-inlier sample has been drawn with the given confidence, the inlier
share counted on the robust set of the best model (errors within 3 sigma, MAD estimate, clamped to 1-2x the
threshold; as MAGSAC++ stops on its soft inliers). The winner is refined on that robust set (Huber at the
threshold) to convergence, again while that set of
correspondences changes, its pose chosen again by cheirality, and finished by a few LM steps on Tukey's biweight
(c = 4.685 sigma) over the correspondences in front of both cameras: the redescending cost lets go of the stray
outliers that fall near their epipolar lines, which bend weakly determined translations under the Huber cost
(``benchmarks/geometry/bench_robust.py`` compares it with OpenCV's MAGSAC on 300 scenes). For H and F, LO refits
each new best model by iterated least squares on its inliers with a shrinking threshold.

Degeneracy: when a single homography explains (nearly) all the F/E inliers, the points lie on a plane or the
camera only rotated, and F/E is not determined by the data even though a model is returned (OpenCV and kornia
report success silently). The result then carries ``degenerate=True`` and a ``degeneracy`` reason:
``"planar_or_rotation"`` for F, and for E (where K is known) ``"pure_rotation"`` when a rotation-only
homography K2 R K1^-1 explains the inliers as well, else ``"planar"``. The homography is scored by its Sampson
error at the F/E threshold times sqrt(chi2_2(0.95) / chi2_1(0.95)), so both tests keep the same share of
noise-only correspondences (``benchmarks/geometry/bench_degeneracy.py`` measures the flag on 200 scenes per kind).

References:
    Fischler and Bolles, "Random Sample Consensus", CACM 24(6), 1981.
    Torr and Zisserman, "MLESAC", CVIU 78(1), 2000 (the truncated quadratic MSAC score).
    Chum, Matas and Kittler, "Locally Optimized RANSAC", DAGM 2003.
    Chum, Werner and Matas, "Two-view geometry estimation unaffected by a dominant plane", CVPR 2005.
    Nister, "An efficient solution to the five-point relative pose problem", PAMI 26(6), 2004 (5-point RANSAC).
    Nister, "Preemptive RANSAC for live structure and motion estimation", ICCV 2003 (scoring on a point subset).
    Beaton and Tukey, "The fitting of power series, meaning polynomials, illustrated on band-spectroscopic
    data", Technometrics 16(2), 1974 (the biweight).

Modules: ``points`` (layouts and batched errors), ``hypotheses`` (sampling, minimal solvers, ranking, LO for H and
F), ``pose`` (the relative pose of E: LO, Huber and Tukey refinement), ``degeneracy``, ``estimate`` (:func:`ransac`).
"""

from torchworks.geometry.ransac.estimate import ESSENTIAL_SOLVERS, MODELS, RansacResult, ransac

__all__ = ["ESSENTIAL_SOLVERS", "MODELS", "RansacResult", "ransac"]
