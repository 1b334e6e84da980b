"""``inpaint(image, mask, method=...)``: one call for NumPy arrays, PIL images and torch tensors.

The result has the input's type, dtype, layout and mode (uint8 stays uint8, RGBA stays RGBA, gray stays gray),
and every pixel outside the (dilated) hole is the input's, bit for bit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from torchworks.core.registry import INPAINTERS
from torchworks.inpainting.base import Inpainter, InpaintInputError, MaskError, check_mask
from torchworks.inpainting.pipeline import inpaint_native


class NonBinaryMaskWarning(UserWarning):
    """The mask had grey values; it was thresholded (the message says how many pixels and at what level)."""


def _from_pil(img: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    from PIL import Image

    mode = img.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in img.info else "RGB"
        img = img.convert(mode)
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La", "PA"):
        mode = {"1": "L", "RGBa": "RGBA", "La": "LA", "PA": "RGBA"}.get(mode, "RGB")
        img = img.convert(mode)
    arr = np.asarray(img)
    if mode == "I":  # 16-bit PNGs open as 32-bit 'I'; their values fit in uint16
        if arr.min() < 0 or arr.max() > 65535:
            raise InpaintInputError(f"32-bit integer image with values outside 0..65535 ({arr.min()}..{arr.max()})")
        arr = arr.astype(np.uint16)
    elif mode == "F":
        raise InpaintInputError("PIL mode 'F' (32-bit float) images have no defined range; pass a float NumPy array "
                         "in [0, 1] instead")

    def back(out: np.ndarray) -> Any:
        res = Image.fromarray(out)
        return res.convert(mode) if res.mode != mode and mode == "I" else res

    return arr, back


def _image_to_native(image: Any) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """(B, C, H, W) tensor in a native dtype (uint8, int32 for 16-bit, float) and a function that restores the
    caller's type and layout."""
    if isinstance(image, torch.Tensor):
        if image.dim() not in (3, 4):
            raise InpaintInputError(f"a tensor image must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
        if image.dtype not in (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise InpaintInputError(f"tensor images must be uint8 or float in [0, 1], got {image.dtype}")
        x = image.detach().cpu()
        x = x[None] if x.dim() == 3 else x
        device, ndim = image.device, image.dim()
        return x, lambda out: (out[0] if ndim == 3 else out).to(device)
    if not isinstance(image, np.ndarray):
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            arr, pil_back = _from_pil(image)
            native, np_back = _image_to_native(arr)
            return native, lambda out: pil_back(np_back(out))
        raise TypeError(f"image must be a NumPy array, a PIL image or a torch tensor, got {type(image).__name__}")
    arr = image
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise InpaintInputError(f"a NumPy image must be (H, W) or (H, W, C) with C in 1..4, got shape {arr.shape}")
    dtype, shape = arr.dtype, arr.shape
    if dtype == np.uint16:
        t = torch.from_numpy(arr.astype(np.int32))  # torch's uint16 lacks arithmetic; int32 holds it exactly
    elif dtype in (np.uint8, np.float32, np.float64):
        with warnings.catch_warnings():  # read-only arrays (np.asarray of a PIL image) are fine: we never write
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise InpaintInputError(f"NumPy images must be uint8, uint16 or float in [0, 1], got {dtype}")
    t = t[..., None] if arr.ndim == 2 else t
    return t.permute(2, 0, 1)[None], lambda out: out[0].permute(1, 2, 0).numpy().astype(dtype).reshape(shape)


def _mask_to_hole(mask: Any, batch: int, size: tuple[int, int], threshold: float, resize_mask: bool) -> torch.Tensor:
    """(B, 1, H, W) bool hole from any mask type; 0/255 and 0/1 masks alike, grey values thresholded."""
    if not isinstance(mask, (np.ndarray, torch.Tensor)):
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover
            Image = None
        if Image is None or not isinstance(mask, Image.Image):
            raise TypeError(f"mask must be a NumPy array, a PIL image or a torch tensor, got {type(mask).__name__}")
        mask = np.asarray(mask.convert("L") if mask.mode in ("1", "P") else mask)
    if isinstance(mask, np.ndarray):
        if mask.ndim == 3:  # (H, W, C): any colour channel, or alpha when the colours are all black
            n = mask.shape[2]
            colour = mask[..., : 3 if n >= 3 else 1].max(2)
            alpha = mask[..., n - 1] if n in (2, 4) else None
            mask = alpha if alpha is not None and not colour.any() else colour
        if mask.ndim != 2:
            raise InpaintInputError(f"a NumPy mask must be (H, W) or (H, W, C), got shape {mask.shape}")
        kind = mask.dtype
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            m = torch.from_numpy(np.ascontiguousarray(mask))[None, None]
    else:
        kind = mask.dtype
        m = mask.detach().cpu()
        m = m.reshape(1, 1, *m.shape) if m.dim() == 2 else m[None] if m.dim() == 3 else m
        if m.dim() != 4 or m.shape[1] != 1:
            raise InpaintInputError(f"a tensor mask must be (H, W), (1, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
    m = m.float()
    if kind not in (np.bool_, torch.bool) and m.max() > 1:  # 8/16-bit masks drawn in 0..255 / 0..65535
        m = m / (255.0 if m.max() <= 255 else 65535.0)
    if tuple(m.shape[-2:]) != size:
        if not resize_mask:
            raise MaskError(f"mask is {m.shape[-1]}x{m.shape[-2]} (WxH) but the image is {size[1]}x{size[0]}; "
                            "pass resize_mask=True (CLI: --resize-mask) to scale the mask to the image")
        m = F.interpolate(m, size=size, mode="nearest-exact")  # nearest keeps a binary mask binary
    grey = int(((m > 0) & (m < 1)).sum())
    if grey:
        warnings.warn(f"mask is not binary: {grey} pixels are between 0 and 1; thresholded at {threshold} "
                      "(above = hole)", NonBinaryMaskWarning, stacklevel=3)
    hole = m > threshold
    if hole.shape[0] not in (1, batch):
        raise MaskError(f"mask batch {hole.shape[0]} does not match image batch {batch}")
    return hole.expand(batch, -1, -1, -1)


def is_pluralistic(method: str | Inpainter) -> bool:
    """Whether a method draws its fill with a sampling seed, so one hole has several completions (ICT-style
    models; LaMa and the classical methods give one). A name: its registered factory takes ``seed``; an object:
    it holds an integer ``seed``. The CLI's ``--samples``, the UI's variations and the diversity metric ask this."""
    if isinstance(method, str):
        import inspect

        return method in INPAINTERS and "seed" in inspect.signature(INPAINTERS.get(method)).parameters
    return isinstance(getattr(method, "seed", None), int)


def get_inpainter(method: str | Inpainter, **opts: Any) -> Inpainter:
    """An inpainter from a registry name (``torchworks list inpainters``) or an instance (returned as is)."""
    if isinstance(method, Inpainter):
        if opts:
            raise InpaintInputError(f"options {sorted(opts)} apply to a method name, not to an Inpainter instance")
        return method
    if method not in INPAINTERS:
        from torchworks.inpainting.learned import EXTERNAL

        if method in EXTERNAL:  # user-supplied weights, not imported yet: the factory says how to get them
            return EXTERNAL[method](**opts)
    return INPAINTERS.build(method, **opts)


def inpaint(image: Any, mask: Any, method: str | Inpainter = "telea", *, dilate: int | None = None,
            feather: bool | None = None, strategy: str = "auto", margin: int = 128, crop_trigger: int = 800,
            resize_limit: int | None = None, threshold: float = 0.5, resize_mask: bool = False,
            device: str = "auto", precision: str | None = None, **opts: Any) -> Any:
    """Fills the holes of an image.

    Args:
        image: NumPy (H, W) / (H, W, C) uint8, uint16 or float in [0, 1]; a PIL image (L, LA, RGB, RGBA, I;16,
            P); or a torch tensor (C, H, W) / (B, C, H, W), uint8 or float in [0, 1]. C in 1..4; alpha is kept.
        mask: same kinds of container, (H, W) (or (B, 1, H, W) for tensors); **non-zero / white = hole**.
            0/1, 0/255, bool and float masks are accepted; grey values are thresholded at ``threshold`` with a
            :class:`NonBinaryMaskWarning`.
        method: registry name (``"telea"``, ``"ns"``, ``"fsr"``, ``"mean"``, ``"blur"``, ...) or an
            :class:`Inpainter`.
        dilate: grow the hole by this many pixels first (default: the method's ``default_dilate``).
        feather: blend the dilation ring linearly into the photo (default: the method's ``default_feather``).
        strategy: ``"auto"``, ``"full"``, ``"crop"`` or ``"resize"`` (see :mod:`torchworks.inpainting.pipeline`).
        margin: context pixels around each hole for the crop strategy.
        crop_trigger: ``"auto"`` crops only images whose longest side exceeds this many pixels.
        resize_limit: longest side the method runs at (default: its ``working_size``; ``"resize"``: 1280).
        threshold: mask level above which a pixel is a hole.
        resize_mask: scale a mask of another size to the image instead of raising :class:`MaskError`.
        device: where a learned method runs: ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"``; classical methods always run on the CPU (the name is still checked).
        precision: a learned method's arithmetic, ``"fp32"`` (default), ``"bf16"`` or ``"channels_last"``.
        **opts: options of the method (``radius=5`` for telea/ns, ``quality="best"`` for fsr).

    Returns:
        The inpainted image, of the input's type, dtype, shape and mode; pixels outside the dilated hole equal
        the input's bit for bit.

    Raises:
        MaskError: mask of another size (without ``resize_mask``), no hole, or no known pixel.
        MissingExtraError: the method needs an optional package (OpenCV, OpenCV contrib).
        DeviceError: the requested device is not on this machine.
        ValueError, TypeError: unsupported image or mask types, shapes, dtypes or value ranges.
    """
    from torchworks.core.device import resolve_device

    dev = resolve_device(device)
    inpainter = get_inpainter(method, **opts)
    if hasattr(inpainter, "to") and (isinstance(method, str) or precision is not None):
        inpainter.to(dev, precision)
    native, restore = _image_to_native(image)
    if native.dtype.is_floating_point:
        lo, hi = float(native.min()), float(native.max())
        if not (0.0 <= lo and hi <= 1.0):
            raise InpaintInputError(f"float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    hole = _mask_to_hole(mask, native.shape[0], tuple(native.shape[-2:]), threshold, resize_mask)
    check_mask(hole)
    out = inpaint_native(inpainter, native, hole,
                         dilate=inpainter.default_dilate if dilate is None else dilate,
                         feather=inpainter.default_feather if feather is None else feather,
                         strategy=strategy, margin=margin, crop_trigger=crop_trigger, resize_limit=resize_limit)
    return restore(out)
