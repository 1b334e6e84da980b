"""Learned inpainting networks; importing this package registers them in ``MODELS``.

Generators take (B, 4, H, W) = RGB * (1 - mask) concatenated with the mask (1 = hole), images in [0, 1], and
return RGB (B, 3, H, W) in [0, 1]:

* LaMa (:mod:`.lama`): ``lama_fourier``, ``big_lama``, ``lama_small``, ``lama_tiny``;
* ReLaMa (:mod:`.relama`, LaMa + per-branch CBAM): ``relama_fourier``, ``relama_big``, ``relama_small``,
  ``relama_tiny``, each with ``variant="paper"`` (default) or ``"seed"``;
* plain-conv control (:mod:`.plainconv`, LaMa's layout with 3x3 ResNet blocks at LaMa's parameter count):
  ``plainconv_fourier``, ``plainconv_big``, ``plainconv_small``, ``plainconv_tiny``;
* Context Encoder (:mod:`.context_encoder`): ``context_encoder_64``, ``context_encoder_128``.

Discriminators (:mod:`.discriminator`) take RGB (B, 3, H, W) and return ``(logits, features)``:
``lama_discriminator`` (+ ``_small``, ``_tiny``), ``ce_discriminator_64``, ``ce_discriminator_128``.
"""

from torchworks.inpainting.nets.context_encoder import ChannelWiseFC, ContextEncoder
from torchworks.inpainting.nets.discriminator import DCGANDiscriminator, NLayerDiscriminator
from torchworks.inpainting.nets.lama import LAMA_VARIANTS, FFCResNetGenerator
from torchworks.inpainting.nets.plainconv import PLAINCONV_PAIRS, PlainConvResNetGenerator, matched_hidden
from torchworks.inpainting.nets.relama import RELAMA_PAIRS, count_parameters, format_overhead, relama_overhead

__all__ = [
    "LAMA_VARIANTS",
    "PLAINCONV_PAIRS",
    "RELAMA_PAIRS",
    "ChannelWiseFC",
    "ContextEncoder",
    "DCGANDiscriminator",
    "FFCResNetGenerator",
    "NLayerDiscriminator",
    "PlainConvResNetGenerator",
    "count_parameters",
    "format_overhead",
    "matched_hidden",
    "relama_overhead",
]
