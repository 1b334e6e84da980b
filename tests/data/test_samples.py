"""The samples shipped inside the package: manifest, licences, size, what they claim, and how they were made."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from torchworks.core.errors import DataNotFoundError
from torchworks.data import samples
from torchworks.data.samples import SAMPLES_DIR, SIZE_LIMIT, check_samples, manifest, sample_path

ROOT = Path(__file__).resolve().parents[2]
PERMISSIVE = ("public domain", "CC BY 2.0", "MIT", "BSD-3-Clause")


def test_every_file_is_listed_with_its_source_licence_and_digest():
    assert check_samples() == []
    doc = json.loads((SAMPLES_DIR / "MANIFEST.json").read_text(encoding="utf-8"))
    assert doc["total_bytes"] == sum(f.bytes for f in manifest()) < SIZE_LIMIT
    for f in manifest():
        assert f.source and f.derived and f.used_by, f.path
        assert any(word in f.licence for word in PERMISSIVE), f"{f.path}: {f.licence}"
    # nothing research-only or of unclear licence slipped in
    names = " ".join(f.path + f.source for f in manifest()).lower()
    for banned in ("celeba", "temple", "daily-min-temperatures", "cifar", "bsds", "kodak"):
        assert banned not in names


def test_an_altered_or_unlisted_file_is_reported(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "sample_data"
    shutil.copytree(SAMPLES_DIR, copy)
    monkeypatch.setattr(samples, "SAMPLES_DIR", copy)
    (copy / "series" / "seattle_temp_min.csv").write_text("Date,Temp\n2012-01-01,5.0\n")
    (copy / "photos" / "extra.png").write_bytes(b"x")
    assert check_samples() == ["series/seattle_temp_min.csv: differs from the manifest (size or sha256)",
                               "photos/extra.png: not in the manifest"]


def test_the_package_data_patterns_ship_every_sample():
    """pyproject's package-data globs (relative to the torchworks.data package) match every sample file, so a
    wheel or a non-editable install carries them."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    for rel in ["MANIFEST.json", *(f.path for f in manifest())]:
        path = PurePosixPath("sample_data", rel)
        assert any(len(path.parts) == len(PurePosixPath(p).parts) and path.match(p) for p in patterns), rel


def test_unknown_sample_names_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="photos/astronaut_face.png"):
        sample_path("photos/nope.png")


def test_stereo_pair_ground_truth_is_what_the_images_show():
    """Two-view RANSAC on the shipped pair recovers the pose the manifest states (R = I, t = (-1, 0, 0))."""
    pytest.importorskip("cv2")
    import torch

    from torchworks.cli.geometry_cmd import two_view
    from torchworks.geometry.rotations import geodesic_angle

    pair = samples.stereo_pair()
    out = two_view(str(pair["left"]), str(pair["right"]), K=pair["K"], seed=0)
    r_gt = torch.tensor(pair["R"], dtype=torch.float64)
    t_gt = torch.tensor(pair["t"], dtype=torch.float64)
    assert math.degrees(float(geodesic_angle(out["R"], r_gt))) < 0.2
    assert math.degrees(math.acos(min(1.0, float(out["t"] @ t_gt)))) < 1.0
    assert int(out["inliers"].sum()) > 500 and not out["degenerate"]


def test_fashion_sample_is_balanced_and_disjoint():
    xs, ys = samples.fashion_mnist_sample("train")
    xt, yt = samples.fashion_mnist_sample("test")
    assert xs.shape == (500, 28, 28) and xt.shape == (1000, 28, 28) and xs.dtype == np.uint8
    assert np.bincount(ys).tolist() == [50] * 10 and np.bincount(yt).tolist() == [100] * 10
    with pytest.raises(ValueError, match="split"):
        samples.fashion_mnist_sample("val")


def test_seattle_series_reads_as_a_forecast_input():
    from torchworks.sequence.series import read_series

    series = read_series(sample_path("series/seattle_temp_min.csv"), ["Temp"])
    assert series.values.shape == (1461, 1)
    assert -10 < float(series.values.min()) < 0 < 15 < float(series.values.max()) < 25  # deg C, Seattle lows


def _shared() -> Path:
    from torchworks.data import shared_data_dirs

    for d in shared_data_dirs():
        if all((d / sub).is_dir() for sub in ("skimage_bundled", "sklearn_sample_images", "vega_datasets",
                                               "fashion_mnist_debian")):
            return d
    pytest.skip("the originals are not on this machine (../shared/data): the samples cannot be rebuilt here")


def test_rebuilding_from_the_originals_gives_the_shipped_samples(tmp_path):
    """build_samples is the derivation the manifest describes: its output equals the shipped files (pixels for
    JPEG, whose bytes depend on the libjpeg version; bytes or arrays for the rest)."""
    pytest.importorskip("PIL")
    from torchworks.data.images import read_image

    samples.build_samples(_shared(), tmp_path)
    for f in manifest():
        new, old = tmp_path / f.path, SAMPLES_DIR / f.path
        if f.path.endswith(".jpg") and f.derived != "unmodified copy":
            a, b = read_image(new)[0].astype(int), read_image(old)[0].astype(int)
            assert a.shape == b.shape and np.abs(a - b).mean() < 0.5, f.path
        elif f.path.endswith(".png"):
            np.testing.assert_array_equal(read_image(new)[0], read_image(old)[0])
        elif f.path.endswith(".npz"):
            with np.load(new) as a, np.load(old) as b:
                assert sorted(a.files) == sorted(b.files)
                for k in a.files:
                    np.testing.assert_array_equal(a[k], b[k])
        else:
            assert new.read_bytes() == old.read_bytes(), f.path


def test_fashion_sample_rows_are_the_official_images_at_their_indices():
    from torchworks.data.fashion_mnist import load_fashion_mnist

    try:
        official = {split: load_fashion_mnist(split) for split in ("train", "test")}
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST not found: torchworks data path fashion_mnist --download")
    with np.load(sample_path("fashion_mnist/sample.npz")) as d:
        for split in ("train", "test"):
            images, labels = official[split]
            idx = d[f"{split}_index"]
            np.testing.assert_array_equal(d[f"{split}_images"], images[idx])
            np.testing.assert_array_equal(d[f"{split}_labels"], labels[idx])
