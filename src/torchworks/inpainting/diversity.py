"""Diversity of a pluralistic inpainter: how different its completions of one hole are.

ICT and Pluralistic (Zheng et al., CVPR 2019) report the mean pairwise LPIPS between several samples of the same
hole. LPIPS needs ImageNet backbone weights this project cannot download, so the feature distance here is the mean
pairwise Euclidean distance of ImageNet EfficientNet-Lite0 pooled features (the network of the FID proxy,
:mod:`~torchworks.inpainting.fid`), reported beside the mean pairwise L1 over the hole pixels. A deterministic
method (Telea, LaMa) fills a hole the same way every time, so both are exactly 0 for it: identical fills are
detected and share one feature vector, so batching cannot turn equal images into a rounding-level distance.

References:
    Zheng, Cham, Cai, "Pluralistic Image Completion", CVPR 2019 (diversity score: mean pairwise LPIPS).
    Wan et al., "High-Fidelity Pluralistic Image Completion with Transformers", ICCV 2021 (table 2).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from torchworks.inpainting.api import inpaint, is_pluralistic
from torchworks.inpainting.base import Inpainter
from torchworks.inpainting.fid import extract_features

__all__ = ["Diversity", "diversity", "feature_diversity", "hole_l1_diversity", "is_pluralistic",
           "pairwise_mean_distance", "sample_fills", "with_seed"]


def pairwise_mean_distance(vectors: torch.Tensor) -> float:
    """Mean Euclidean distance over the S (S - 1) / 2 unordered pairs of rows of ``vectors`` (S, D), S >= 2."""
    if vectors.dim() != 2 or vectors.shape[0] < 2:
        raise ValueError(f"need (S, D) vectors with S >= 2 samples, got shape {tuple(vectors.shape)}")
    v = vectors.double()
    return float(torch.stack([(v[i] - v[j]).norm() for i, j in itertools.combinations(range(len(v)), 2)]).mean())


def _check(samples: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    if samples.dim() != 4 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (S, C, H, W) with S >= 2, got shape {tuple(samples.shape)}")
    if mask is not None and (mask.dim() != 4 or mask.shape[0] not in (1, samples.shape[0]) or mask.shape[1] != 1
                             or mask.shape[-2:] != samples.shape[-2:]):
        raise ValueError(f"mask must be (1, 1, H, W) or (S, 1, H, W) matching samples {tuple(samples.shape)}, got "
                         f"{tuple(mask.shape)}")


def hole_l1_diversity(samples: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over sample pairs of the mean absolute difference over the hole pixels (all channels).

    Args:
        samples: (S, C, H, W) float in [0, 1], S >= 2 fills of the same image and hole.
        mask: (1, 1, H, W) or (S, 1, H, W), 1 = hole (at least one hole pixel).

    Returns:
        Diversity on the [0, 1] scale (multiply by 255 for 8-bit levels); 0 when all samples are equal.
    """
    _check(samples, mask)
    hole = mask[:1].bool().expand(1, samples.shape[1], -1, -1)[0]  # (C, H, W)
    if not hole.any():
        raise ValueError("the mask has no hole pixel")
    s = samples.double()
    return float(torch.stack([(s[i] - s[j]).abs()[hole].mean()
                              for i, j in itertools.combinations(range(len(s)), 2)]).mean())


def feature_diversity(model: torch.nn.Module, samples: torch.Tensor) -> float:
    """Mean pairwise Euclidean distance of EfficientNet-Lite0 pooled features (see :func:`~.fid.extract_features`).

    Args:
        model: an :class:`~torchworks.inpainting.fid.EfficientNetLite0` (anything with ``features``).
        samples: (S, 3, H, W) float RGB in [0, 1], S >= 2.

    Returns:
        The distance in feature units (comparable only with numbers from the same network); exactly 0 when all
        samples are equal.
    """
    _check(samples)
    keys = [s.contiguous().numpy().tobytes() for s in samples.float().cpu()]
    unique = list(dict.fromkeys(keys))
    if len(unique) == 1:
        return 0.0
    firsts = [keys.index(k) for k in unique]
    feats = extract_features(model, samples[firsts])  # (U, D) float64, one per distinct sample
    return pairwise_mean_distance(feats[[unique.index(k) for k in keys]])


@dataclass
class Diversity:
    """Mean pairwise distances between S samples of one hole (0 for a deterministic method).

    Attributes:
        hole_l1: mean absolute difference over hole pixels, [0, 1] scale.
        feature: EfficientNet-Lite0 feature distance, or NaN without a feature model.
        samples: S.
    """

    hole_l1: float
    feature: float
    samples: int


def diversity(samples: torch.Tensor, mask: torch.Tensor, feature_model: torch.nn.Module | None = None) -> Diversity:
    """Both distances for S fills (S, 3, H, W) of one hole ``mask`` (1, 1, H, W); see the functions above."""
    feat = feature_diversity(feature_model, samples) if feature_model is not None else float("nan")
    return Diversity(hole_l1_diversity(samples, mask), feat, samples.shape[0])


def with_seed(inpainter: Inpainter, seed: int) -> Inpainter:
    """A shallow copy of a pluralistic inpainter drawing with ``seed`` (the models are shared, not copied)."""
    if not is_pluralistic(inpainter):
        raise ValueError(f"{getattr(inpainter, 'name', inpainter)!r} gives one completion per hole; a seed applies "
                         "to pluralistic methods only")
    out = copy.copy(inpainter)
    out.seed = seed
    return out


def sample_fills(inpainter: Inpainter, image: torch.Tensor, mask: torch.Tensor, samples: int, seed: int = 0,
                 **inpaint_opts: Any) -> torch.Tensor:
    """``samples`` fills of one hole: seeds ``seed .. seed + samples - 1`` for a pluralistic method, the same call
    repeated for a deterministic one (so its diversity is measured, not assumed).

    Args:
        inpainter: an :class:`Inpainter` instance.
        image: (1, 3, H, W) float in [0, 1]. mask: (1, 1, H, W), 1 = hole.
        inpaint_opts: passed to :func:`~torchworks.inpainting.api.inpaint` (``dilate``, ``feather``, ...).

    Returns:
        (samples, 3, H, W) composites.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    plural = is_pluralistic(inpainter)
    fills: Sequence[torch.Tensor] = [
        inpaint(image, mask, with_seed(inpainter, seed + i) if plural else inpainter, **inpaint_opts)
        for i in range(samples)]
    return torch.cat(list(fills))
