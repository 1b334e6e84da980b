"""Position-wise feed-forward network of a Transformer block: two linear maps with a non-linearity between.

``FFN(x) = fc2(dropout(act(fc1(x))))`` applied to every position independently. Activations:

* ``"relu"``: the original Transformer (and ``torch.nn.TransformerEncoderLayer``'s default).
* ``"gelu"``: exact erf GELU (BERT, ViT).
* ``"gelu_tanh"``: the tanh approximation (GPT-2; HF ``gelu_new``); differs from exact GELU by up to ~5e-4.
* ``"swiglu"``: gated, ``fc2(silu(gate(x)) * fc1(x))`` (PaLM, LLaMA); one extra matrix, so its default hidden
  width is 2/3 of 4 * dim (rounded up to a multiple of 8) to keep the parameter count of the 4 * dim FFN.

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.3.
    Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)", 2016.
    Shazeer, "GLU Variants Improve Transformer", 2020.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError

__all__ = ["ACTIVATIONS", "FeedForward"]

ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "swiglu")


def _default_hidden(dim: int, activation: str) -> int:
    if activation == "swiglu":
        return -(-(8 * dim // 3) // 8) * 8  # ceil(8 dim / 3) to a multiple of 8
    return 4 * dim


class FeedForward(nn.Module):
    """Position-wise feed-forward network.

    Args:
        dim: Input and output width C.
        hidden_dim: Inner width; default 4 * C (SwiGLU: about 8/3 * C, see module docstring).
        activation: One of ``"relu"``, ``"gelu"``, ``"gelu_tanh"``, ``"swiglu"``.
        dropout: Dropout on the hidden activations (training mode only).
        bias: Add biases to the linear maps (LLaMA-style SwiGLU uses ``bias=False``).
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int | None = None,
        activation: str = "gelu",
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        hidden_dim = hidden_dim or _default_hidden(dim, activation)
        self.dim, self.hidden_dim, self.activation = dim, hidden_dim, activation
        self.fc1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.gate = nn.Linear(dim, hidden_dim, bias=bias) if activation == "swiglu" else None
        self.fc2 = nn.Linear(hidden_dim, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"

    def forward(self, x: Tensor) -> Tensor:
        """Apply the FFN to every position.

        Args:
            x: (..., C) float, typically (B, T, C).

        Returns:
            Tensor like x.
        """
        if x.shape[-1] != self.dim:
            raise ShapeError(f"x must end in C={self.dim}; got {tuple(x.shape)}")
        h = self.fc1(x)  # (..., hidden)
        if self.activation == "relu":
            h = F.relu(h)
        elif self.activation == "gelu":
            h = F.gelu(h)
        elif self.activation == "gelu_tanh":
            h = F.gelu(h, approximate="tanh")
        else:
            h = F.silu(self.gate(x)) * h
        return self.fc2(self.dropout(h))
