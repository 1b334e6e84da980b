"""Common interface of the CIFAR model zoo."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn


class ZooModel(nn.Module):
    """Base of every zoo model: one forward that optionally returns per-stage features.

    ``forward(x, return_features=False, preact=False)`` returns the logits (B, num_classes), or with
    ``return_features=True`` the pair ``(logits, feats)`` where ``feats = [f0, f1, ..., fn, pooled]``:

    * ``f0`` the stem output (after its ReLU),
    * ``f1..fn`` the stage outputs (B, C_j, H_j, W_j): post-ReLU by default, the pre-ReLU tensor with
      ``preact=True`` (what AB and OFD need); both come from the same forward pass,
    * ``pooled`` the (B, D) vector fed to the classifier (CRD, CC, RKD, PKT use it).

    ``preact="both"`` returns ``(logits, (post, pre))``, both lists from one pass through the module's own call
    (so a DDP wrapper and forward hooks, e.g. :class:`~torchworks.distill.taps.FeatureTaps`, see it).

    This is RepDistiller's ``is_feat`` layout with the order (logits, feats) instead of (feats, logits).
    Subclasses implement :meth:`_forward` and set ``stage_channels`` (channels of f0..fn and D).
    """

    stage_channels: list[int]

    def _forward(self, x: Tensor, want_features: bool) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Returns (logits, post-ReLU feats, pre-ReLU feats); the lists may be empty when not wanted."""
        raise NotImplementedError

    def forward(
        self, x: Tensor, return_features: bool = False, preact: bool | Literal["both"] = False
    ) -> Tensor | tuple[Tensor, Any]:
        """Args:
            x: images (B, 3, H, W), normalised float; the zoo is designed for 32x32 CIFAR inputs.
            return_features: also return the feature list.
            preact: return the pre-ReLU stage outputs instead of the post-ReLU ones; ``"both"``: the pair
                ``(post, pre)``.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: expected images (B, 3, H, W), got {tuple(x.shape)}")
        logits, post, pre = self._forward(x, return_features)
        if not return_features:
            return logits
        if preact == "both":
            return logits, (post, pre)
        return logits, (pre if preact else post)

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """BN layers whose outputs feed the ReLU at the ends of f1..fn (OFD's margins); one per stage."""
        raise NotImplementedError(f"{type(self).__name__} does not define BN-before-ReLU layers")

    def feature_modules(self) -> nn.ModuleList:
        """The modules that produce f0..fn (trained in the init stage of AB / FSP / FitNet-paper)."""
        raise NotImplementedError
