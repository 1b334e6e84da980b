"""Named camera conventions and the seed note's four coordinate systems (world, camera, image plane, pixel).

Camera axes of each named convention (R = right, L = left, U = up, D = down, F = forward, B = backward):

============================  ======  ==========================================================
name                          axes    notes
============================  ======  ==========================================================
``opencv``, ``colmap``        RDF     this package's internal frame; column vectors
``opengl``, ``nerf``,         RUB     NeRF ``transforms.json`` / Blender
``blender``
``llff``                      DRB     LLFF ``poses_bounds.npy`` (before its own column reordering)
``pytorch3d``                 LUF     **row vectors**: X_cam = X_world @ R + T, so its 4x4 is transposed
============================  ======  ==========================================================

Only the camera frame differs between conventions; the world frame is the caller's and is left unchanged.
A pose is a (..., 4, 4) (or (..., 3, 4)) matrix whose ``kind`` is ``"world_to_cam"`` (x_cam = R X + t) or
``"cam_to_world"``; for ``pytorch3d`` the matrix is the row-vector one, ``[[R, 0], [T, 1]]``, exactly what
``Transform3d.get_matrix()`` returns.

References:
    Hartley and Zisserman, "Multiple View Geometry", 2nd ed., 2004, chapter 6 (x = K [R | t] X).
    Trucco and Verri, "Introductory Techniques for 3-D Computer Vision", 1998, section 2.4 (pixel mapping with
    the axis flip -1/s_x, -1/s_y).
    pytorch3d ``docs/notes/cameras.md`` (LUF, row vectors); Mildenhall et al., NeRF / LLFF repositories.
"""

from __future__ import annotations

import torch

from torchworks.geometry._checks import check_float, check_shape
from torchworks.geometry.se3 import invert_pose, make_pose, transform_points
from torchworks.geometry.so3 import require_rotation

# Rows = this convention's camera axes written in OpenCV camera coordinates: x_conv = S @ x_opencv.
_AXES = {
    "opencv": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "opengl": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),
    "llff": ((0, 1, 0), (1, 0, 0), (0, 0, -1)),
    "pytorch3d": ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
}
_ALIASES = {"colmap": "opencv", "nerf": "opengl", "blender": "opengl"}
CONVENTIONS = tuple(sorted([*_AXES, *_ALIASES]))
POSE_KINDS = ("world_to_cam", "cam_to_world")


def _canonical(name: str) -> str:
    if name not in CONVENTIONS:
        raise ValueError(f"unknown camera convention {name!r}; known: {CONVENTIONS}")
    return _ALIASES.get(name, name)


