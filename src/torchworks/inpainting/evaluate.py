"""Evaluation harness: every method on every image with fixed-seed masks; tables by mask family and hole area.

Images are resized so their short side is ``size`` (bicubic, as LaMa's ``gen_mask_dataset.py``) and centre-cropped
to a square (LaMa crops at random; a centre crop keeps runs reproducible). Mask ``i`` of a family comes from the
stream ``(seed, i)``, so every method sees the same holes and a rerun gives the same numbers. Metrics are computed
on the composite (outside the hole it *is* the original) against the original, as LaMa does, plus hole-only PSNR
and L1 which do not dilute the error with known pixels.

Optional metrics that need weights the user supplies (nothing is downloaded): LPIPS v0.1 per image
(:mod:`~torchworks.inpainting.lpips`, a torchvision AlexNet/VGG16 file) and Inception-FID per set
(:mod:`~torchworks.inpainting.inception`, pytorch-fid's ``pt_inception-2015-12-05`` file). FID/KID on
EfficientNet-Lite0 features (:mod:`~torchworks.inpainting.fid`) install offline but are not comparable to
Inception-FID.

The seed project's three cases are presets: ``scratches`` (thin strokes), ``region`` (medium strokes and boxes),
``large`` (thick strokes and the Context-Encoder centre square).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from torchworks.core.registry import MASKS
from torchworks.data.masks import MaskGenerator, scaled_mask
from torchworks.inpainting import metrics as M
from torchworks.inpainting.api import get_inpainter, inpaint
from torchworks.inpainting.fid import extract_features, frechet_distance, kernel_inception_distance
from torchworks.inpainting.inception import extract_inception_features
from torchworks.inpainting.lpips import lpips_distance

FAMILIES = ("thin", "medium", "thick", "box", "center", "outpainting")
PRESETS = {"scratches": ("thin",), "region": ("medium", "box"), "large": ("thick", "center")}
AREA_BINS = tuple((i / 10, (i + 1) / 10) for i in range(10))  # LaMa's 10 bins of hole area


@dataclass
class Row:
    """One (image, mask family, method) result; areas are fractions, PSNR in dB, L1 on the [0, 1] scale;
    ``lpips`` is NaN unless an LPIPS model was given."""

    image: str
    family: str
    method: str
    area: float
    psnr: float
    psnr_hole: float
    l1: float
    l1_hole: float
    ssim: float
    ms_ssim: float
    seconds: float
    lpips: float = math.nan


def mask_generator(family: str, size: int) -> MaskGenerator:
    """The generator of a family at a working size: LaMa's ``*_256`` sets up to 384 px, ``*_512`` above."""
    if family in ("thin", "medium", "thick"):
        return MASKS.build(f"{family}_{256 if size <= 384 else 512}")
    if family not in FAMILIES:
        raise ValueError(f"unknown mask family {family!r}; known: {', '.join(FAMILIES)} or presets "
                         f"{', '.join(PRESETS)}")
    return MASKS.build(family)


MASK_BASE = 256
"""Masks for evaluation sizes below this are drawn at it and area-resized (LaMa's sets are defined in pixels at
256 px: drawn directly at 64 px, thick strokes would cover most of the image)."""


def draw_mask(gen: MaskGenerator, size: int, seed: tuple[int, ...]) -> torch.Tensor:
    """Mask ``seed`` of a family at ``size`` px, (1, size, size) {0, 1}: drawn at ``size``, or below
    :data:`MASK_BASE` drawn there and area-resized (never empty)."""
    if size >= MASK_BASE:
        return gen(size, size, seed=seed)
    return scaled_mask(gen, size, MASK_BASE, seed)


def expand_families(names: Iterable[str]) -> list[str]:
    """Families from names and presets (``"large"`` -> thick, center), in order, without repeats."""
    out: list[str] = []
    for name in names:
        for fam in PRESETS.get(name, (name,)):
            mask_generator(fam, 256)  # validates the name
            if fam not in out:
                out.append(fam)
    return out


