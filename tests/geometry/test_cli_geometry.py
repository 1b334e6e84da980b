"""``geometry`` CLI actions (the module the lead wires into cli/main.py), on real data when present."""

from __future__ import annotations

import argparse

import pytest
import torch
from geo_helpers import data_dir

from torchworks.cli import geometry_cmd
from torchworks.core.errors import ConfigError, DataError


def _parse(argv):
    p = argparse.ArgumentParser(prog="torchworks")
    geometry_cmd.add_parser(p.add_subparsers(dest="verb"))
    return p.parse_args(argv)


def test_convert_pose_values_and_run(capsys):
    # OpenCV c2w identity -> OpenGL c2w flips the camera's y and z axes.
    vals = "1 0 0 0 0 1 0 0 0 0 1 0".split()
    out = geometry_cmd.convert_pose_values(vals, "opencv", "opengl")
    assert torch.tensor(out[0]).diagonal().tolist() == [1, -1, -1, 1]
    args = _parse(["geometry", "convert-pose", "--from", "opencv", "--to", "nerf", *vals])
    assert geometry_cmd.run(args) == 0
    assert "-1" in capsys.readouterr().out


def test_convert_pose_file_and_errors(tmp_path):
    f = tmp_path / "poses.txt"
    f.write_text("1 0 0 1 0 1 0 2 0 0 1 3\n1 0 0 0 0 1 0 0 0 0 1 0\n")
    out = geometry_cmd.convert_pose_values([str(f)], "opencv", "opencv", "cam_to_world", "world_to_cam")
    assert len(out) == 2 and out[0][0][3] == -1.0
    with pytest.raises(ConfigError, match="12"):
        geometry_cmd.convert_pose_values(["1", "2", "3"], "opencv", "opengl")
    with pytest.raises(FileNotFoundError):
        geometry_cmd.convert_pose_values(["missing.txt"], "opencv", "opengl")
    with pytest.raises(SystemExit):
        _parse(["geometry", "convert-pose", "--from", "unity", "--to", "opencv", "1"])
    with pytest.raises(SystemExit):
        _parse(["geometry", "two-view", "a.png", "b.png", "--K", "1,2,3"])


@pytest.mark.parametrize("solver", ["5point", "8point"])
def test_two_view_on_temple_with_known_k(tmp_path, solver):
    base = data_dir("multiview_temple_sparse_ring")
    k = "1520.4,1525.9,302.32,246.87"
    args = _parse(["geometry", "two-view", str(base / "templeSR0010.png"), str(base / "templeSR0011.png"),
                   "--K", k, "--out", str(tmp_path / "epi.png"), "--solver", solver])
    assert args.solver == solver
    res = geometry_cmd.two_view(args.image_a, args.image_b, K=args.K, out=args.out, solver=args.solver)
    assert (tmp_path / "epi.png").stat().st_size > 1000
    assert res["inliers"].sum() > 100 and not res["degenerate"]
    assert "rotation" in res["report"] and f"({solver} solver)" in res["report"]
    # Ground truth of views 10 -> 11 (templeSR_par.txt): a 22.98 deg rotation; both solvers land within 1 deg.
    angle = float(res["report"].split("rotation ")[1].split(" deg")[0])
    assert abs(angle - 22.98) < 1.0


def test_two_view_solver_option_is_validated(tmp_path):
    assert _parse(["geometry", "two-view", "a.png", "b.png"]).solver == "5point"
    with pytest.raises(SystemExit):
        _parse(["geometry", "two-view", "a.png", "b.png", "--solver", "7point"])
    with pytest.raises(ValueError, match="solver"):
        geometry_cmd.two_view(__file__, __file__, solver="7point")


def test_calibrate_on_opencv_chessboards(capsys):
    base = data_dir("opencv_samples_geometry") / "chessboard_stereo"
    args = _parse(["geometry", "calibrate", str(base / "left0*.jpg"), "--pattern", "9x6"])
    assert geometry_cmd.run(args) == 0
    text = capsys.readouterr().out
    fx = float(text.split("fx ")[1].split()[0])
    assert abs(fx / 536.07 - 1) < 0.02  # OpenCV on all 13 views: 536.07; here only left01-09


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        geometry_cmd.calibrate(str(tmp_path / "*.jpg"))
    with pytest.raises(FileNotFoundError):
        geometry_cmd.two_view(str(tmp_path / "a.png"), str(tmp_path / "b.png"))
    import cv2
    import numpy as np

    blank = str(tmp_path / "blank.png")
    cv2.imwrite(blank, np.zeros((64, 64), np.uint8))
    with pytest.raises(DataError, match="matches"):
        geometry_cmd.two_view(blank, blank)