def axes_from_opencv(convention: str, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """The 3x3 signed permutation S with x_convention = S @ x_opencv for camera-frame points.

    Args:
        convention: one of :data:`CONVENTIONS`.
        dtype: output dtype.
        device: output device.

    Returns:
        (3, 3) orthogonal matrix (det +1: every convention here is right-handed).
    """
    return torch.tensor(_AXES[_canonical(convention)], dtype=dtype, device=device)


def convert_points(points_cam: torch.Tensor, src: str, dst: str) -> torch.Tensor:
    """Re-express camera-frame points from one convention's camera axes in another's.

    Args:
        points_cam: (..., 3) points in the ``src`` camera frame.
        src: convention of the input.
        dst: convention of the output.

    Returns:
        (..., 3) the same points in the ``dst`` camera frame.
    """
    check_shape(points_cam, (3,), "points_cam")
    s = axes_from_opencv(dst, points_cam.dtype, points_cam.device) @ axes_from_opencv(src, points_cam.dtype,
                                                                                     points_cam.device).T
    return points_cam @ s.T


def _check_kind(kind: str) -> None:
    if kind not in POSE_KINDS:
        raise ValueError(f"pose kind must be one of {POSE_KINDS}, got {kind!r}")


def convert_pose(pose: torch.Tensor, src: str, dst: str, *, src_kind: str, dst_kind: str | None = None
                 ) -> torch.Tensor:
    """Convert a pose between any two camera conventions and between world_to_cam and cam_to_world.

    Args:
        pose: (..., 4, 4) or (..., 3, 4) pose in ``src`` convention (row-vector layout for pytorch3d).
        src: convention of the input, one of :data:`CONVENTIONS`.
        dst: convention of the output.
        src_kind: "world_to_cam" or "cam_to_world" (stated explicitly: COLMAP stores the first, NeRF the second).
        dst_kind: kind of the output; defaults to ``src_kind``.

    Returns:
        (..., 4, 4) pose in ``dst`` convention and ``dst_kind``. Projection is invariant: a world point maps to
        the same pixel through either pose (after :func:`convert_points` back to OpenCV axes).
    """
    src_c, dst_c = _canonical(src), _canonical(dst)
    _check_kind(src_kind)
    dst_kind = src_kind if dst_kind is None else dst_kind
    _check_kind(dst_kind)
    check_float(pose, "pose")
    if pose.dim() < 2 or pose.shape[-1] != 4 or pose.shape[-2] not in (3, 4):
        check_shape(pose, (4, 4), "pose")
    if src_c == "pytorch3d":
        if pose.shape[-2] != 4:
            check_shape(pose, (4, 4), "pose")
        pose = pose.transpose(-1, -2)  # row-vector layout -> column-vector layout
    require_rotation(pose[..., :3, :3], "pose rotation block")
    w2c = pose if src_kind == "world_to_cam" else invert_pose(pose)
    if w2c.shape[-2] == 3:
        w2c = make_pose(w2c[..., :3], w2c[..., 3])  # pad (3, 4) to (4, 4)
    s = torch.eye(4, dtype=pose.dtype, device=pose.device).expand(2, 4, 4).clone()
    s[0, :3, :3] = axes_from_opencv(src_c, pose.dtype, pose.device)
    s[1, :3, :3] = axes_from_opencv(dst_c, pose.dtype, pose.device)
    # x_dst = S_dst S_src^T x_src, applied on the camera side of world_to_cam.
    out = (s[1] @ s[0].transpose(-1, -2)) @ w2c
    if dst_kind == "cam_to_world":
        out = invert_pose(out)
    return out.transpose(-1, -2) if dst_c == "pytorch3d" else out


def world_to_camera(points_world: torch.Tensor, world_to_cam: torch.Tensor) -> torch.Tensor:
    """World -> camera frame, x_cam = R X + t (seed note: extrinsics [R | T] with T = -R C).

    Args:
        points_world: (..., N, 3) world points.
        world_to_cam: (..., 4, 4) or (..., 3, 4) poses.

    Returns:
        (..., N, 3) camera-frame points, same units.
    """
    return transform_points(world_to_cam, points_world)


def camera_to_image(points_cam: torch.Tensor, focal: torch.Tensor | float) -> torch.Tensor:
    """Camera frame -> metric image plane by central projection, x = f X / Z, y = f Y / Z.

    Args:
        points_cam: (..., N, 3) camera-frame points with Z != 0.
        focal: focal length f in the same metric units as the image plane (scalar or (...,) tensor).

    Returns:
        (..., N, 2) image-plane coordinates in the units of ``focal``.
    """
    check_shape(points_cam, (None, 3), "points_cam")
    f = torch.as_tensor(focal, dtype=points_cam.dtype, device=points_cam.device)
    f = f[..., None, None] if f.dim() else f
    return f * points_cam[..., :2] / points_cam[..., 2:]


def image_to_pixel(points_image: torch.Tensor, sx: float, sy: float, ox: float, oy: float,
                   flip: bool = True) -> torch.Tensor:
    """Metric image plane -> pixel, u = -x / s_x + o_x, v = -y / s_y + o_y (the note's axis flip).

    Args:
        points_image: (..., 2) image-plane points in metric units (e.g. mm).
        sx: pixel width in the same units; sy: pixel height.
        ox: principal point column in pixels; oy: principal point row in pixels.
        flip: True for the note's convention (image-plane axes opposite to pixel axes); False gives
            u = x / s_x + o_x, the OpenCV layout where the image plane shares the pixel axes.

    Returns:
        (..., 2) pixel coordinates (u = column, v = row).
    """
    check_shape(points_image, (2,), "points_image")
    sign = -1.0 if flip else 1.0
    scale = points_image.new_tensor([sign / sx, sign / sy])
    return points_image * scale + points_image.new_tensor([ox, oy])


def pixel_to_image(pixels: torch.Tensor, sx: float, sy: float, ox: float, oy: float, flip: bool = True
                   ) -> torch.Tensor:
    """Inverse of :func:`image_to_pixel` with the same arguments; (..., 2) pixels -> (..., 2) metric points."""
    check_shape(pixels, (2,), "pixels")
    sign = -1.0 if flip else 1.0
    return (pixels - pixels.new_tensor([ox, oy])) * pixels.new_tensor([sign * sx, sign * sy])


def intrinsics_from_sensor(focal: float, sx: float, sy: float, ox: float, oy: float, flip: bool = True,
                           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """K that composes :func:`camera_to_image` and :func:`image_to_pixel`: [[-f/s_x, 0, o_x], [0, -f/s_y, o_y]].

    Args:
        focal: focal length (metric); sx, sy: pixel size (same unit); ox, oy: principal point (pixels).
        flip: see :func:`image_to_pixel`.
        dtype: output dtype.

    Returns:
        (3, 3) intrinsics matrix.
    """
    sign = -1.0 if flip else 1.0
    return torch.tensor([[sign * focal / sx, 0, ox], [0, sign * focal / sy, oy], [0, 0, 1]], dtype=dtype)


# Pixel coordinate of the centre of the top-left pixel: COLMAP puts the image origin at the corner of the first
# pixel (its centre is 0.5, 0.5); OpenCV (and the NeRF/LLFF/pytorch3d loaders built on it) at its centre.
PIXEL_CENTER = {"opencv": 0.0, "colmap": 0.5, "opengl": 0.0, "nerf": 0.0, "blender": 0.0, "llff": 0.0,
                "pytorch3d": 0.0}


def convert_camera(intrinsics: torch.Tensor, pose: torch.Tensor, src: str, dst: str, *, src_kind: str,
                   dst_kind: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a whole pinhole camera: the pose as :func:`convert_pose`, and K's principal point for the
    pixel-centre convention (:data:`PIXEL_CENTER`, e.g. COLMAP's cx = OpenCV's cx + 0.5).

    Args:
        intrinsics: (..., 3, 3) K in ``src``'s pixel convention (u right, v down in every convention here).
        pose: (..., 4, 4) or (..., 3, 4) pose in ``src`` convention.
        src: convention of the input; dst: convention of the output.
        src_kind: "world_to_cam" or "cam_to_world"; dst_kind: defaults to ``src_kind``.

    Returns:
        (K (..., 3, 3), pose (..., 4, 4)) in ``dst`` conventions; the camera projects every world point to the
        same physical pixel.
    """
    check_shape(intrinsics, (3, 3), "intrinsics")
    for name in (src, dst):
        _canonical(name)  # ValueError naming the known conventions, before the dict lookup below
    shift = PIXEL_CENTER[dst] - PIXEL_CENTER[src]
    k = intrinsics.clone()
    k[..., 0, 2] = k[..., 0, 2] + shift
    k[..., 1, 2] = k[..., 1, 2] + shift
    return k, convert_pose(pose, src, dst, src_kind=src_kind, dst_kind=dst_kind)
