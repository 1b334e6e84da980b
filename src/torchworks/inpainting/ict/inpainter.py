"""ICT-style two-stage inpainting: sample a low-resolution appearance prior, then upsample it with a CNN.

Stage 1 (:mod:`.prior`): the photo at the working size is area-downsampled to ``size`` x ``size``, quantized to
the palette, and the tokens under the hole are sampled by the transformer (top-k, seeded: each seed gives another
plausible completion). Stage 2: a LaMa-style FFC generator with three extra input channels takes
``cat(RGB * (1 - mask), mask, prior)``, the prior upsampled bicubically to full size, and predicts the
full-resolution fill (ICT's guided upsampler; here the FFC generator replaces ICT's dilated-conv network so it
shares LaMa's code, losses and training task).

References:
    Wan et al., "High-Fidelity Pluralistic Image Completion with Transformers", ICCV 2021 (sections 3.2-3.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from torchworks.core.registry import MODELS
from torchworks.inpainting.base import Inpainter
from torchworks.inpainting.ict.palette import dequantize, downsample, hole_tokens, quantize
from torchworks.inpainting.ict.prior import AppearancePrior, sample_tokens

__all__ = ["ICTInpainter", "prior_image"]


def prior_image(tokens: Tensor, palette: Tensor, size: int, out_hw: tuple[int, int]) -> Tensor:
    """(B, T) tokens -> (B, 3, H, W) palette image upsampled bicubically to ``out_hw`` and clamped to [0, 1]."""
    low = dequantize(tokens, palette, size)
    return F.interpolate(low, size=out_hw, mode="bicubic", align_corners=False).clamp(0.0, 1.0)


class ICTInpainter(Inpainter):
    """The two stages as one inpainter; ``seed`` picks the completion (same seed, same fill).

    Args:
        prior: the stage-1 transformer (its ``palette`` buffer holds the token colours).
        upsampler: generator (B, 7, H, W) -> (B, 3, H, W) in [0, 1].
        seed: seeds the top-k draws.
        top_k, steps, temperature: sampling settings of :func:`~.prior.sample_tokens`.
        working_size: side the pipeline hands over (the prior grid covers this many pixels).
        progress: optional ``callback(step, steps)``, called after each pass of the transformer stage.
    """

    default_dilate = 3
    default_feather = True

    def __init__(self, prior: AppearancePrior, upsampler: torch.nn.Module, name: str = "ict",
                 seed: int = 0, top_k: int = 40, steps: int = 8, temperature: float = 1.0,
                 working_size: int = 256, pad_mod: int = 8, progress: Callable[[int, int], Any] | None = None) -> None:
        self.prior, self.upsampler = prior.eval(), upsampler.eval()
        self.palette = prior.palette.float()
        self.name, self.seed, self.top_k, self.steps, self.temperature = name, seed, top_k, steps, temperature
        self.working_size, self.pad_mod, self.progress = working_size, pad_mod, progress

    def to(self, device: str | torch.device = "auto", precision: str | None = None) -> ICTInpainter:
        """Moves both stages to ``device`` (``auto``/``cpu``/``cuda``/``mps``); only fp32 is supported.

        Raises:
            DeviceError: the device is absent. ValueError: a precision other than fp32.
        """
        from torchworks.core.device import resolve_device

        if precision not in (None, "fp32"):
            raise ValueError(f"ict runs in fp32 only, got precision {precision!r}")
        dev = resolve_device(device)
        self.prior.to(dev)
        self.upsampler.to(dev)
        self.palette = self.palette.to(dev)
        return self

    def sample_prior(self, image: Tensor, mask: Tensor, seed: int | None = None) -> Tensor:
        """(B, 3, H, W), (B, 1, H, W) -> (B, 3, H, W) sampled prior image (known tokens from the photo)."""
        size = self.prior.size
        tokens = quantize(downsample(image * (1.0 - mask), size), self.palette)
        unknown = hole_tokens(mask, size)
        g = torch.Generator(device=image.device).manual_seed(self.seed if seed is None else seed)
        filled = sample_tokens(self.prior, tokens, unknown, steps=self.steps, top_k=self.top_k,
                               temperature=self.temperature, generator=g, callback=self.progress)
        return prior_image(filled, self.palette, size, tuple(image.shape[-2:]))

    @torch.inference_mode()
    def fill(self, image: Tensor, mask: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] and (B, 1, H, W) hole mask -> (B, 3, H, W) prediction in [0, 1]."""
        dev = self.palette.device
        image, mask = image.to(dev), mask.to(dev)
        prior = self.sample_prior(image, mask)
        x = torch.cat([image * (1.0 - mask), mask, prior], dim=1)
        return self.upsampler(x).float().clamp(0.0, 1.0).cpu()


def _upsampler(lama_name: str):
    def factory(**overrides: Any) -> torch.nn.Module:
        from torchworks.inpainting.nets.lama import LAMA_VARIANTS, FFCResNetGenerator

        return FFCResNetGenerator(**{**LAMA_VARIANTS[lama_name], "in_channels": 7, **overrides})

    factory.__doc__ = f"ICT guided upsampler: ``{lama_name}`` taking masked RGB + mask + prior RGB (7 channels)."
    return factory


for _name, _lama in {"ict_upsampler_small": "lama_small", "ict_upsampler_tiny": "lama_tiny"}.items():
    MODELS.add(_name, _upsampler(_lama), family="ict", kind="inpainting_generator")
