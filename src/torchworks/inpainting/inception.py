"""Inception-v3 as used for published FID (the TF 2015-12-05 graph), on a weights file the user supplies.

This is the network of pytorch-fid (and torch-fidelity), written here without torchvision. Module and parameter
names follow torchvision's ``Inception3`` with ``aux_logits=False`` and 1008 classes, so the pytorch-fid file
``pt_inception-2015-12-05-6726825d.pth`` loads strictly. What makes it the *FID* Inception rather than
torchvision's ImageNet model (pytorch-fid's ``FIDInceptionA/C/E_1/E_2``):

* the 3x3 average pools inside the A, C and first E blocks ignore the zero padding (``count_include_pad=False``,
  as TensorFlow's pooling does);
* the last block (``Mixed_7c``) pools its fourth branch with a 3x3 **max** pool;
* the weights come from the TensorFlow graph (1008 logits), not from torchvision's retrained model.

Features are the 2048-d global average pool after ``Mixed_7c`` ("pool3"). Inputs (B, 3, H, W) RGB in [0, 1] are
resized to 299 x 299 (bilinear, ``align_corners=False``, no antialiasing, as pytorch-fid) and mapped to [-1, 1].
FID is then :func:`~torchworks.inpainting.fid.frechet_distance` on these features; numbers are comparable to
pytorch-fid's, not to those of our EfficientNet-Lite0 proxy.

The weights cannot be downloaded here: pass the file (``path=`` / ``--inception-weights`` /
``$TORCHWORKS_INCEPTION_WEIGHTS``), or leave it in torch's hub cache where pytorch-fid stores it. A file with the
published name is checked against its SHA-256 (:data:`FID_INCEPTION`).

References:
    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016. Heusel et al., "GANs
    Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (FID).
    Reference code: mseitzer/pytorch-fid ``src/pytorch_fid/inception.py``; torchvision ``models/inception.py``.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from torchworks.core.checkpoint import load_weights
from torchworks.core.errors import CheckpointError
from torchworks.inpainting.lpips import KnownFile, check_known, find_weights, load_state_file

ENV_WEIGHTS = "TORCHWORKS_INCEPTION_WEIGHTS"
FID_INCEPTION = KnownFile(
    # pytorch-fid's name and torch-fidelity's (the same bytes)
    ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth"),
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", 95_628_359)
NUM_CLASSES = 1008  # the TF graph's softmax size
# torchvision's Inception3 has 27,161,264 parameters (its published num_params, aux head and 1000 classes); minus
# the aux head (3,326,696) and the 1000-way fc (2,049,000), plus a 1008-way fc (2,065,392):
NUM_PARAMS = 23_850_960
INPUT_SIZE = 299


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, TF's) -> ReLU; torchvision's ``BasicConv2d`` names (conv, bn)."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def tf_avg_pool3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that averages only the real (unpadded) neighbours, like TensorFlow's."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1; 224 + ``pool_features`` channels out."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(tf_avg_pool3(x))], 1)


class BlockB(nn.Module):
    """Grid reduction 35 -> 17: stride-2 3x3 | 1x1-3x3-3x3/2 | max-pool; 480 + ``cin`` channels out."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (``c7`` inner channels); 768 channels out."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, **row)
        self.branch7x7_3 = ConvBN(c7, 192, **col)
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, **col)
        self.branch7x7dbl_3 = ConvBN(c7, c7, **row)
        self.branch7x7dbl_4 = ConvBN(c7, c7, **col)
        self.branch7x7dbl_5 = ConvBN(c7, 192, **row)
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(tf_avg_pool3(x))], 1)


class BlockD(nn.Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max-pool; 512 + ``cin`` channels out."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs; 2048 channels out. ``pool="avg"`` (TF-style, ``Mixed_7b``) or
    ``"max"`` (``Mixed_7c`` of the FID graph) for the pooled branch."""

    def __init__(self, cin: int, pool: str = "avg") -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = tf_avg_pool3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(s), self.branch3x3_2b(s),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 (23.85 M parameters); :meth:`features` gives the (B, 2048) pool3 embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, "avg")
        self.Mixed_7c = BlockE(2048, "max")
        self.fc = nn.Linear(2048, NUM_CLASSES)

    @staticmethod
    def preprocess(x: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, 299, 299) in [-1, 1] (bilinear, no antialias, as pytorch-fid)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"Inception needs (B, 3, H, W) RGB images, got {tuple(x.shape)}")
        if resize:
            x = F.interpolate(x.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def features(self, x: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """Pool3 features of (B, 3, H, W) RGB in [0, 1]: (B, 2048). ``resize=False`` feeds the image as it is
        (at least 75 px; features then differ from the 299 px standard)."""
        x = self.preprocess(x, resize)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147) at 299 px
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)  # (B, 192, 35, 35)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)  # 35x35 -> 17x17 (6a) -> 8x8 (7a), 2048 channels at the end
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The graph's 1008 logits (index 0 is TF's background class); FID uses :meth:`features`."""
        return self.fc(self.features(x))


def load_fid_inception(path: str | os.PathLike[str] | None = None, verify: bool = True) -> FIDInceptionV3:
    """The FID Inception with pytorch-fid's weights, in eval mode with frozen parameters.

    Args:
        path: ``pt_inception-2015-12-05-6726825d.pth`` (or a ``.safetensors`` with the same tensors); default
            ``$TORCHWORKS_INCEPTION_WEIGHTS``, then torch's hub cache.
        verify: check the SHA-256 when the file carries the published name.

    Raises:
        WeightsNotFoundError: nothing given or found (the message gives the URL and SHA-256).
        CheckpointError: a file that is not this network (missing/unexpected keys, wrong shapes or hash).
    """
    p = find_weights(path, ENV_WEIGHTS, FID_INCEPTION, "Inception-FID", "--inception-weights")
    if verify:
        check_known(p, FID_INCEPTION)
    state = load_state_file(p)
    model = FIDInceptionV3()
    fc = state.get("fc.weight")
    if any(k.startswith("AuxLogits.") for k in state) or (fc is not None and fc.shape[0] != NUM_CLASSES):
        raise CheckpointError(f"{p} looks like torchvision's ImageNet Inception-v3 (aux head or a 1000-class fc), "
                              f"not the FID Inception; FID needs {FID_INCEPTION.describe()}")
    own = model.state_dict()
    for key, val in own.items():  # files saved before BatchNorm had this counter lack it; it is unused in eval
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = val
    load_weights(model, state, str(p))
    for q in model.parameters():
        q.requires_grad_(False)
    return model.eval()


@torch.inference_mode()
def extract_inception_features(model: FIDInceptionV3, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Pool3 features of (N, 3, H, W) RGB in [0, 1] images (resized to 299): (N, 2048) float64."""
    return torch.cat([model.features(chunk).double() for chunk in images.split(batch_size)])
