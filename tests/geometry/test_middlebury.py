"""``torchworks.geometry.pipelines.middlebury``: the cameras of a Middlebury multi-view ``*_par.txt`` file."""

from __future__ import annotations

import math

import pytest
import torch
from geo_helpers import data_dir, random_rotations

from torchworks.core.errors import DataError
from torchworks.geometry.pipelines.middlebury import read_middlebury_cameras
from torchworks.geometry.pose_error import relative_pose
from torchworks.geometry.rotations import geodesic_angle

D = torch.float64


def _line(name: str, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> str:
    return " ".join([name, *(repr(float(v)) for v in torch.cat([K.flatten(), R.flatten(), t]))])


def test_reads_every_camera_in_file_order(tmp_path):
    K = torch.tensor([[1520.4, 0, 302.32], [0, 1525.9, 246.87], [0, 0, 1]], dtype=D)
    rots = random_rotations(3, seed=5)
    ts = torch.randn(3, 3, generator=torch.Generator().manual_seed(6), dtype=D)
    names = ["v0003.png", "v0001.png", "v0002.png"]
    par = tmp_path / "set_par.txt"
    par.write_text("3\n" + "\n".join(_line(n, K, r, t) for n, r, t in zip(names, rots, ts, strict=True)) + "\n\n")
    views = read_middlebury_cameras(par)
    assert list(views) == names
    for n, r, t in zip(names, rots, ts, strict=True):
        v = views[n]
        assert v.path == tmp_path / n and v.K.dtype == D
        assert torch.equal(v.K, K) and torch.equal(v.R, r) and torch.equal(v.t, t)  # repr round-trips exactly


@pytest.mark.parametrize(("text", "match"), [
    ("", "empty camera file"),
    ("1\nv.png 1 2 3\n", r":2: expected an image name and 21 numbers"),
    ("1\nv.png " + " ".join(["x"] * 21) + "\n", r":2: expected an image name and 21 numbers"),
    ("2\nv.png " + " ".join(["1"] * 21) + "\n", "first line says '2' cameras, the file lists 1"),
])
def test_malformed_files_are_named(tmp_path, text, match):
    par = tmp_path / "bad_par.txt"
    par.write_text(text)
    with pytest.raises(DataError, match=match):
        read_middlebury_cameras(par)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_middlebury_cameras("/nonexistent/templeSR_par.txt")


def test_temple_ring_cameras_are_rotations_and_views_10_11_turn_23_degrees():
    base = data_dir("multiview_temple_sparse_ring")
    views = read_middlebury_cameras(base / "templeSR_par.txt")
    assert len(views) == 16 and all(v.path.is_file() for v in views.values())
    a, b = views["templeSR0010.png"], views["templeSR0011.png"]
    assert a.K[0, 0].item() == 1520.4 and a.K[1, 2].item() == 246.87
    rot, _ = relative_pose(a.R, a.t, b.R, b.t)
    # the 22.98 deg of tests/geometry/test_pipelines.py (the ground truth the two-view pose is checked against)
    assert math.degrees(geodesic_angle(rot, torch.eye(3, dtype=D)).item()) == pytest.approx(22.98, abs=0.01)
