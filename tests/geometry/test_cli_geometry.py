"""``geometry`` CLI actions (the module the lead wires into cli/main.py), on real data when present."""

from __future__ import annotations

import argparse

import pytest
import torch
from geo_helpers import data_dir

from torchworks.cli import geometry_cmd
from torchworks.core.errors import ConfigError


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


def test_two_view_solver_option_is_validated(tmp_path):
    assert _parse(["geometry", "two-view", "a.png", "b.png"]).solver == "5point"
    with pytest.raises(SystemExit):
        _parse(["geometry", "two-view", "a.png", "b.png", "--solver", "7point"])
    with pytest.raises(ValueError, match="solver"):
        geometry_cmd.two_view(__file__, __file__, solver="7point")


def test_calibrate_prints_the_intrinsics(capsys):
    base = data_dir("opencv_samples_geometry") / "chessboard_stereo"
    args = _parse(["geometry", "calibrate", str(base / "left0*.jpg"), "--pattern", "9x6"])
    assert geometry_cmd.run(args) == 0
    text = capsys.readouterr().out
    fx = float(text.split("fx ")[1].split()[0])
    assert abs(fx / 536.07 - 1) < 0.02  # OpenCV on all 13 views: 536.07; here only left01-09


def test_two_view_refuses_a_weak_pose_unless_forced(tmp_path, capsys):
    # templeSR0014/0015 leave 9 inliers of 55 matches and a pose ~176 deg wrong: refused with one line, exit 2,
    # and no figure written; --force prints it with a warning.
    from torchworks.cli.main import main

    base = data_dir("multiview_temple_sparse_ring")
    png = tmp_path / "epi.png"
    argv = ["geometry", "two-view", str(base / "templeSR0014.png"), str(base / "templeSR0015.png"),
            "--K", "1520.4,1525.9,302.32,246.87", "--out", str(png)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pose refused" in err and "--force" in err and "inliers of" in err
    assert not png.exists() and list(tmp_path.iterdir()) == []
    assert main([*argv, "--force"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: weakly supported pose" in out and png.stat().st_size > 1000


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        geometry_cmd.two_view(str(tmp_path / "a.png"), str(tmp_path / "b.png"))


def test_calibrate_accepts_two_views_and_refuses_one(capsys):
    from torchworks.cli.main import main

    base = data_dir("opencv_samples_geometry") / "chessboard_stereo"
    assert main(["geometry", "calibrate", str(base / "left0[12].jpg")]) == 0
    assert capsys.readouterr().out.startswith("views 2  rms ")
    assert main(["geometry", "calibrate", str(base / "left01.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "chessboard found in 1 of 1 images; need at least 2" in err
