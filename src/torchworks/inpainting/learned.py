"""Learned inpainters backed by weights shipped in ``torchworks/inpainting/pretrained/``.

Importing this module registers, in ``INPAINTERS``, one method per shipped weights file listed in :data:`SHIPPED`
whose file is present, the aliases in :data:`ALIASES` (a plain name such as ``lama`` only for a model that beats
Telea on the photos its users bring), and ``big_lama``, the official Big LaMa, whose weights the user imports once
(``torchworks weights import lama big-lama.pt``; see :mod:`torchworks.inpainting.external`). Nothing is
downloaded: the shipped weights are safetensors files inside the package, with a model card (``.md``) beside each.

Example::

    from torchworks.inpainting import inpaint
    import torchworks.inpainting.learned  # noqa: F401  (registers the shipped models)
    out = inpaint(face, mask, method="lama_faces64")  # dilation 3 px + feathering by default
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
    "lama_faces64": {"file": "lama_tiny_faces64.safetensors", "model": "lama_tiny", "train_size": 64,
                     "domain": "faces (CelebA-HQ crops) at 64 px; not for scenes",
                     "summary": "LaMa 0.18 M, faces at 64 px; held-out faces, medium holes: 14.6 dB vs Telea "
                                "15.4 (scenes: 13.7 vs 21.8)"},
    "relama_faces64": {"file": "relama_tiny_faces64.safetensors", "model": "relama_tiny", "train_size": 64,
                       "domain": "faces (CelebA-HQ crops) at 64 px; not for scenes",
                       "summary": "ReLaMa 0.18 M, faces at 64 px; held-out faces, medium holes: 15.2 dB vs Telea "
                                  "15.4 (scenes: 14.3 vs 21.8)"},
}
"""Method name -> weights file (in :data:`PRETRAINED_DIR`), registered model name, training crop size, domain;
optional ``working_size`` (longest side handed to the model, default ``train_size``) and ``dilate`` (default hole
dilation in pixels, default :attr:`LearnedInpainter.default_dilate`; 0 also turns feathering off).

The names say the domain and working size: on six scene photos the face models score 13.7 / 14.3 dB hole PSNR,
below a mean-colour fill (14.7) and far below Telea (21.8), so they are not offered as ``lama`` / ``relama``.

The pipeline runs each model at its training size (``working_size`` = ``train_size``). Measured on the 8 held-out
faces at 256 px (hole PSNR, dB, thin / medium / thick masks), filling at 64 / 128 / 256 px: lama_tiny 16.75 /
14.62 / 14.56, 18.05 / 13.85 / 12.86, 17.59 / 12.36 / 11.83; relama_tiny 16.61 / 15.16 / 14.68, 17.25 / 13.29 /
13.25, 15.87 / 9.84 / 11.79. These tiny models (1,800 CPU steps) do not transfer to 4x their training size the
way the paper's LaMa does: at 256 px a periodic grid fills large holes.
"""

ALIASES: dict[str, str] = {}
"""Plain names (``lama``, ``relama``) -> a shipped model, given only to a model that beats the classical methods
on held-out natural photos (``docs/results/inpainting.md``); none does yet, so none is given."""


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

    def __init__(self, model: torch.nn.Module, name: str, pad_mod: int, working_size: int | None,
                 device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        self.model = model.eval()
        self.name, self.pad_mod, self.working_size = name, pad_mod, working_size
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.to(device, precision)

    def to(self, device: str | torch.device = "auto", precision: str | None = None) -> LearnedInpainter:
        """Moves the model to ``device`` (``auto``/``cpu``/``cuda``/``mps``) and sets the arithmetic.

        ``precision``: ``"fp32"`` (default, the reference's numbers), ``"channels_last"`` (fp32 in NHWC memory
        layout: same output to ~1e-7, ~0.8x the CPU time) or ``"bf16"`` (bfloat16 autocast in NHWC layout; the
        FFTs stay fp32: ~0.5x the CPU time on AVX-512 CPUs, output within 0.003 of fp32 on the [0, 1] scale;
        measured in ``docs/results/inpainting.md``).

        Raises:
            DeviceError: the device is absent. ValueError: an unknown precision.
        """
        from torchworks.core.device import resolve_device

        if precision is not None:
            if precision not in PRECISIONS:
                raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
            self.precision = precision
        self.device = resolve_device(device)
        self.model.to(self.device, memory_format=torch.channels_last if self.precision != "fp32"
                      else torch.contiguous_format)
        return self

    @torch.inference_mode()
    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] and (B, 1, H, W) hole mask -> (B, 3, H, W) prediction in [0, 1]."""
        x = torch.cat([image * (1.0 - mask), mask], dim=1).to(self.device, next(self.model.parameters()).dtype)
        if self.precision != "fp32":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.model(x)
        return out.float().clamp(0.0, 1.0).to(image.device).contiguous()


PRECISIONS = ("fp32", "bf16", "channels_last")


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


def load_learned(name: str, weights: str | os.PathLike[str] | None = None, device: str = "cpu",
                 precision: str = "fp32") -> LearnedInpainter:
    """Builds the learned inpainter ``name`` from its shipped weights (or from ``weights``, a checkpoint file
    written by :func:`~torchworks.core.checkpoint.save_model` or by the training engine)."""
    import torchworks.inpainting.nets  # noqa: F401  (registers the generators)

    key = ALIASES.get(name, name)
    entry = SHIPPED[key]
    model = load_model(weights if weights is not None else weights_file(name), expect=entry["model"])
    pad = 2 ** int(getattr(model, "n_downsampling", 3))
    inp = LearnedInpainter(model, name, pad_mod=max(pad, 8), working_size=entry.get("working_size",
                                                                                    entry["train_size"]),
                           device=device, precision=precision)
    if "dilate" in entry:  # a model's own measured default (its card says why); else the class default
        inp.default_dilate = int(entry["dilate"])
        inp.default_feather = inp.default_dilate > 0
    return inp


