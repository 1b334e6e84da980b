"""torchworks: inpainting, distillation, geometry, sequence models and transformers on one PyTorch engine.

Importing the package is cheap: subpackages load when used (``torchworks.core``, ``torchworks.engine``, ...).
"""

__version__ = "0.1.0"
