"""``torchworks inpaint``: files and folders, lossless output, EXIF/alpha/16-bit kept, atomic writes, bad input."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
from PIL import Image

from torchworks.cli import inpaint_cmd
from torchworks.core.errors import TorchworksError
from torchworks.data.images import ImageReadError, read_image, write_image

cv2 = pytest.importorskip("cv2")


def run_cli(argv):
    """Parses like the real entry point and maps user errors to exit code 2, as cli/main.py does."""
    parser = argparse.ArgumentParser(prog="torchworks")
    sub = parser.add_subparsers(dest="verb")
    inpaint_cmd.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return inpaint_cmd.run(args)
    except (TorchworksError, FileNotFoundError) as exc:
        return 2, str(exc)


@pytest.fixture
def files(tmp_path, photo, hole):
    Image.fromarray(photo).save(tmp_path / "cat.jpg", quality=92)
    Image.fromarray(hole).save(tmp_path / "mask.png")
    return tmp_path


def test_single_file_lossless_default_and_exact(files, hole):
    assert run_cli(["inpaint", str(files / "cat.jpg"), "--mask", str(files / "mask.png")]) == 0
    out = files / "cat_inpainted.png"
    src, _ = read_image(files / "cat.jpg")
    res, info = read_image(out)
    assert info.format == "PNG"
    np.testing.assert_array_equal(res[hole == 0], src[hole == 0])  # lossless: the decoded JPEG pixels, exactly
    np.testing.assert_array_equal(res, cv2.inpaint(src, (hole > 0).astype(np.uint8), 3, cv2.INPAINT_TELEA))
    assert run_cli(["inpaint", str(files / "cat.jpg"), "--mask", str(files / "mask.png"), "-o",
                    str(files / "o.png"), "--method", "ns", "--dilate", "2", "--feather", "--radius", "4"]) == 0
    assert (files / "o.png").exists()


def test_quality_keeps_input_format(files, capsys):
    assert run_cli(["inpaint", str(files / "cat.jpg"), "--mask", str(files / "mask.png"), "--quality", "90"]) == 0
    with Image.open(files / "cat_inpainted.jpg") as out:
        assert out.format == "JPEG"
    assert "lossy format, quality 90" in capsys.readouterr().err
    assert run_cli(["inpaint", str(files / "cat.jpg"), "--mask", str(files / "mask.png"), "-o",
                    str(files / "w.webp")]) == 0  # WebP without --quality is written lossless
    res, _ = read_image(files / "w.webp")
    src, _ = read_image(files / "cat.jpg")
    hole, _ = read_image(files / "mask.png")
    np.testing.assert_array_equal(res[hole == 0], src[hole == 0])


def test_exif_orientation_and_metadata_kept(tmp_path, photo, hole):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers rotate 90 degrees clockwise
    exif[0x010F] = "TestCam"
    Image.fromarray(np.ascontiguousarray(np.rot90(photo, 1))).save(tmp_path / "r.jpg", exif=exif, quality=95)
    pixels, info = read_image(tmp_path / "r.jpg")
    assert info.transposed and pixels.shape == photo.shape  # upright, like the mask drawn over it
    Image.fromarray(hole).save(tmp_path / "m.png")
    assert run_cli(["inpaint", str(tmp_path / "r.jpg"), "--mask", str(tmp_path / "m.png"), "-o",
                    str(tmp_path / "o.png")]) == 0
    with Image.open(tmp_path / "o.png") as out:
        assert out.size == (96, 64)
        assert out.getexif().get(0x0112, 1) == 1 and out.getexif().get(0x010F) == "TestCam"


def test_rgba_and_16bit_round_trip(tmp_path, photo, hole):
    rgba = np.dstack([photo, np.full((64, 96), 200, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    gray16 = (photo[..., 0].astype(np.uint16) * 257 + 5)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    rgb16 = photo.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "c16.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    Image.fromarray(hole).save(tmp_path / "m.png")
    for name, src in (("a", rgba), ("g16", gray16), ("c16", rgb16)):
        assert run_cli(["inpaint", str(tmp_path / f"{name}.png"), "--mask", str(tmp_path / "m.png")]) == 0
        res, _ = read_image(tmp_path / f"{name}_inpainted.png")
        assert res.dtype == src.dtype and res.shape == src.shape, name
        np.testing.assert_array_equal(res[hole == 0], src[hole == 0])
        assert (res[hole > 0] != src[hole > 0]).any()


def test_batch_one_mask_for_all_and_matching_names(tmp_path, photo, hole):
    (tmp_path / "in").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        Image.fromarray(np.roll(photo, i * 5, 1)).save(tmp_path / "in" / f"p{i}.png")
        Image.fromarray(np.roll(hole, i * 7, 0)).save(tmp_path / "masks" / f"p{i}_mask.png")
    Image.fromarray(hole).save(tmp_path / "one.png")
    assert run_cli(["inpaint", str(tmp_path / "in"), "--mask", str(tmp_path / "one.png"), "-o",
                    str(tmp_path / "a")]) == 0
    assert sorted(os.listdir(tmp_path / "a")) == ["p0.png", "p1.png", "p2.png"]
    assert run_cli(["inpaint", str(tmp_path / "in"), "--mask", str(tmp_path / "masks"), "-o",
                    str(tmp_path / "b")]) == 0
    res, _ = read_image(tmp_path / "b" / "p2.png")
    m2 = np.roll(hole, 14, 0)
    np.testing.assert_array_equal(res[m2 == 0], np.roll(photo, 10, 1)[m2 == 0])
    (tmp_path / "in" / "p3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.fromarray(hole).save(tmp_path / "masks" / "p3.png")
    assert run_cli(["inpaint", str(tmp_path / "in"), "--mask", str(tmp_path / "masks"), "-o",
                    str(tmp_path / "c")]) == 2  # the corrupt file fails, the others are still written
    assert sorted(os.listdir(tmp_path / "c")) == ["p0.png", "p1.png", "p2.png"]


def test_bad_inputs_exit_2_with_clear_messages(files, hole, capsys):
    mask, img = str(files / "mask.png"), str(files / "cat.jpg")
    Image.fromarray(hole[:32, :48]).save(files / "small.png")
    code, msg = run_cli(["inpaint", img, "--mask", str(files / "small.png")])
    assert code == 2 and "--resize-mask" in msg and "48x32" in msg
    assert run_cli(["inpaint", img, "--mask", str(files / "small.png"), "--resize-mask", "-o",
                    str(files / "resized.png")]) == 0
    Image.fromarray(np.zeros_like(hole)).save(files / "zero.png")
    assert "no hole" in run_cli(["inpaint", img, "--mask", str(files / "zero.png")])[1]
    Image.fromarray(np.full_like(hole, 255)).save(files / "ones.png")
    assert "inverted" in run_cli(["inpaint", img, "--mask", str(files / "ones.png")])[1]
    (files / "bad.png").write_bytes(b"not an image at all")
    code, msg = run_cli(["inpaint", str(files / "bad.png"), "--mask", mask])
    assert code == 2 and "cannot read image" in msg and "bad.png" in msg
    code, msg = run_cli(["inpaint", str(files / "missing.png"), "--mask", mask])
    assert code == 2 and "no such image" in msg
    code, msg = run_cli(["inpaint", img, "--mask", mask, "-o", img])
    assert code == 2 and "--overwrite" in msg
    assert not (files / "cat_inpainted.png").exists()  # nothing half-written by the failures
    soft = hole.copy()
    soft[0, :10] = 100
    Image.fromarray(soft).save(files / "soft.png")
    capsys.readouterr()
    assert run_cli(["inpaint", img, "--mask", str(files / "soft.png")]) == 0
    assert "not binary" in capsys.readouterr().err


def test_atomic_write_leaves_no_partial_file(tmp_path, photo):
    target = tmp_path / "x.png"
    write_image(target, photo)
    before = target.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of the temporary file
    with pytest.raises(TorchworksError, match="alpha"):
        write_image(target.with_suffix(".jpg"), np.dstack([photo, photo[..., :1]]))
    with pytest.raises(ValueError, match="quality"):
        write_image(target, photo, quality=0)
    assert target.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["x.png"]
    with pytest.raises(ImageReadError):
        (tmp_path / "t.png").write_bytes(before[: len(before) // 2])  # truncated PNG
        read_image(tmp_path / "t.png")
