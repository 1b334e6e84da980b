"""Incremental SfM (``torchworks geometry sfm``) on real temple views: poses against the calibration, the COLMAP text
model and PLY it writes, atomic output, and one-line errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from geo_helpers import data_dir

from torchworks.cli.main import main
from torchworks.geometry._reprojection import rodrigues
from torchworks.geometry.pipelines.sfm import Reconstruction, compare_to_ground_truth

TEMPLE_K = "1520.4,1525.9,302.32,246.87"


def _truth(base, names):
    out = {}
    for line in (base / "templeSR_par.txt").read_text().splitlines()[1:]:
        p = line.split()
        if p[0] in names:
            v = np.array([float(x) for x in p[1:]])
            out[names.index(p[0])] = (v[9:18].reshape(3, 3), v[18:21])
    return out


def _read_colmap(folder):
    cams = [ln for ln in (folder / "cameras.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    lines = [ln for ln in (folder / "images.txt").read_text().splitlines() if not ln.startswith("#")]
    images = {}
    for head, pts in zip(lines[0::2], lines[1::2], strict=True):
        h = head.split()
        vals = pts.split()
        images[int(h[0])] = {"q": np.array([float(v) for v in h[1:5]]), "t": np.array([float(v) for v in h[5:8]]),
                             "name": h[9], "ids": [int(v) for v in vals[2::3]]}
    points = {}
    for ln in (folder / "points3D.txt").read_text().splitlines():
        if ln and not ln.startswith("#"):
            v = ln.split()
            points[int(v[0])] = {"xyz": np.array([float(x) for x in v[1:4]]), "track": list(zip(
                map(int, v[8::2]), map(int, v[9::2]), strict=True))}
    return cams, images, points


def test_sfm_on_temple_views_writes_a_consistent_colmap_model(tmp_path, capsys):
    base = data_dir("multiview_temple_sparse_ring")
    names = [f"templeSR{i:04d}.png" for i in range(6, 11)]
    out = tmp_path / "model"
    assert main(["geometry", "sfm", *[str(base / n) for n in names], "--K", TEMPLE_K, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "registered 5 of 5 images" in captured.out and "final bundle adjustment" in captured.err
    cams, images, points = _read_colmap(out)
    assert cams == ["1 PINHOLE 640 480 1520.4 1525.9 302.82 247.37"]  # COLMAP's pixel centres are at +0.5
    assert len(images) == 5 and len(points) > 300
    for pid, p in points.items():  # every track entry points back at an observation of this point
        assert len(p["track"]) >= 2
        for image_id, idx in p["track"]:
            assert images[image_id]["ids"][idx] == pid
    ply = (out / "points.ply").read_text().splitlines()
    assert f"element vertex {len(points)}" in ply and len(ply) == len(points) + 10
    assert (out / "model.png").stat().st_size > 5000
    # Poses against the calibration, after a similarity (COLMAP quaternions are w, x, y, z of world_to_cam).
    rec = Reconstruction([], [(480, 640)], np.zeros(9), [], [])
    for image_id, im in images.items():
        w, x, y, z = im["q"]
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        rec.poses[names.index(im["name"])] = (r, im["t"])
        assert image_id == names.index(im["name"]) + 1
    cmp = compare_to_ground_truth(rec, _truth(base, names))
    # Measured on all 16 views: median rotation error 0.23 deg, camera centres 0.16 % of the ring's diameter.
    assert cmp["rotation_max_deg"] < 1.0 and cmp["centre_max"] < 0.01


def test_existing_model_folder_is_refused_and_kept(tmp_path, capsys):
    base = data_dir("multiview_temple_sparse_ring")
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["geometry", "sfm", str(base / "templeSR0007.png"), str(base / "templeSR0008.png"), "--K", TEMPLE_K,
            "-o", str(out)]
    assert main(argv) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(("images", "message"), [
    (["templeSR0001.png"], "needs at least two images"),
    (["templeSR0001.png", "templeSR0006.png"], "no two images share enough verified matches"),
    (["missing.png", "templeSR0001.png"], "image not found"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys, images, message):
    base = data_dir("multiview_temple_sparse_ring")
    out = tmp_path / "model"
    assert main(["geometry", "sfm", *[str(base / n) for n in images], "--K", TEMPLE_K, "-o", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_folder_without_images_and_bad_intrinsics(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("not an image")
    assert main(["geometry", "sfm", str(folder), "-o", str(tmp_path / "m")]) == 2
    assert "no images" in capsys.readouterr().err
    assert main(["geometry", "sfm", str(folder), "--K", "1,2,3", "-o", str(tmp_path / "m")]) == 2
    assert "--K takes fx,fy,cx,cy" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_ground_truth_comparison_is_invariant_to_a_similarity():
    g = np.random.default_rng(0)
    truth = {i: (rodrigues(g.normal(size=3) * 0.5), g.normal(size=3)) for i in range(5)}
    rot, scale, shift = rodrigues(np.array([0.3, -0.2, 0.1])), 2.5, np.array([1.0, -2.0, 0.5])
    rec = Reconstruction([], [], np.zeros(9), [], [])
    for i, (r, t) in truth.items():  # world' = scale rot world + shift: R' = R rot^T, t' = scale t - R' shift
        r2 = r @ rot.T
        rec.poses[i] = (r2, scale * t - r2 @ shift)
    cmp = compare_to_ground_truth(rec, {i: v for i, v in truth.items()})
    assert cmp["rotation_max_deg"] < 1e-6 and cmp["centre_max"] < 1e-12 and math.isclose(cmp["scale"], 1 / 2.5)
    with pytest.raises(ValueError, match="at least 3"):
        compare_to_ground_truth(rec, {0: truth[0]})
    assert torch.is_tensor(torch.from_numpy(rec.poses[0][0]))