def load_square(path: str | Path, size: int) -> torch.Tensor:
    """An image as (3, size, size) float32 RGB in [0, 1]: short side resized to ``size``, centre crop."""
    from PIL import Image

    from torchworks.data.images import read_image

    pixels, _ = read_image(path)
    img = Image.fromarray(pixels).convert("RGB") if pixels.dtype == np.uint8 else \
        Image.fromarray((pixels // 257).astype(np.uint8)).convert("RGB")
    s = size / min(img.size)
    w, h = max(size, round(img.width * s)), max(size, round(img.height * s))
    img = img.resize((w, h), Image.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def list_images(folders: Sequence[str | Path], limit: int | None = None) -> list[Path]:
    """Image files under ``folders`` (recursively, sorted); the first ``limit`` of each folder when given."""
    from torchworks.data.images import IMAGE_SUFFIXES

    files: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise FileNotFoundError(f"no such image folder: {root}")
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise FileNotFoundError(f"no images in {root}")
        files += found[:limit] if limit else found
    return files


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    Attributes:
        rows: one :class:`Row` per (image, family, method).
        grid: (3, H, W) float32 comparison grid (rows: image x family; columns: original, masked input, one per
            method), or ``None``.
        sets: per (family, method): ``{"fid": ..., "kid": ...}`` on EfficientNet-Lite0 features of the composites
            against the originals (KID: one unbiased estimate over the whole set) and ``"fid_inception"`` on
            FID-Inception pool3 features; empty without a feature model.
    """

    rows: list[Row]
    grid: torch.Tensor | None
    sets: dict[tuple[str, str], dict[str, float]]


def evaluate(methods: Sequence[str], images: Sequence[str | Path], families: Sequence[str], size: int = 256,
             seed: int = 0, grid_images: int = 2, method_opts: dict[str, dict[str, Any]] | None = None,
             feature_model: torch.nn.Module | None = None, lpips_model: torch.nn.Module | None = None,
             inception_model: torch.nn.Module | None = None, device: str = "cpu") -> Evaluation:
    """Runs every method on every image and mask family.

    Args:
        methods: registry names of inpainters.
        images: image files.
        families: mask families or presets (see :data:`FAMILIES`, :data:`PRESETS`).
        size: side of the square evaluation crops, pixels.
        seed: mask seed; mask ``i`` of each family uses the stream ``(seed, i)``.
        grid_images: images per family shown in the comparison grid (0 = no grid).
        device: where learned methods run (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
        method_opts: per-method options, e.g. ``{"telea": {"radius": 5}}``.
        feature_model: an :class:`~torchworks.inpainting.fid.EfficientNetLite0` to add FID/KID per set.
        lpips_model: an :class:`~torchworks.inpainting.lpips.LPIPS` (see ``load_lpips``) to add LPIPS per row.
        inception_model: a :class:`~torchworks.inpainting.inception.FIDInceptionV3` (see ``load_fid_inception``)
            to add Inception-FID per set.

    Returns:
        An :class:`Evaluation`.
    """
    fams = expand_families(families)
    from torchworks.core.device import resolve_device

    dev = resolve_device(device)
    inpainters = {m: get_inpainter(m, **(method_opts or {}).get(m, {})) for m in methods}
    for inp in inpainters.values():
        if hasattr(inp, "to"):
            inp.to(dev)
    gens = {f: mask_generator(f, size) for f in fams}
    use_ms = size > 160
    rows: list[Row] = []
    tiles: list[torch.Tensor] = []
    extractors: dict[str, tuple[torch.nn.Module, Any]] = {}  # sets key -> (network, feature function)
    if feature_model is not None:
        extractors["fid"] = (feature_model, extract_features)
    if inception_model is not None:
        extractors["fid_inception"] = (inception_model, extract_inception_features)
    feats: dict[str, dict[Any, list[torch.Tensor]]] = {kind: {} for kind in extractors}
    for i, path in enumerate(images):
        img = load_square(path, size)[None]
        for kind, (model, fn) in extractors.items():
            feats[kind].setdefault("original", []).append(fn(model, img))
        for fam in fams:
            mask = draw_mask(gens[fam], size, (seed, i))[None]
            outs = []
            for name, inp in inpainters.items():
                t0 = time.perf_counter()
                out = inpaint(img, mask, inp)
                dt = time.perf_counter() - t0
                outs.append(out)
                for kind, (model, fn) in extractors.items():
                    feats[kind].setdefault((fam, name), []).append(fn(model, out))
                rows.append(Row(
                    image=f"{Path(path).parent.name}/{Path(path).name}", family=fam, method=name,
                    area=float(mask.mean()),
                    psnr=float(M.psnr(out, img)), psnr_hole=float(M.psnr(out, img, mask)),
                    l1=float(M.l1(out, img)), l1_hole=float(M.l1(out, img, mask)), ssim=float(M.ssim(out, img)),
                    ms_ssim=float(M.ms_ssim(out, img)) if use_ms else math.nan, seconds=dt,
                    lpips=float(lpips_distance(lpips_model, out, img)[0]) if lpips_model is not None else math.nan))
            if i < grid_images:
                shown = img * (1 - mask) + mask  # holes in white, like a drawn mask
                tiles.append(torch.cat([img, shown, *outs], -1)[0])
    grid = None
    if tiles:
        pad = [F.pad(t, (2, 2, 2, 2), value=1.0) for t in tiles]
        grid = torch.cat(pad, -2)
    sets: dict[tuple[str, str], dict[str, float]] = {}
    if len(images) >= 2:
        for kind, by_key in feats.items():
            ref = torch.cat(by_key["original"])
            for key, chunks in by_key.items():
                if key == "original":
                    continue
                got = torch.cat(chunks)
                entry = sets.setdefault(key, {})
                entry[kind] = frechet_distance(got, ref)
                if kind == "fid":  # Tens of images cannot be split into KID subsets: one unbiased full-set estimate.
                    entry["kid"], _ = kernel_inception_distance(got, ref, subsets=1, subset_size=len(images))
    return Evaluation(rows, grid, sets)


def _mean_std(values: list[float]) -> str:
    v = np.array([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return "-"
    return f"{v.mean():.3f} ± {v.std():.3f}" if abs(v.mean()) < 1 else f"{v.mean():.2f} ± {v.std():.2f}"


def summary_tables(rows: Sequence[Row], sets: dict[tuple[str, str], dict[str, float]] | None = None) -> str:
    """Markdown: metrics per (family, method) as mean ± std, hole PSNR per (method, area bin), and FID/KID on
    EfficientNet-Lite0 features and Inception-FID per (family, method) when ``sets`` holds them; an LPIPS column
    when the rows have LPIPS values."""
    methods = list(dict.fromkeys(r.method for r in rows))
    fams = list(dict.fromkeys(r.family for r in rows))
    has_lpips = any(math.isfinite(r.lpips) for r in rows)
    keys = ("psnr", "psnr_hole", "ssim", "ms_ssim", "l1_hole") + (("lpips",) if has_lpips else ()) + ("seconds",)
    lines = ["| mask | mean area | method | n | PSNR dB | hole PSNR dB | SSIM | MS-SSIM | hole L1 | "
             + ("LPIPS | " if has_lpips else "") + "time s |", "|---|---|---|---|" + "---|" * len(keys)]
    for fam in fams:
        for m in methods:
            sel = [r for r in rows if r.family == fam and r.method == m]
            area = 100 * float(np.mean([r.area for r in sel]))
            cells = " | ".join(_mean_std([getattr(r, k) for r in sel]) for k in keys)
            lines.append(f"| {fam} | {area:.1f} % | {m} | {len(sel)} | {cells} |")
    lines += ["", "Hole PSNR (dB) by hole-area bin (all families pooled; n in brackets):", "",
              "| method | " + " | ".join(f"{int(lo * 100)}-{int(hi * 100)} %" for lo, hi in AREA_BINS[:6]) + " |",
              "|---|" + "---|" * 6]
    for m in methods:
        cells = []
        for lo, hi in AREA_BINS[:6]:  # eval masks are capped at 50 %; outpainting/train masks may exceed it
            sel = [r.psnr_hole for r in rows if r.method == m and lo <= r.area < hi]
            cells.append(f"{np.mean(sel):.2f} ({len(sel)})" if sel else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if has_lpips:
        lines += ["", "LPIPS v0.1 (Zhang et al. 2018; lower is better) of each composite against its original, with "
                  "the ImageNet backbone file supplied by the user."]
    lite = {k: v for k, v in (sets or {}).items() if "fid" in v}
    incep = {k: v for k, v in (sets or {}).items() if "fid_inception" in v}
    if incep:
        lines += ["", "Inception-FID (pytorch-fid's FID Inception-v3 weights, supplied by the user; 299 px, "
                  "2048-d pool3), composites vs originals. Same network as published FID, but with tens of images "
                  "it is biased far upwards: compare methods, not with papers:", "",
                  "| mask | method | FID-Inception |", "|---|---|---|"]
        lines += [f"| {fam} | {m} | {v['fid_inception']:.2f} |" for (fam, m), v in incep.items()]
    if lite:
        lines += ["", "FID / KID on ImageNet EfficientNet-Lite0 features (224 px), composites vs originals. **Not "
                  "comparable to Inception FID**; with tens of images FID is biased upwards, so compare methods, "
                  "not sets:", "", "| mask | method | FID-Lite0 | KID-Lite0 x 1000 |", "|---|---|---|---|"]
        for (fam, m), v in lite.items():
            lines.append(f"| {fam} | {m} | {v['fid']:.2f} | {1000 * v['kid']:.2f} |")
    return "\n".join(lines)


def write_results(result: Evaluation, out_dir: str | Path, grid_max_width: int = 1600) -> dict[str, Path]:
    """Writes ``metrics.csv`` (one row per result), ``summary.md`` and ``grid.jpg``; returns their paths.

    The grid is a JPEG (quality 85) no wider than ``grid_max_width`` pixels (area downscaling): a PNG of photo
    crops costs megabytes per result folder, and the grid is for eyes, not for measurements.
    """
    rows, grid = result.rows, result.grid
    if grid is not None and grid.shape[-1] > grid_max_width:
        s = grid_max_width / grid.shape[-1]
        grid = F.interpolate(grid[None], scale_factor=s, mode="area")[0]
    from torchworks.data.images import write_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "metrics.csv", "summary": out / "summary.md"}
    fields = list(Row.__dataclass_fields__)
    if not any(math.isfinite(r.lpips) for r in rows):
        fields.remove("lpips")  # an all-NaN column would only break old readers
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(asdict(r) for r in rows)
    paths["summary"].write_text(summary_tables(rows, result.sets) + "\n")
    if grid is not None:
        pixels = (grid.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        paths["grid"] = write_image(out / "grid.jpg", pixels, quality=85)
    return paths
