"""Learned inpainters backed by weights shipped in ``torchworks/inpainting/pretrained/``.

Importing this module registers, in ``INPAINTERS``, one method per shipped weights file listed in :data:`SHIPPED`
whose file is present, plus the aliases in :data:`ALIASES` (``lama`` = the best shipped LaMa). Nothing is
downloaded: the weights are safetensors files inside the package, with a model card (``.md``) beside each.

Example::

    from torchworks.inpainting import inpaint
    import torchworks.inpainting.learned  # noqa: F401  (registers lama_tiny / lama)
    out = inpaint(photo, mask, method="lama_tiny")  # dilation 3 px + feathering by default
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from torchworks.core.checkpoint import load_model
from torchworks.core.registry import INPAINTERS
from torchworks.inpainting.base import Inpainter

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

SHIPPED: dict[str, dict[str, Any]] = {
    "lama_tiny": {"file": "lama_tiny_faces64.safetensors", "model": "lama_tiny", "train_size": 64},
    "relama_tiny": {"file": "relama_tiny_faces64.safetensors", "model": "relama_tiny", "train_size": 64},
}
"""Method name -> weights file (in :data:`PRETRAINED_DIR`), registered model name, training crop size.

The pipeline runs each model at its training size (``working_size`` = ``train_size``). Measured on the 8 held-out
faces at 256 px (hole PSNR, dB, thin / medium / thick masks), filling at 64 / 128 / 256 px: lama_tiny 16.75 /
14.62 / 14.56, 18.05 / 13.85 / 12.86, 17.59 / 12.36 / 11.83; relama_tiny 16.61 / 15.16 / 14.68, 17.25 / 13.29 /
13.25, 15.87 / 9.84 / 11.79. These tiny models (1,800 CPU steps) do not transfer to 4x their training size the
way the paper's LaMa does: at 256 px a periodic grid fills large holes.
"""

ALIASES: dict[str, str] = {"lama": "lama_tiny", "relama": "relama_tiny"}
"""Generic names pointing at the best shipped model of a family (registered only when its weights file ships)."""


class LearnedInpainter(Inpainter):
    """A generator taking ``cat(RGB * (1 - mask), mask)`` and predicting RGB in [0, 1].

    Args:
        model: the generator, (B, 4, H, W) -> (B, 3, H, W).
        name: registry name.
        pad_mod: the input side must be a multiple of this (``2 ** n_downsampling``).
        working_size: longest side the pipeline hands over; larger crops are downscaled for the fill and the
            fill is upscaled back. The shipped tiny models use their training size: run at 4x it they leave a
            periodic grid in large holes (see :data:`SHIPPED`).
    """

    # Learned fills leave colour fringes on tight masks (lama #311/#320): grow the hole and feather the seam.
    default_dilate = 3
    default_feather = True

    def __init__(self, model: torch.nn.Module, name: str, pad_mod: int, working_size: int | None) -> None:
        self.model = model.eval()
        self.name, self.pad_mod, self.working_size = name, pad_mod, working_size

    @torch.inference_mode()
    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] and (B, 1, H, W) hole mask -> (B, 3, H, W) prediction in [0, 1]."""
        x = torch.cat([image * (1.0 - mask), mask], dim=1)
        return self.model(x.to(next(self.model.parameters()).dtype)).float().clamp(0.0, 1.0)


def weights_file(name: str) -> Path:
    """The shipped weights of method ``name`` (``$TORCHWORKS_PRETRAINED_DIR`` overrides the package folder).

    Raises:
        FileNotFoundError: the file is absent (the message names it).
    """
    entry = SHIPPED[ALIASES.get(name, name)]
    root = Path(os.environ.get("TORCHWORKS_PRETRAINED_DIR", PRETRAINED_DIR))
    path = root / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"no shipped weights for {name!r} at {path}")
    return path


def load_learned(name: str, weights: str | os.PathLike[str] | None = None) -> LearnedInpainter:
    """Builds the learned inpainter ``name`` from its shipped weights (or from ``weights``, a checkpoint file
    written by :func:`~torchworks.core.checkpoint.save_model` or by the training engine)."""
    import torchworks.inpainting.nets  # noqa: F401  (registers the generators)

    key = ALIASES.get(name, name)
    entry = SHIPPED[key]
    model = load_model(weights if weights is not None else weights_file(name), expect=entry["model"])
    pad = 2 ** int(getattr(model, "n_downsampling", 3))
    return LearnedInpainter(model, name, pad_mod=max(pad, 8), working_size=entry.get("working_size",
                                                                                     entry["train_size"]))


def _factory(name: str):
    def build(weights: str | None = None) -> LearnedInpainter:
        return load_learned(name, weights)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"Learned inpainter {name!r} with its shipped weights (see its model card in pretrained/)."
    return build


def _register() -> None:
    for name in [*SHIPPED, *ALIASES]:
        if name in INPAINTERS.names():
            continue
        try:
            weights_file(name)
        except FileNotFoundError:
            continue  # only methods whose weights ship are listed
        INPAINTERS.add(name, _factory(name), kind="learned")


_register()

__all__ = ["ALIASES", "PRETRAINED_DIR", "SHIPPED", "LearnedInpainter", "load_learned", "weights_file"]
