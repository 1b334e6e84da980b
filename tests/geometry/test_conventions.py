"""Camera conventions: any-to-any conversion forms a group, projection is invariant, known layouts match."""

from __future__ import annotations

import itertools

import pytest
import torch
from geo_helpers import random_rotations

from torchworks.core.errors import ShapeError
from torchworks.geometry import conventions as cv
from torchworks.geometry.camera import intrinsics_matrix, project_points
from torchworks.geometry.se3 import invert_pose, make_pose, transform_points

NAMES = ["opencv", "colmap", "opengl", "nerf", "blender", "llff", "pytorch3d"]


def _w2c(n=3):
    t = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return make_pose(random_rotations(n, seed=4), t)


@pytest.mark.parametrize(("a", "b"), list(itertools.product(NAMES, NAMES)))
def test_round_trip_and_projection_invariance(a, b):
    w2c = _w2c()
    pa = cv.convert_pose(w2c, "opencv", a, src_kind="world_to_cam", dst_kind="cam_to_world")
    pb = cv.convert_pose(pa, a, b, src_kind="cam_to_world", dst_kind="world_to_cam")
    back = cv.convert_pose(pb, b, "opencv", src_kind="world_to_cam")
    assert (back - w2c).abs().max() < 1e-14
    # Projection invariance: a world point seen through b's pose, brought back to OpenCV axes, hits the same pixel.
    X = torch.randn(3, 10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + torch.tensor(
        [0.0, 0.0, 8.0], dtype=torch.float64)
    K = intrinsics_matrix(500.0, 510.0, 320.0, 240.0)
    col = pb.transpose(-1, -2) if b == "pytorch3d" else pb
    xb = transform_points(col, X)
    ref = project_points(transform_points(w2c, X), K)
    assert (project_points(cv.convert_points(xb, b, "opencv"), K) - ref).abs().max() < 1e-10


def test_composition_equals_direct_conversion():
    w2c = _w2c()
    for a, b, c in itertools.permutations(["opengl", "llff", "pytorch3d", "colmap"], 3):
        pab = cv.convert_pose(w2c, "opencv", a, src_kind="world_to_cam")
        two = cv.convert_pose(cv.convert_pose(pab, a, b, src_kind="world_to_cam"), b, c, src_kind="world_to_cam")
        assert (two - cv.convert_pose(pab, a, c, src_kind="world_to_cam")).abs().max() < 1e-14


def test_known_layouts():
    w2c = _w2c(1)[0]
    c2w = invert_pose(w2c)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    # NeRF/OpenGL c2w = OpenCV c2w with the camera's y and z axes negated (nerfstudio's colmap_to_json).
    assert torch.allclose(cv.convert_pose(w2c, "colmap", "nerf", src_kind="world_to_cam", dst_kind="cam_to_world"),
                          c2w @ flip, atol=1e-15)
    # pytorch3d (cameras_from_opencv_projection): R_p3d = R^T with its first two columns negated, T = (-t0, -t1, t2).
    p3d = cv.convert_pose(w2c, "opencv", "pytorch3d", src_kind="world_to_cam")
    R, t = w2c[:3, :3], w2c[:3, 3]
    expect_r = R.T.clone()
    expect_r[:, :2] *= -1
    assert torch.allclose(p3d[:3, :3], expect_r, atol=1e-15)
    assert torch.allclose(p3d[3, :3], t * torch.tensor([-1.0, -1, 1], dtype=torch.float64), atol=1e-15)
    # LLFF camera axes are (down, right, back): an OpenCV point (x, y, z) is (y, x, -z) there.
    assert cv.convert_points(torch.tensor([1.0, 2, 3]), "opencv", "llff").tolist() == [2, 1, -3]


def test_seed_note_coordinate_chain():
    # world -> camera -> image plane (mm) -> pixel with the axis flip; equals K from intrinsics_from_sensor.
    w2c = _w2c(1)[0]
    X = torch.tensor([[0.3, -0.2, 9.0], [1.0, 0.5, 7.0]], dtype=torch.float64)
    f, sx, sy, ox, oy = 35.0, 0.01, 0.012, 320.0, 240.0
    xc = cv.world_to_camera(X, w2c)
    xc = xc + torch.tensor([0, 0, 20.0], dtype=torch.float64)  # keep Z > 0
    uv = cv.image_to_pixel(cv.camera_to_image(xc, f), sx, sy, ox, oy)
    K = cv.intrinsics_from_sensor(f, sx, sy, ox, oy)
    assert K[0, 0].item() == -3500.0 and K[1, 1].item() == pytest.approx(-35 / 0.012)
    assert torch.allclose(uv, project_points(xc, K), atol=1e-12)
    assert torch.allclose(cv.pixel_to_image(uv, sx, sy, ox, oy), cv.camera_to_image(xc, f), atol=1e-13)
    # Hand value: image point (1 mm, 0) lands 100 px *left* of the principal point with the flip.
    assert cv.image_to_pixel(torch.tensor([1.0, 0.0]), 0.01, 0.01, 320, 240).tolist() == pytest.approx([220, 240])
    assert cv.image_to_pixel(torch.tensor([1.0, 0.0]), 0.01, 0.01, 320, 240, flip=False).tolist() == pytest.approx(
        [420, 240])


def test_gradcheck_convert_pose():
    w2c = _w2c(1)[0].requires_grad_(True)
    # eps 1e-7: the rotation check (max|R^T R - I| <= 1e-6) refuses the default 1e-6 finite-difference probes.
    assert torch.autograd.gradcheck(
        lambda p: cv.convert_pose(p, "opencv", "llff", src_kind="world_to_cam", dst_kind="cam_to_world"), (w2c,),
        eps=1e-7)


def test_errors():
    w2c = _w2c(1)[0]
    with pytest.raises(ValueError, match="unknown camera convention 'unity'"):
        cv.convert_pose(w2c, "opencv", "unity", src_kind="world_to_cam")
    with pytest.raises(ValueError, match="pose kind"):
        cv.convert_pose(w2c, "opencv", "opengl", src_kind="c2w")
    with pytest.raises(TypeError):
        cv.convert_pose(w2c, "opencv", "opengl")  # kind must be stated
    with pytest.raises(ShapeError):
        cv.convert_pose(torch.zeros(4, 3, dtype=torch.float64), "opencv", "opengl", src_kind="world_to_cam")
    with pytest.raises(ShapeError):
        cv.convert_points(torch.zeros(2), "opencv", "opengl")


def test_convert_camera_shifts_colmap_principal_point_and_keeps_pixels():
    w2c = _w2c(1)[0]
    K = intrinsics_matrix(500.0, 500.0, 320.0, 240.0)
    k_colmap, pose = cv.convert_camera(K, w2c, "opencv", "colmap", src_kind="world_to_cam")
    assert k_colmap[0, 2].item() == 320.5 and k_colmap[1, 2].item() == 240.5  # COLMAP: pixel centres at +0.5
    assert torch.equal(pose, w2c)
    k_back, pose_gl = cv.convert_camera(k_colmap, pose, "colmap", "nerf", src_kind="world_to_cam",
                                        dst_kind="cam_to_world")
    assert torch.equal(k_back, K)
    assert torch.allclose(pose_gl, cv.convert_pose(w2c, "opencv", "nerf", src_kind="world_to_cam",
                                                   dst_kind="cam_to_world"))
    with pytest.raises(ValueError, match="unknown camera convention"):
        cv.convert_camera(K, w2c, "opencv", "vulkan", src_kind="world_to_cam")
