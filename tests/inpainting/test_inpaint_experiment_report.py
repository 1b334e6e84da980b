"""Statistics and Markdown of the LaMa experiment report."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"))

from experiment_report import (  # noqa: E402
    CASES,
    case_records,
    compare,
    format_value,
    mean_std,
    render,
    transfer_drops,
)


def test_mean_and_sample_std_against_hand_computed_values():
    # 20, 21, 23: mean 64/3 = 21.3333; squared deviations 1.7778 + 0.1111 + 2.7778 = 4.6667; / 2 -> sd 1.5275
    m, s, n = mean_std([20.0, 21.0, 23.0])
    assert (round(m, 4), round(s, 4), n) == (21.3333, 1.5275, 3)
    assert mean_std([5.0]) == (5.0, 0.0, 1)
    assert mean_std([1.0, float("nan"), 3.0])[:2] == (2.0, math.sqrt(2.0))
    m, s, n = mean_std([])
    assert n == 0 and math.isnan(m) and math.isnan(s)


def test_exceeds_spread_rule_by_hand():
    # Welch: A 20, 21, 23 (s^2 = 2.3333), B 17, 18, 19 (s^2 = 1); diff 10/3; se = sqrt(2.3333/3 + 1/3) = 1.0541;
    # df = 1.1111^2 / (0.7778^2/2 + 0.3333^2/2) = 3.4483; scipy.stats.t.ppf(0.975, 3.4483) * 1.0541 = 3.1209
    c = compare([20.0, 21.0, 23.0], [17.0, 18.0, 19.0])
    assert c["diff"] == pytest.approx(10 / 3) and c["df"] == pytest.approx(3.4483, abs=1e-3)
    assert c["spread"] == pytest.approx(3.1209, abs=1e-3) and c["exceeds"] is True
    # B: 19, 20, 21: diff 1.333 < its half-width -> within the spread
    assert compare([20.0, 21.0, 23.0], [19.0, 20.0, 21.0])["exceeds"] is False
    # against a deterministic baseline: one-sample, t(0.975, 2) = 4.3027 * 1.5275 / sqrt(3) = 3.7946
    c = compare([20.0, 21.0, 23.0], [19.5], b_deterministic=True)
    assert c["spread"] == pytest.approx(3.7946, abs=1e-3) and c["exceeds"] is False and c["df"] == 2
    c = compare([25.0, 25.5, 26.0], [19.5], b_deterministic=True)  # 4.302653 * 0.5 / sqrt(3) = 1.2421
    assert c["spread"] == pytest.approx(1.2421, abs=1e-3) and c["exceeds"] is True
    # a single learned seed has an unknown spread: no verdict
    assert compare([20.0], [19.0, 20.0])["exceeds"] is None


def test_format_value():
    assert format_value([20.0, 21.0, 23.0], 2) == "21.33 ± 1.53"
    assert format_value([19.5], 2, deterministic=True) == "19.50"
    assert format_value([19.5], 2) == "19.50 (1 seed)"
    assert format_value([], 2) == "-"


def _records():
    rows = []
    for seed, (lama, relama, plain) in enumerate([(20.0, 22.0, 17.0), (21.0, 21.5, 18.0), (23.0, 22.5, 19.0)]):
        for method, v in (("lama", lama), ("relama", relama), ("plainconv", plain)):
            rows.append({"dataset": "faces", "method": method, "seed": seed, "size": 128, "family": "thick",
                         "area": 0.3, "psnr_hole": v, "ssim": 0.8, "l1_hole": 0.1})
    rows.append({"dataset": "faces", "method": "telea", "seed": None, "size": 128, "family": "thick", "area": 0.3,
                 "psnr_hole": 19.5, "ssim": 0.8, "l1_hole": 0.1})
    return rows


def test_render_tables_and_verdicts():
    md = render(_records(), {"title": "T", "status": "S", "intro": "I", "train_size": 128,
                             "labels": {"lama": "LaMa", "relama": "ReLaMa", "plainconv": "plain"}})
    assert "### faces, 128 px (training size)" in md
    assert "| thick | 30.0 % | LaMa | 3 | 21.33 ± 1.53 |" in md
    assert "| thick | 30.0 % | telea | - | 19.50 |" in md
    # 95 % t half-widths (3 seeds): relama - lama +0.667 < 3.393 -> no; lama - plain 3.333 > 3.121 -> yes;
    # lama - telea (one-sample, t(0.975, 2) = 4.303) 1.833 < 3.795 -> no
    assert "| faces | 128 | thick | relama - lama | hole PSNR dB | 3, 3 | +0.67 | 3.39 | no |" in md
    assert "| faces | 128 | thick | lama - plainconv | hole PSNR dB | 3, 3 | +3.33 | 3.12 | **yes** |" in md
    assert "| faces | 128 | thick | lama - telea | hole PSNR dB | 3, 1 | +1.83 | 3.79 | no |" in md
    assert "ReLaMa vs LaMa (hole PSNR): the difference stays within the seed spread in all 1 cells" in md
    assert ("LaMa vs plain (hole PSNR): the difference exceeds the seed spread in all 1 cells (1 in favour of LaMa)"
            in md)
    assert "nothing to report" in render([], {"title": "T"})


def test_seed_cases_average_their_families_and_carry_the_conclusions():
    from torchworks.inpainting.evaluate import PRESETS

    assert {k: tuple(v) for k, v in PRESETS.items()} == CASES
    rows = []
    for seed in (0, 1, 2):
        for method, base in (("lama", 20.0), ("relama", 21.0)):
            for fam, shift in (("thin", 4.0), ("medium", 1.0), ("box", 0.0), ("thick", -1.0)):  # no centre hole
                rows.append({"dataset": "faces", "method": method, "seed": seed, "size": 64, "family": fam,
                             "area": 0.1 if fam == "box" else 0.3, "psnr_hole": base + shift + 0.1 * seed,
                             "ssim": 0.8, "l1_hole": 0.1})
    cases = {(r["method"], r["seed"], r["family"]): r for r in case_records(rows)}
    assert set(f for _, _, f in cases) == {"scratches", "region"}  # "large" needs the centre hole too
    # region = mean(medium, box): lama seed 2 -> (21.2 + 20.2) / 2 = 20.7, area (0.3 + 0.1) / 2 = 0.2
    assert cases[("lama", 2, "region")]["psnr_hole"] == pytest.approx(20.7)
    assert cases[("lama", 2, "region")]["area"] == pytest.approx(0.2)
    md = render(rows, {"title": "T", "train_size": 64, "labels": {"lama": "LaMa", "relama": "ReLaMa"}})
    assert "### The seed project's three cases" in md
    assert "| faces | 64 | region | ReLaMa | 3 | 21.60 ± 0.10 |" in md
    # per case: relama - lama = +1.0 (both sd 0.1, Welch half-width 0.23) in both cases -> the conclusion counts
    # the 2 case cells, not 4 families
    assert "ReLaMa vs LaMa (hole PSNR): the difference exceeds the seed spread in all 2 cells (2 in favour" in md


def test_resolution_transfer_pairs_each_seed_with_itself():
    # thin only -> case "scratches". lama: 64 px 20, 21, 22 and 256 px 19, 20.5, 21 -> per-seed drops -1, -0.5, -1
    # (mean -0.8333, sd 0.2887); plainconv: 18, 19, 20 -> 15, 16, 17: drops -3, -3, -3 (sd 0).
    # lama - plainconv = +2.1667 > 4.303 * 0.2887 / sqrt(3) = 0.717 -> exceeds, in favour of LaMa. Unpaired
    # (256-px values alone) the seed
    # offsets would dominate: 20.17 +- 1.04 vs 16 +- 1.
    rows = []
    for seed, (l64, l256, p64, p256) in enumerate([(20, 19, 18, 15), (21, 20.5, 19, 16), (22, 21, 20, 17)]):
        for method, size, v in (("lama", 64, l64), ("lama", 256, l256), ("plainconv", 64, p64),
                                ("plainconv", 256, p256)):
            rows.append({"dataset": "scenes", "method": method, "seed": seed, "size": size, "family": "thin",
                         "area": 0.2, "psnr_hole": float(v), "ssim": 0.8, "l1_hole": 0.1})
    rows += [{"dataset": "scenes", "method": "telea", "seed": None, "size": s, "family": "thin", "area": 0.2,
              "psnr_hole": v, "ssim": 0.8, "l1_hole": 0.1} for s, v in ((64, 21.0), (256, 20.25))]
    drops = transfer_drops(case_records(rows), 64)
    assert drops[("scenes", "scratches", "lama", 256)] == [-1.0, -0.5, -1.0]
    assert drops[("scenes", "scratches", "telea", 256)] == [-0.75]
    md = render(rows, {"title": "T", "train_size": 64, "labels": {"lama": "LaMa", "plainconv": "plain"}})
    assert "| scenes | scratches | LaMa | -0.83 ± 0.29 |" in md
    assert "| scenes | scratches | telea | -0.75 |" in md
    assert ("LaMa vs plain: the difference of the transfer changes exceeds the seed spread in 1 of 1 cells (1 in "
            "favour of LaMa): scenes scratches at 256 px (+2.17 dB, spread 0.72)") in md


def test_a_plan_without_box_and_centre_holes_keeps_all_three_cases():
    # the scenes128 plan evaluates thin, medium and thick only: region = medium, large = thick (not left out)
    rows = [{"dataset": "scenes", "method": "lama", "seed": s, "size": 256, "family": fam, "area": 0.2,
             "psnr_hole": v + s, "ssim": 0.8, "l1_hole": 0.1}
            for s in (0, 1) for fam, v in (("thin", 19.0), ("medium", 17.0), ("thick", 15.0))]
    assert {r["family"] for r in case_records(rows)} == {"scratches"}  # without the plan: whole cases only
    cases = {(r["seed"], r["family"]): r["psnr_hole"] for r in case_records(rows, ("thin", "medium", "thick"))}
    assert cases == {(0, "scratches"): 19.0, (0, "region"): 17.0, (0, "large"): 15.0,
                     (1, "scratches"): 20.0, (1, "region"): 18.0, (1, "large"): 16.0}
    md = render(rows, {"title": "T", "train_size": 128, "labels": {"lama": "LaMa"},
                       "families": ("thin", "medium", "thick")})
    assert "(scratches = thin; region = medium; large = thick)" in md
    assert "| scenes | 256 | large | LaMa | 2 | 15.50 ± 0.71 |" in md
