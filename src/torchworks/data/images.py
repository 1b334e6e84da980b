"""Image files in and out, at the IO edge of the package: uint8/uint16 HWC arrays, EXIF, alpha, atomic writes.

Pillow (and OpenCV for 16-bit colour PNG/TIFF, which Pillow reduces to 8 bits) are optional extras imported
inside the functions. Reading applies the EXIF orientation, so pixels are upright as every viewer shows them
(and as a mask drawn over them is); writing stores those pixels with the orientation tag reset to 1 and the
rest of the EXIF and the ICC profile kept, so the output looks the same as the input everywhere.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchworks.core.atomic import atomic_write_bytes
from torchworks.core.errors import TorchworksError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LOSSLESS_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


class ImageReadError(TorchworksError, ValueError):
    """A file that is not a readable image (corrupt, truncated, or of an unknown format)."""


class ImageWriteError(TorchworksError, ValueError):
    """An image that cannot be written to the requested path or format."""


@dataclass
class ImageInfo:
    """What :func:`read_image` learned about a file besides its pixels.

    Attributes:
        format: Pillow's format name ("PNG", "JPEG", ...).
        mode: Pillow mode of the pixels returned ("RGB", "RGBA", "L", "LA", "I;16", "RGB;16", "RGBA;16").
        exif: EXIF bytes with the orientation reset (``b""`` when none).
        icc_profile: embedded colour profile bytes (``None`` when none).
        transposed: the EXIF orientation was applied to the pixels.
    """

    format: str
    mode: str
    exif: bytes = b""
    icc_profile: bytes | None = None
    transposed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _pil() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError:  # pragma: no cover
        raise ImportError("reading and writing images needs Pillow: pip install 'torchworks[cv]'") from None
    return Image, ImageOps


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, ImageInfo]:
    """Reads an image file.

    Returns:
        ``(pixels, info)``: pixels are (H, W) for gray or (H, W, C) with C = 2 (gray + alpha), 3 (RGB) or 4
        (RGBA); uint8, or uint16 for 16-bit files. Palette images become RGB(A), CMYK becomes RGB.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: the file is not a readable image (the message names the file and the reason).
    """
    Image, ImageOps = _pil()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such image file: {p}")
    try:
        with Image.open(p) as img:
            img.load()  # decode now, so a truncated file fails here and not later
            fmt = img.format or p.suffix.lstrip(".").upper()
            icc = img.info.get("icc_profile")
            orientation = img.getexif().get(0x0112, 1)
            upright = ImageOps.exif_transpose(img) if orientation != 1 else img.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"cannot read image {p}: {exc}") from None
    exif = upright.getexif()
    exif_bytes = exif.tobytes() if len(exif) else b""
    info = ImageInfo(format=fmt, mode=upright.mode, exif=exif_bytes, icc_profile=icc, transposed=orientation != 1)
    mode = upright.mode
    if mode == "P":
        upright = upright.convert("RGBA" if "transparency" in upright.info else "RGB")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "PA", "La", "RGBa"):
        upright = upright.convert({"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}.get(mode, "RGB"))
    elif mode == "F":
        raise ImageReadError(f"cannot read image {p}: 32-bit float images are not supported")
    arr = np.asarray(upright)
    if upright.mode.startswith("I"):  # 16-bit gray ('I;16', or 'I' for some PNGs): values fit in uint16
        arr = np.clip(arr, 0, 65535).astype(np.uint16)
        info.mode = "I;16"
    elif fmt in ("PNG", "TIFF") and upright.mode in ("RGB", "RGBA"):
        arr = _maybe_16bit(p, arr, info)
    else:
        info.mode = upright.mode
    return np.ascontiguousarray(arr), info


def _maybe_16bit(path: Path, arr: np.ndarray, info: ImageInfo) -> np.ndarray:
    """Pillow reads 16-bit colour PNG/TIFF as 8-bit; re-read them with OpenCV when it is installed."""
    info.mode = "RGBA" if arr.ndim == 3 and arr.shape[2] == 4 else "RGB"
    try:
        import cv2
    except ImportError:
        return arr
    full = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if full is None or full.dtype != np.uint16 or full.ndim != 3 or full.shape[:2] != arr.shape[:2]:
        return arr
    info.mode += ";16"
    return cv2.cvtColor(full, cv2.COLOR_BGRA2RGBA if full.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _encode(arr: np.ndarray, suffix: str, quality: int | None, info: ImageInfo | None) -> bytes:
    Image, _ = _pil()
    if arr.dtype == np.uint16 and arr.ndim == 3:  # 16-bit colour: only OpenCV writes it
        if suffix not in (".png", ".tif", ".tiff"):
            raise ImageWriteError(f"16-bit colour images can be written as PNG or TIFF, not {suffix}")
        import cv2

        ok, buf = cv2.imencode(suffix, cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4
                                                    else cv2.COLOR_RGB2BGR))
        if not ok:
            raise ImageWriteError(f"OpenCV could not encode a {arr.shape} uint16 image as {suffix}")
        return buf.tobytes()
    img = Image.fromarray(arr)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
           ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix)
    if fmt is None:
        raise ImageWriteError(f"unknown output format {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    kwargs: dict[str, Any] = {}
    if info is not None:
        if info.exif and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            kwargs["exif"] = info.exif
        if info.icc_profile and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            kwargs["icc_profile"] = info.icc_profile
    if fmt == "JPEG":
        if img.mode in ("RGBA", "LA"):
            raise ImageWriteError("JPEG has no alpha channel; write PNG or WebP to keep transparency")
        kwargs.update(quality=quality or 95, subsampling=0 if (quality or 95) >= 90 else 2)
    elif fmt == "WEBP":
        kwargs.update({"lossless": True} if quality is None else {"quality": quality})
    elif fmt == "PNG":
        kwargs.update(compress_level=6)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_image(path: str | os.PathLike[str], pixels: np.ndarray, *, quality: int | None = None,
                info: ImageInfo | None = None) -> Path:
    """Writes an image atomically: encoded in memory, written to a temporary file beside ``path``, then renamed,
    so a failure never leaves a half-written file (nor destroys an existing one).

    Args:
        path: destination; its suffix picks the format (PNG, TIFF, BMP lossless; WebP lossless unless
            ``quality``; JPEG at ``quality``, default 95).
        pixels: (H, W) or (H, W, C) uint8 or uint16, C in 2..4 (gray+alpha, RGB, RGBA).
        quality: lossy quality 1..100 for JPEG / WebP.
        info: metadata from :func:`read_image` to carry over (EXIF with orientation 1, ICC profile).

    Returns:
        The path written.
    """
    p = Path(path)
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    data = _encode(np.ascontiguousarray(pixels), p.suffix.lower(), quality, info)
    return atomic_write_bytes(p, data)
