"""Pixel-fidelity metrics for inpainting: PSNR and L1 (whole image or hole only), SSIM and MS-SSIM.

All functions take images as (B, C, H, W) float in [0, 1] and return one value per image, shape (B,), so means,
standard deviations and area bins are the caller's choice. Following LaMa's evaluation, they are meant to be
computed on the *composited* result against the original. PSNR/SSIM reward blur on large holes (which is why
LaMa reports FID/LPIPS instead); read them as fidelity, not realism.

SSIM/MS-SSIM are implemented here (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1, valid
convolution) and tested against torchmetrics, so torchmetrics is not a dependency.

References:
    Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error Visibility to Structural Similarity",
    IEEE TIP 2004. Wang, Simoncelli, Bovik, "Multiscale Structural Similarity", Asilomar 2003 (scale weights).
    LaMa ``saicinpainting/evaluation/losses/ssim.py`` (11x11 Gaussian window).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be (B, C, H, W); got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")


def _hole_weights(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(like[:, :1])
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != like.shape[-2:] or mask.shape[0] != like.shape[0]:
        raise ValueError(f"mask must be (B, 1, H, W) matching the images, got {tuple(mask.shape)}")
    w = mask.to(like.dtype)
    if bool((w.flatten(1).sum(1) == 0).any()):
        raise ValueError("a hole-only metric needs at least one hole pixel per image; the mask has none")
    return w


def mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per image, over all pixels or (with ``mask``) over hole pixels only.

    Args:
        pred, target: (B, C, H, W) float in [0, 1].
        mask: optional (B, 1, H, W) {0, 1}, 1 = hole; restricts the mean to the hole.

    Returns:
        (B,) float.
    """
    _check(pred, target)
    w = _hole_weights(mask, pred)
    err = (pred - target).pow(2) * w
    return err.flatten(1).sum(1) / (w.flatten(1).sum(1) * pred.shape[1])


def l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error per image (whole image, or hole only with ``mask``); same arguments as :func:`mse`."""
    _check(pred, target)
    w = _hole_weights(mask, pred)
    err = (pred - target).abs() * w
    return err.flatten(1).sum(1) / (w.flatten(1).sum(1) * pred.shape[1])


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
         data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``10 log10(range^2 / MSE)`` (``inf`` for identical images).

    Args:
        pred, target: (B, C, H, W) float in [0, ``data_range``].
        mask: optional (B, 1, H, W) {0, 1}, 1 = hole; "hole PSNR" uses the MSE over hole pixels only.
        data_range: the images' value range.

    Returns:
        (B,) float, dB.
    """
    return 10.0 * torch.log10(data_range**2 / mse(pred, target, mask))


def _gaussian(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor, c1: float, c2: float, padding: str
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per image."""
    c = x.shape[1]
    k = win.numel()
    p = k // 2
    if padding == "reflect":
        x, y = F.pad(x, (p, p, p, p), mode="reflect"), F.pad(y, (p, p, p, p), mode="reflect")
    wx = win.view(1, 1, 1, k).expand(c, 1, 1, k)
    wy = win.view(1, 1, k, 1).expand(c, 1, k, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, per channel
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    # Clamped like torchmetrics: rounding can make a variance of a flat window slightly negative.
    sxx = (blur(x * x) - mu_x**2).clamp_min(0.0)
    syy = (blur(y * y) - mu_y**2).clamp_min(0.0)
    sxy = blur(x * y) - mu_x * mu_y
    cs_map = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    if padding == "reflect":
        # torchmetrics' convention: SSIM averages the whole padded map, the contrast term only its interior.
        cs_map = cs_map[..., p:-p, p:-p]
    return ssim_map.flatten(1).mean(1), cs_map.flatten(1).mean(1)


def _check_padding(padding: str) -> None:
    if padding not in ("reflect", "valid"):
        raise ValueError(f"padding must be 'reflect' (torchmetrics) or 'valid' (scikit-image), got {padding!r}")


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, kernel_size: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03, padding: str = "reflect") -> torch.Tensor:
    """Structural similarity per image (mean over channels and valid windows).

    Args:
        pred, target: (B, C, H, W) float in [0, ``data_range``], H and W >= ``kernel_size``.
        data_range: the images' value range.
        kernel_size, sigma: Gaussian window (11, 1.5 as in the paper and LaMa).
        k1, k2: stabilising constants.
        padding: ``"reflect"`` (default) pads by reflection and averages the whole map, as torchmetrics does;
            ``"valid"`` averages only windows inside the image, as scikit-image does.

    Returns:
        (B,) float in [-1, 1]; 1 for identical images.
    """
    _check(pred, target)
    _check_padding(padding)
    if min(pred.shape[-2:]) < kernel_size:
        raise ValueError(f"SSIM needs images of at least {kernel_size} px, got {tuple(pred.shape[-2:])}")
    win = _gaussian(kernel_size, sigma, pred.dtype).to(pred.device)
    return _ssim_parts(pred, target, win, (k1 * data_range) ** 2, (k2 * data_range) ** 2, padding)[0]


def ms_ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, kernel_size: int = 11,
            sigma: float = 1.5, weights: tuple[float, ...] = MS_SSIM_WEIGHTS, padding: str = "reflect") -> torch.Tensor:
    """Multi-scale SSIM per image: contrast-structure at every scale, luminance at the coarsest.

    Args:
        pred, target: (B, C, H, W) float in [0, ``data_range``]. With 5 scales the short side must exceed
            ``(kernel_size - 1) * 2**4`` (160 px); pass fewer ``weights`` for smaller images.
        data_range: the images' value range.
        kernel_size, sigma: Gaussian window.
        weights: per-scale exponents, finest first, used as given (not renormalised).
        padding: as in :func:`ssim`.

    Returns:
        (B,) float; 1 for identical images. Negative contrast terms are clamped at 0 (as torchmetrics'
        ``normalize="relu"`` does) so the fractional powers stay real.
    """
    _check(pred, target)
    _check_padding(padding)
    n = len(weights)
    need = (kernel_size - 1) * 2 ** (n - 1)
    if min(pred.shape[-2:]) <= need:
        raise ValueError(f"MS-SSIM with {n} scales needs a short side > {need} px, got {min(pred.shape[-2:])}; "
                         "pass fewer weights")
    w = torch.tensor(weights, dtype=pred.dtype, device=pred.device)  # used as given, as torchmetrics does
    win = _gaussian(kernel_size, sigma, pred.dtype).to(pred.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    terms = []
    x, y = pred, target
    for i in range(n):
        s, cs = _ssim_parts(x, y, win, c1, c2, padding)
        terms.append((s if i == n - 1 else cs).clamp_min(0.0))
        if i < n - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.stack(terms, 1).pow(w).prod(1)
