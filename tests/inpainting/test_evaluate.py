"""Evaluation harness: fixed-seed masks, one row per (image, family, method), tables, files, the CLI verb."""

from __future__ import annotations

import argparse
import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from torchworks.cli import inpaint_cmd
from torchworks.inpainting.evaluate import (
    evaluate,
    expand_families,
    list_images,
    load_square,
    mask_generator,
    summary_tables,
    write_results,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

pytest.importorskip("cv2")
pytest.importorskip("PIL")


@pytest.fixture
def folder(tmp_path):
    for name in ("a.png", "b.png"):
        shutil.copy(FIXTURES / "chelsea_96x64.png", tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_presets_and_generators():
    assert expand_families(["large", "thin", "thick"]) == ["thick", "center", "thin"]
    assert expand_families(["scratches", "region"]) == ["thin", "medium", "box"]
    assert mask_generator("thin", 256).components[0][2]["max_width"] == 10  # LaMa random_thin_256
    assert mask_generator("thin", 512).components[0][2]["max_width"] == 20  # random_thin_512
    with pytest.raises(ValueError, match="unknown mask family"):
        expand_families(["blobs"])


def test_load_square_resizes_short_side_and_crops(folder):
    img = load_square(folder / "a.png", 48)
    assert img.shape == (3, 48, 48) and 0 <= float(img.min()) and float(img.max()) <= 1
    assert list_images([folder]) == [folder / "a.png", folder / "b.png"]
    assert list_images([folder], limit=1) == [folder / "a.png"]
    with pytest.raises(FileNotFoundError):
        list_images([folder / "nope"])


def test_evaluate_rows_determinism_and_ranking(folder):
    images = list_images([folder])
    res = evaluate(["telea", "mean"], images, ["thin", "box"], size=64, seed=3, grid_images=1)
    rows, grid = res.rows, res.grid
    assert res.sets == {}  # no feature model, no FID/KID
    assert len(rows) == 2 * 2 * 2
    again = evaluate(["telea", "mean"], images, ["thin", "box"], size=64, seed=3, grid_images=0).rows
    assert [r.psnr for r in rows] == [r.psnr for r in again]  # same seed, same masks, same numbers
    other = evaluate(["mean"], images, ["thin"], size=64, seed=4, grid_images=0).rows
    assert other[0].area != rows[1].area
    for r in rows:
        assert 0 < r.area <= 0.5 and r.psnr > r.psnr_hole and math.isnan(r.ms_ssim)  # 64 px: no 5-scale MS-SSIM
    # both images are the same photo, but image 0 and 1 get different masks (streams (seed, 0) and (seed, 1))
    assert rows[0].area != rows[4].area
    big = evaluate(["telea", "mean"], images, ["thin"], size=128, seed=3, grid_images=0).rows
    telea = np.mean([r.psnr_hole for r in big if r.method == "telea"])
    mean = np.mean([r.psnr_hole for r in big if r.method == "mean"])
    assert telea > mean + 1  # on thin strokes, diffusion beats a flat colour (measured: +2.9 dB here)
    assert grid.shape == (3, 2 * (64 + 4), 4 * 64 + 4)  # 1 image x 2 families; original, masked, 2 methods


def test_tables_and_files(folder, tmp_path):
    res = evaluate(["mean"], list_images([folder]), ["center"], size=64, grid_images=1)
    rows = res.rows
    table = summary_tables(rows)
    assert "| center | 25.0 % | mean | 2 |" in table and "20-30 %" in table
    paths = write_results(res, tmp_path / "out")
    with open(paths["csv"]) as f:
        got = list(csv.DictReader(f))
    assert len(got) == 2 and float(got[0]["area"]) == pytest.approx(0.25, abs=0.01)
    assert paths["grid"].exists() and "center" in paths["summary"].read_text()


def test_cli_inpaint_eval(folder, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    inpaint_cmd.add_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["inpaint-eval", "--images", str(folder), "--methods", "telea,blur", "--masks",
                              "scratches", "--size", "64", "--out", str(tmp_path / "ev")])
    assert inpaint_cmd.run(args) == 0
    out = capsys.readouterr().out
    assert "| thin |" in out and "blur" in out and (tmp_path / "ev" / "metrics.csv").exists()


def test_fid_kid_sets_with_a_feature_model(folder):
    import torch

    class Pooled(torch.nn.Module):  # stands in for EfficientNet-Lite0 (tested in test_fid.py): plumbing only
        def features(self, x):
            return torch.cat([x.mean((2, 3)), x.std((2, 3)), x[:, :, ::56, ::56].flatten(1)], 1)

    model = Pooled()
    res = evaluate(["mean", "telea"], list_images([folder]), ["center"], size=64, grid_images=0, feature_model=model)
    assert set(res.sets) == {("center", "mean"), ("center", "telea")}
    assert all(np.isfinite(v["fid"]) and v["fid"] >= -1e-6 for v in res.sets.values())
    assert "FID-Lite0" in summary_tables(res.rows, res.sets)


def test_small_sizes_draw_masks_at_256_and_resize():
    """Below 256 px a family's mask is its 256-px mask area-resized: the geometry (hole area) is kept, and thick
    strokes drawn directly at 64 px (which cover over half the image and are redrawn until LaMa's 0.5 cap gives
    up) never occur. Hand check: the 64-px mask is the 4x4 block-mean of the 256-px one, thresholded at 0.5."""
    import torch
    import torch.nn.functional as F

    from torchworks.inpainting.evaluate import draw_mask, mask_generator

    for fam in ("thin", "medium", "thick", "box", "center"):
        gen = mask_generator(fam, 64)
        for i in range(40):
            big = gen(256, 256, seed=(0, i))
            small = draw_mask(gen, 64, (0, i))
            expected = (F.avg_pool2d(big[None], 4) >= 0.5).float()[0]
            if expected.any():
                assert torch.equal(small, expected), (fam, i)
            assert small.shape == (1, 64, 64) and small.any()
            assert abs(small.mean().item() - big.mean().item()) < 0.08, (fam, i)
    at_256 = draw_mask(mask_generator("thick", 256), 256, (0, 3))
    assert torch.equal(at_256, mask_generator("thick", 256)(256, 256, seed=(0, 3)))  # unchanged from 256 px up