def load_big_lama(weights: str | os.PathLike[str] | None = None, device: str = "cpu",
                  precision: str = "fp32") -> LearnedInpainter:
    """Official Big LaMa, 51 M, Places at 256 px; needs `torchworks weights import lama FILE` once.

    Builds it from ``weights``: a
    ``best.ckpt`` / ``big-lama.pt`` (read safely, nothing executed) or the safetensors file that
    ``torchworks weights import lama FILE`` wrote; without ``weights``, that imported file.

    Raises:
        FileNotFoundError: no weights given and none imported (the message says how to get them).
        CheckpointError: the file is not LaMa weights.
    """
    import torchworks.inpainting.nets  # noqa: F401
    from torchworks.inpainting.external import BIG_LAMA_URLS, imported_lama_path, load_lama_generator

    if weights is None:
        weights = imported_lama_path()
        if not Path(weights).is_file():
            raise FileNotFoundError(
                f"big_lama needs the official weights: download big-lama.pt ({BIG_LAMA_URLS['jit']}) or "
                f"big-lama.zip's models/best.ckpt, then run `torchworks weights import lama FILE` once "
                "(or pass --weights FILE)")
    path = Path(weights)
    model = load_model(path, expect="big_lama") if path.suffix == ".safetensors" else load_lama_generator(path)
    # LaMa works at any size that is a multiple of 8; the pipeline crops around holes in large photos
    return LearnedInpainter(model, "big_lama", pad_mod=8, working_size=None, device=device, precision=precision)


ICT_SHIPPED: dict[str, dict[str, Any]] = {
    "ict_scenes": {"prior": "ict_prior_scenes.safetensors", "upsampler": "ict_upsampler_scenes.safetensors",
                   "working_size": 256, "summary": "ICT-style transformer + FFC upsampler, natural scenes at 256 px; "
                   "pluralistic (seed picks the completion)"},
}
"""Pluralistic methods: a prior and an upsampler file each (registered when both ship)."""


def load_ict(prior: str | os.PathLike[str], upsampler: str | os.PathLike[str], seed: int = 0, top_k: int = 40,
             steps: int = 8, device: str = "cpu", precision: str | None = None, working_size: int = 256,
             name: str = "ict") -> Any:
    """An :class:`~torchworks.inpainting.ict.ICTInpainter` from an exported prior and upsampler.

    Raises:
        CheckpointError: a file that is not the expected kind of model.
    """
    import torchworks.inpainting.ict  # noqa: F401  (registers the prior and upsampler models)
    from torchworks.core.errors import CheckpointError
    from torchworks.inpainting.ict import AppearancePrior, ICTInpainter

    p, u = load_model(prior), load_model(upsampler)
    if not isinstance(p, AppearancePrior):
        raise CheckpointError(f"{prior} is not an ICT appearance prior ({type(p).__name__})")
    if getattr(u, "in_channels", None) != 7:
        raise CheckpointError(f"{upsampler} is not an ICT upsampler (needs 7 input channels)")
    inp = ICTInpainter(p, u, name=name, seed=seed, top_k=top_k, steps=steps, working_size=working_size)
    return inp.to(device, precision)


EXTERNAL = {"big_lama": load_big_lama}
"""Methods whose weights the user brings: registered (listed, offered in the UI) once imported into the cache,
and buildable by :func:`~torchworks.inpainting.api.get_inpainter` with ``weights=FILE`` before that."""


def _factory(name: str):
    def build(weights: str | None = None, device: str = "cpu", precision: str = "fp32") -> LearnedInpainter:
        return load_learned(name, weights, device, precision)

    build.__name__ = build.__qualname__ = name
    e = SHIPPED[ALIASES.get(name, name)]
    build.__doc__ = f"{e['summary']}. Model card: pretrained/{Path(e['file']).stem}.md."
    return build


def _ict_factory(name: str):
    entry = ICT_SHIPPED[name]

    def build(seed: int = 0, top_k: int = 40, steps: int = 8, device: str = "cpu",
              precision: str | None = None, progress: Any = None) -> Any:
        root = Path(os.environ.get("TORCHWORKS_PRETRAINED_DIR", PRETRAINED_DIR))
        inp = load_ict(root / entry["prior"], root / entry["upsampler"], seed, top_k, steps, device, precision,
                       entry["working_size"], name)
        inp.progress = progress  # callback(step, steps) after each transformer pass
        return inp

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{entry['summary']}. Model card: pretrained/{Path(entry['prior']).stem}.md."
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
    from torchworks.inpainting.external import imported_lama_path

    root = Path(os.environ.get("TORCHWORKS_PRETRAINED_DIR", PRETRAINED_DIR))
    for name, entry in ICT_SHIPPED.items():
        ships = (root / entry["prior"]).is_file() and (root / entry["upsampler"]).is_file()
        if name not in INPAINTERS.names() and ships:
            INPAINTERS.add(name, _ict_factory(name), kind="learned")

    for name, factory in EXTERNAL.items():  # listed once their weights are imported; usable with weights= anyway
        if name not in INPAINTERS.names() and imported_lama_path().is_file():
            INPAINTERS.add(name, factory, kind="learned")


_register()

__all__ = ["ALIASES", "EXTERNAL", "ICT_SHIPPED", "PRECISIONS", "PRETRAINED_DIR", "SHIPPED", "LearnedInpainter",
           "load_big_lama", "load_ict", "load_learned", "weights_file"]
