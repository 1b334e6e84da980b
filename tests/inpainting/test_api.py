"""inpaint(): parity with cv2.inpaint, bit-exact pixels outside the hole for every container, options, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from torchworks.core.errors import TorchworksError
from torchworks.core.registry import INPAINTERS
from torchworks.inpainting import (
    Inpainter,
    MaskError,
    MissingExtraError,
    NonBinaryMaskWarning,
    blend_weights,
    dilate_mask,
    inpaint,
)
from torchworks.inpainting.api import InpaintInputError

cv2 = pytest.importorskip("cv2")
USABLE = [n for n in INPAINTERS.names() if n != "fsr" or hasattr(cv2, "xphoto")]


@pytest.mark.parametrize(("method", "flag"), [("telea", cv2.INPAINT_TELEA), ("ns", cv2.INPAINT_NS)])
@pytest.mark.parametrize("radius", [3, 5])
def test_matches_opencv_bit_for_bit(photo, hole, method, flag, radius):
    ref = cv2.inpaint(photo, (hole > 0).astype(np.uint8), radius, flag)
    out = inpaint(photo, hole, method, radius=radius)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    np.testing.assert_array_equal(out, ref)
    assert np.abs(out[hole > 0].astype(int) - photo[hole > 0]).max() > 0  # the hole did change


def test_float_precision_path_close_to_uint8(photo, hole):
    exact = inpaint(photo, hole, "telea")
    f = inpaint(photo.astype(np.float32) / 255, hole, "telea", precision="float32")
    diff = np.abs(f.astype(np.float64) * 255 - exact)
    assert diff.max() < 6.0 and diff.mean() < 0.5  # 8-bit rounding propagates along the fast-marching front


@pytest.mark.parametrize("method", USABLE)
def test_outside_hole_bit_exact_for_every_container(photo, hole, method):
    from PIL import Image

    from torchworks.inpainting import dilate_mask, get_inpainter

    # Learned methods grow the hole by default (colour fringes at the border); exactness holds outside that.
    radius = get_inpainter(method).default_dilate
    grown = dilate_mask(torch.from_numpy((hole > 0).astype(np.float32))[None, None], radius)[0, 0].numpy()
    outside = grown == 0
    assert outside.sum() > 0.5 * outside.size
    rng = np.random.default_rng(0)
    f64 = rng.random(photo.shape)  # arbitrary doubles: any float round trip would show
    t = torch.from_numpy(f64).permute(2, 0, 1).float()
    deep = photo.astype(np.uint16) * 257 + 3
    cases = [
        (photo, lambda o: o[outside], lambda: photo[outside]),
        (f64, lambda o: o[outside], lambda: f64[outside]),
        (deep, lambda o: o[outside], lambda: deep[outside]),
        (photo[..., 0], lambda o: o[outside], lambda: photo[..., 0][outside]),
        (t, lambda o: o[:, torch.from_numpy(outside)], lambda: t[:, torch.from_numpy(outside)]),
        (Image.fromarray(photo).convert("RGBA"), lambda o: np.asarray(o)[outside],
         lambda: np.asarray(Image.fromarray(photo).convert("RGBA"))[outside]),
    ]
    for image, pick, expect in cases:
        out = inpaint(image, hole, method)
        assert type(out) is type(image)
        got, want = pick(out), expect()
        assert got.dtype == want.dtype
        assert (torch.equal(got, want) if isinstance(got, torch.Tensor) else np.array_equal(got, want)), method


def test_alpha_kept_and_gray_stays_gray(photo, hole):
    rgba = np.dstack([photo, np.arange(64 * 96, dtype=np.uint8).reshape(64, 96)])
    out = inpaint(rgba, hole)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])  # alpha untouched, also inside the hole
    gray = inpaint(photo[..., 1], hole)
    np.testing.assert_array_equal(gray, cv2.inpaint(photo[..., 1], (hole > 0).astype(np.uint8), 3,
                                                    cv2.INPAINT_TELEA))


def test_batched_tensor_and_per_image_masks(photo, hole):
    img = torch.from_numpy(photo).permute(2, 0, 1).float().div(255)
    batch = torch.stack([img, img.flip(-1)])
    masks = torch.stack([torch.from_numpy(hole > 0), torch.from_numpy(hole[:, ::-1] > 0)])[:, None]
    out = inpaint(batch, masks, "telea")
    assert out.shape == batch.shape and out.dtype == torch.float32
    for i, (im, m) in enumerate(zip(batch, masks, strict=True)):  # each with its own mask, as OpenCV alone does
        u8 = (im.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        ref = cv2.inpaint(u8, m[0].numpy().astype(np.uint8), 3, cv2.INPAINT_TELEA)
        np.testing.assert_array_equal((out[i].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy(), ref)
    assert torch.equal(out[masks.expand_as(out) == 0], batch[masks.expand_as(out) == 0])


def test_mean_and_blur_fill_values(photo, hole):
    out = inpaint(photo, hole, "mean")
    known_mean = photo[hole == 0].astype(np.float64).mean(0)
    np.testing.assert_allclose(out[hole > 0].astype(np.float64).mean(0), known_mean, atol=0.6)
    flat = np.full((32, 32, 3), 77, np.uint8)
    m = np.zeros((32, 32), np.uint8)
    m[5:25, 8:30] = 1
    np.testing.assert_array_equal(inpaint(flat, m, "blur"), flat)  # a constant image stays constant
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))
    m2 = np.zeros((16, 64), bool)
    m2[:, 28:36] = True
    filled = inpaint(ramp, m2, "blur")
    assert np.all(np.diff(filled[8]) >= -1e-6)  # the smooth fill of a ramp is monotone
    assert 0.40 < filled[8, 32] < 0.60


def test_fsr_error_or_works(photo, hole):
    if hasattr(cv2, "xphoto"):
        out = inpaint(photo, hole, "fsr")
        np.testing.assert_array_equal(out[hole == 0], photo[hole == 0])
    else:
        with pytest.raises(MissingExtraError, match="opencv-contrib"):
            inpaint(photo, hole, "fsr")


def test_dilation_grows_the_changed_region(photo, hole):
    plain = inpaint(photo, hole, "telea")
    wide = inpaint(photo, hole, "telea", dilate=3)
    d = dilate_mask(torch.from_numpy(hole > 0)[None, None], 3)[0, 0].numpy() > 0
    assert d.sum() > (hole > 0).sum()
    np.testing.assert_array_equal(wide[~d], photo[~d])  # exact outside the dilated hole
    ring = d & (hole == 0)
    assert (wide[ring] != photo[ring]).any() and np.array_equal(plain[ring], photo[ring])


def test_feather_weights_and_blend(photo, hole):
    m = torch.zeros(1, 1, 21, 21)
    m[0, 0, 10, 10] = 1
    w = blend_weights(m, 3, feather=True)[0, 0]
    assert w[10, 10] == 1 and w[10, 13] == pytest.approx(0.25) and w[10, 14] == 0
    assert w[10, 11] == pytest.approx(0.75) and ((w > 0) == (dilate_mask(m, 3)[0, 0] > 0)).all()
    hard = inpaint(photo, hole, "mean", dilate=4)
    soft = inpaint(photo, hole, "mean", dilate=4, feather=True)
    inner = hole > 0
    np.testing.assert_array_equal(soft[inner], hard[inner])  # the hole itself is fully filled either way
    ring = (dilate_mask(torch.from_numpy(inner)[None, None], 4)[0, 0].numpy() > 0) & ~inner
    between = np.abs(soft[ring].astype(int) - photo[ring]) <= np.abs(hard[ring].astype(int) - photo[ring])
    assert between.all()


def test_mask_conventions(photo, hole):
    ref = inpaint(photo, hole)
    for m in (hole > 0, (hole > 0).astype(np.uint8), (hole > 0).astype(np.float32), np.dstack([hole] * 3),
              np.dstack([np.zeros_like(hole)] * 3 + [hole]), np.dstack([hole, np.full_like(hole, 255)]),
              np.dstack([np.zeros_like(hole), hole]), torch.from_numpy(hole > 0)):
        np.testing.assert_array_equal(inpaint(photo, m), ref)


def test_non_binary_mask_thresholded_with_warning(photo, hole):
    soft = hole.astype(np.float32) / 255
    soft[0, 0] = 0.3  # below the threshold: not a hole
    soft[1, 1] = 0.7  # above: a hole
    with pytest.warns(NonBinaryMaskWarning, match="2 pixels"):
        out = inpaint(photo, soft)
    assert (out[0, 0] == photo[0, 0]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inpaint(photo, hole)  # a binary mask raises no warning


def test_bad_masks_raise_clear_errors(photo, hole):
    with pytest.raises(MaskError, match="resize_mask=True"):
        inpaint(photo, hole[:32])
    out = inpaint(photo, np.kron(hole[::2, ::2], np.ones((1, 1), np.uint8)), resize_mask=True)
    assert out.shape == photo.shape
    with pytest.raises(MaskError, match="no hole"):
        inpaint(photo, np.zeros_like(hole))
    with pytest.raises(MaskError, match="inverted"):
        inpaint(photo, np.full_like(hole, 255))
    for exc in (MaskError, InpaintInputError):
        assert issubclass(exc, TorchworksError) and issubclass(exc, ValueError)
    with pytest.raises(InpaintInputError, match=r"\[0, 1\]"):
        inpaint(photo.astype(np.float32), hole)
    with pytest.raises(InpaintInputError, match="uint8, uint16 or float"):
        inpaint(photo.astype(np.int64), hole)
    with pytest.raises(TypeError):
        inpaint([[0]], hole)
    with pytest.raises(ValueError, match="radius"):
        inpaint(photo, hole, "telea", radius=0)
    with pytest.raises(ValueError, match="did you mean 'telea'"):
        inpaint(photo, hole, "tela")


def test_custom_inpainter_instance(photo, hole):
    class Gray(Inpainter):
        name = "gray"
        pad_mod = 8

        def fill(self, image, mask):
            assert image.shape[-1] % 8 == 0 and image.shape[-2] % 8 == 0
            return torch.full_like(image, 0.5)

    out = inpaint(photo[:61, :90], hole[:61, :90], Gray())
    assert (out[hole[:61, :90] > 0] == 128).all()


def test_import_needs_neither_opencv_nor_pillow():
    import subprocess
    import sys

    code = ("import sys, torchworks.inpainting, torchworks.inpainting.evaluate, torchworks.data.images; "
            "bad = [m for m in ('cv2', 'PIL') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
