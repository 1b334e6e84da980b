"""ReLaMa: LaMa with CBAM on the local and the global branch of every FFC res-block, and its cost.

Each ``relama_*`` model is the ``lama_*`` model of the same size plus a
:class:`~torchworks.nn.cbam.BranchCBAM` on each res-block's residual branches (after the second FFC layer,
before the identity addition, as CBAM's paper places it). ``variant="paper"`` (default) is CBAM as published;
``variant="seed"`` is the seed listing (double sigmoid in the channel gate, one spatial conv shared by both
branches), kept so the difference can be measured at equal everything else.

=====================  ====================
ReLaMa                 mirrors
=====================  ====================
``relama_fourier``     ``lama_fourier``
``relama_big``         ``big_lama``
``relama_small``       ``lama_small``
``relama_tiny``        ``lama_tiny``
=====================  ====================

:func:`relama_overhead` reports the extra parameters of each pair (counted on the ``meta`` device, so even the
big models cost no memory or time).

References:
    Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018.
    Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions", WACV 2022.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchworks.core.registry import MODELS
from torchworks.inpainting.nets.lama import LAMA_VARIANTS, FFCResNetGenerator

__all__ = ["RELAMA_PAIRS", "count_parameters", "format_overhead", "relama_overhead"]

RELAMA_PAIRS: dict[str, str] = {
    "relama_fourier": "lama_fourier",
    "relama_big": "big_lama",
    "relama_small": "lama_small",
    "relama_tiny": "lama_tiny",
}
"""ReLaMa name -> the LaMa variant it mirrors."""


def _relama_factory(lama_name: str):
    defaults = LAMA_VARIANTS[lama_name]

    def factory(variant: str = "paper", reduction: int = 16, kernel_size: int = 7,
                **overrides: Any) -> FFCResNetGenerator:
        att = dict(variant=variant, reduction=reduction, kernel_size=kernel_size)
        return FFCResNetGenerator(**{**defaults, **overrides, "attention": "cbam", "attention_kwargs": att})

    factory.__doc__ = (f"ReLaMa of the size of ``{lama_name}``; ``variant`` is ``'paper'`` or ``'seed'``, "
                       "``reduction`` and ``kernel_size`` configure CBAM; other keywords override the generator.")
    return factory


for _name, _lama in RELAMA_PAIRS.items():
    MODELS.add(_name, _relama_factory(_lama), family="relama", kind="inpainting_generator")


def count_parameters(name_or_model: str | nn.Module, **kwargs: Any) -> int:
    """Trainable parameter count of a model or of a registered name built with ``kwargs`` on the meta device."""
    if isinstance(name_or_model, nn.Module):
        model = name_or_model
    else:
        with torch.device("meta"):  # shapes only: no allocation, no initialisation cost
            model = MODELS.build(name_or_model, **kwargs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def relama_overhead(variant: str = "paper", names: list[str] | None = None) -> list[dict[str, Any]]:
    """Parameter overhead of each ReLaMa model over its LaMa counterpart.

    Args:
        variant: CBAM variant of the ReLaMa models (``"paper"`` or ``"seed"``).
        names: ReLaMa names to report (default: all of :data:`RELAMA_PAIRS`).

    Returns:
        One row per model: ``{"relama", "lama", "lama_params", "relama_params", "extra", "extra_pct"}``.
    """
    rows = []
    for name in names or list(RELAMA_PAIRS):
        if name not in RELAMA_PAIRS:
            raise ValueError(f"unknown ReLaMa model {name!r}; use one of {sorted(RELAMA_PAIRS)}")
        lama = RELAMA_PAIRS[name]
        base, ours = count_parameters(lama), count_parameters(name, variant=variant)
        rows.append(dict(relama=name, lama=lama, lama_params=base, relama_params=ours, extra=ours - base,
                         extra_pct=100.0 * (ours - base) / base))
    return rows


def format_overhead(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`relama_overhead` rows."""
    lines = ["| ReLaMa | LaMa | LaMa params | ReLaMa params | extra | extra % |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['relama']} | {r['lama']} | {r['lama_params']:,} | {r['relama_params']:,} | {r['extra']:,} | "
              f"{r['extra_pct']:.2f} |" for r in rows]
    return "\n".join(lines)
