"""Inpainting: classical methods, LaMa / ReLaMa / Context Encoder, losses, metrics, ``inpaint()``.

Importing this package registers its methods in ``INPAINTERS`` (and LaMa's mask generators in ``MASKS``); it
needs neither OpenCV nor PIL, which are imported only by the methods and IO helpers that use them.

Example::

    from torchworks.inpainting import inpaint
    out = inpaint(photo, mask, method="telea", dilate=3)   # photo: uint8 HxWx3, mask: HxW, white = hole
"""

from torchworks.data import masks as _masks  # noqa: F401  (registers the mask generators)
from torchworks.inpainting import classical as _classical  # noqa: F401  (registers the methods)
from torchworks.inpainting.api import NonBinaryMaskWarning, get_inpainter, inpaint
from torchworks.inpainting.base import Inpainter, MaskError, MissingExtraError, blend_weights, dilate_mask
from torchworks.inpainting.pipeline import STRATEGIES, inpaint_native

__all__ = [
    "STRATEGIES",
    "Inpainter",
    "MaskError",
    "MissingExtraError",
    "NonBinaryMaskWarning",
    "blend_weights",
    "dilate_mask",
    "get_inpainter",
    "inpaint",
    "inpaint_native",
]

from torchworks.inpainting import learned as _learned  # noqa: E402,F401  (registers shipped learned inpainters)
