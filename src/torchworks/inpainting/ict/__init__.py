"""ICT-style transformer inpainting (Wan et al., ICCV 2021): a palette-token appearance prior sampled by a
bidirectional transformer, upsampled by a LaMa-style generator. See :mod:`.inpainter`."""

from torchworks.inpainting.ict.inpainter import ICTInpainter, prior_image
from torchworks.inpainting.ict.palette import dequantize, downsample, fit_palette, hole_tokens, quantize
from torchworks.inpainting.ict.prior import PRIOR_VARIANTS, AppearancePrior, masked_token_loss, sample_tokens

__all__ = ["PRIOR_VARIANTS", "AppearancePrior", "ICTInpainter", "dequantize", "downsample", "fit_palette",
           "hole_tokens", "masked_token_loss", "prior_image", "quantize", "sample_tokens"]
