"""Camera geometry: pure, batched, differentiable functions on tensors. Imports core only.

Modules (each function documents shapes, dtypes and units; column vectors, radians, OpenCV camera frame):

- ``conventions``: named camera conventions (opencv/colmap, opengl/nerf/blender, llff, pytorch3d),
  ``convert_pose`` between any two, the world -> camera -> image -> pixel chain.
- ``so3``, ``rotations``, ``quaternions``, ``euler``, ``se3``: rotation representations (order-explicit
  quaternions), all 12 Euler sequences, SO(3)/SE(3) exp and log, poses and camera centres.
- ``camera``, ``distortion``: pinhole intrinsics, perspective/orthographic projection, Brown-Conrady model.
- ``homography``, ``epipolar``, ``essential``, ``five_point``, ``triangulation``, ``trifocal``: multi-view
  geometry (``five_point``: the minimal 5-point essential-matrix solver, batched).
- ``ransac``: seeded RANSAC for H, F, E (one problem or a (B, N, 2) batch) with degeneracy and support flags.
- ``pnp``: P3P, EPnP, LM refinement and RANSAC for the absolute pose.
- ``bundle``: bundle adjustment (sparse LM, Schur complement, robust losses, shared intrinsics; batches of
  problems; implicit-function gradients of the solution).
- ``pose_error``: the ground-truth relative pose of two cameras and an estimate's rotation / direction error.
- ``stereo``, ``calibration``, ``fisheye``: rectification, disparity/depth, Zhang calibration, the Kannala-Brandt
  model and undistortion maps applied with ``grid_sample``.
- ``synthetic``: random scenes with ground truth; ``pipelines``: image-level two-view, calibration and SfM (OpenCV
  features, imported on demand).
"""

from torchworks.geometry.bundle import BundleBatchResult, BundleResult, bundle_adjust, bundle_adjust_batched
from torchworks.geometry.calibration import calibrate_camera
from torchworks.geometry.camera import (
    intrinsics_matrix,
    project_orthographic,
    project_points,
    projection_matrix,
    unproject_points,
    world_to_pixels,
)
from torchworks.geometry.conventions import CONVENTIONS, convert_camera, convert_points, convert_pose
from torchworks.geometry.distortion import distort_points, undistort_points
from torchworks.geometry.epipolar import (
    epipolar_lines,
    epipoles,
    find_fundamental,
    find_fundamental_7point,
    fundamental_from_essential,
    sampson_distance,
    symmetric_epipolar_distance,
)
from torchworks.geometry.essential import decompose_essential, essential_from_pose, find_essential, recover_pose
from torchworks.geometry.euler import euler_to_matrix, matrix_to_euler
from torchworks.geometry.fisheye import (
    fisheye_project_points,
    fisheye_undistort_points,
    remap,
    undistort_rectify_map,
)
from torchworks.geometry.five_point import find_essential_5point, solve_5point_normalized
from torchworks.geometry.homography import (
    find_homography,
    homography_from_plane,
    homography_from_rotation,
    transfer_error,
)
from torchworks.geometry.pnp import PnPResult, pnp_ransac, refine_pnp, solve_epnp, solve_p3p
from torchworks.geometry.pose_error import relative_pose, relative_pose_error
from torchworks.geometry.quaternions import (
    axis_angle_to_quaternion,
    matrix_to_quaternion,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
)
from torchworks.geometry.ransac import RansacResult, ransac
from torchworks.geometry.rotations import (
    axis_angle_to_matrix,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_sixd,
    sixd_to_matrix,
    so3_exp,
    so3_log,
)
from torchworks.geometry.se3 import camera_center, invert_pose, make_pose, se3_exp, se3_log
from torchworks.geometry.so3 import is_rotation_matrix, project_to_so3
from torchworks.geometry.stereo import disparity_to_depth, disparity_to_points, rectify_stereo
from torchworks.geometry.triangulation import reprojection_error, triangulate_dlt, triangulate_midpoint
from torchworks.geometry.trifocal import find_trifocal, transfer_line, transfer_point, trifocal_from_projections

__all__ = [
    "CONVENTIONS",
    "BundleBatchResult",
    "BundleResult",
    "PnPResult",
    "RansacResult",
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "bundle_adjust",
    "bundle_adjust_batched",
    "calibrate_camera",
    "camera_center",
    "convert_camera",
    "convert_points",
    "convert_pose",
    "decompose_essential",
    "disparity_to_depth",
    "disparity_to_points",
    "distort_points",
    "epipolar_lines",
    "epipoles",
    "essential_from_pose",
    "euler_to_matrix",
    "find_essential",
    "find_essential_5point",
    "find_fundamental",
    "find_fundamental_7point",
    "find_homography",
    "find_trifocal",
    "fisheye_project_points",
    "fisheye_undistort_points",
    "fundamental_from_essential",
    "geodesic_angle",
    "homography_from_plane",
    "homography_from_rotation",
    "intrinsics_matrix",
    "invert_pose",
    "is_rotation_matrix",
    "make_pose",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "matrix_to_sixd",
    "pnp_ransac",
    "project_orthographic",
    "project_points",
    "project_to_so3",
    "projection_matrix",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "ransac",
    "recover_pose",
    "rectify_stereo",
    "refine_pnp",
    "remap",
    "relative_pose",
    "relative_pose_error",
    "reprojection_error",
    "sampson_distance",
    "se3_exp",
    "se3_log",
    "sixd_to_matrix",
    "so3_exp",
    "so3_log",
    "solve_5point_normalized",
    "solve_epnp",
    "solve_p3p",
    "symmetric_epipolar_distance",
    "transfer_error",
    "transfer_line",
    "transfer_point",
    "triangulate_dlt",
    "triangulate_midpoint",
    "trifocal_from_projections",
    "undistort_points",
    "undistort_rectify_map",
    "unproject_points",
    "world_to_pixels",
]
