"""LPIPS, the learned perceptual distance, on a backbone file the user supplies (nothing is downloaded).

``d(x, y) = sum_l mean_hw( w_l . (f_l(x) - f_l(y))^2 )``, where ``f_l`` are the activations of five ReLU layers of an
ImageNet AlexNet (or VGG16), each divided by its channel-wise L2 norm at every pixel, and ``w_l >= 0`` are the
learned 1x1 "lin" weights (one per channel) fitted to human 2AFC judgements. Identical images give exactly 0.

Two weight files are needed:

* **the backbone**, torchvision's ImageNet classifier (our modules use its ``features.N.weight`` names, so its
  ``.pth`` loads as is; the ``classifier.*`` tensors in it are ignored). It cannot be downloaded here: pass the file
  (``path=`` / ``--lpips-backbone`` / ``$TORCHWORKS_LPIPS_BACKBONE``). A file with torchvision's name is checked
  against its known SHA-256 (:data:`BACKBONES`); torch's hub cache is searched for that name too.
* **the lin heads**, 6-11 KB, shipped inside the PyPI wheel ``lpips`` 0.1.4 (BSD-2-Clause) as
  ``lpips/weights/v0.1/{alex,vgg}.pth``. ``pip install --no-deps lpips==0.1.4`` puts them on disk; we find them with
  ``importlib`` **without importing** the package (it imports torchvision). ``$TORCHWORKS_LPIPS_LIN`` or ``lin=``
  overrides.

Images are (B, 3, H, W) RGB in [0, 1] (the package convention); the reference's ``normalize=True`` mapping to
[-1, 1] is applied here, then its "scaling layer" (``(x - shift) / scale``, constants below, which turn [-1, 1]
input into ImageNet mean/std normalisation). This is LPIPS v0.1, the version LaMa and most papers report.

References:
    Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a Perceptual
    Metric", CVPR 2018. Reference code: richzhang/PerceptualSimilarity (``lpips/lpips.py``: ``ScalingLayer``,
    ``normalize_tensor`` with eps 1e-10, ``spatial_average``; ``pretrained_networks.py``: the tapped layers).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from torchworks.core.checkpoint import load_weights
from torchworks.core.errors import CheckpointError, TorchworksError

ENV_BACKBONE = "TORCHWORKS_LPIPS_BACKBONE"
ENV_LIN = "TORCHWORKS_LPIPS_LIN"
LPIPS_PACKAGE = "lpips"
# The reference ScalingLayer: maps [-1, 1] input to ImageNet normalisation ((x+1)/2 - mean) / std, rounded.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # the reference's normalize_tensor epsilon, added to the norm (not under the square root)


@dataclass(frozen=True)
class KnownFile:
    """A published weights file: the names it goes by, where it comes from, its SHA-256 and size in bytes."""

    names: tuple[str, ...]
    url: str
    sha256: str
    size: int

    def describe(self) -> str:
        return f"{self.names[0]} from {self.url} (sha256 {self.sha256}, {self.size:,} bytes)"


class WeightsNotFoundError(TorchworksError, FileNotFoundError):
    """A metric needs a weights file that was not given and was not found; the message says where to get it."""


# torchvision's ImageNet classifiers. The 8 hex digits in the name are the SHA-256 prefix torchvision checks; the
# full digests are the ones published for these exact files (sizes agree).
BACKBONES = {
    "alex": KnownFile(("alexnet-owt-7be5be79.pth",), "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                      "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", 244_408_911),
    "vgg": KnownFile(("vgg16-397923af.pth",), "https://download.pytorch.org/models/vgg16-397923af.pth",
                     "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", 553_433_881),
}
# SHA-256 of lpips 0.1.4's lpips/weights/v0.1/<net>.pth (checked when read from the installed wheel).
LIN_SHA256 = {"alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
              "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"}

# torchvision ``features`` layouts: ("C", in, out, kernel, stride, pad), "R" = ReLU, ("M", kernel, stride) max-pool.
# Only the layers up to the last tapped ReLU are built; indices match torchvision so its keys load unchanged.
_ALEX = [("C", 3, 64, 11, 4, 2), "R", ("M", 3, 2), ("C", 64, 192, 5, 1, 2), "R", ("M", 3, 2),
         ("C", 192, 384, 3, 1, 1), "R", ("C", 384, 256, 3, 1, 1), "R", ("C", 256, 256, 3, 1, 1), "R"]


def _vgg16_layout() -> list:
    layers: list = []
    cin = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(("M", 2, 2))
        else:
            layers += [("C", cin, v, 3, 1, 1), "R"]
            cin = v
    return layers


NETS = {  # layout, indices of the tapped ReLUs (relu1..relu5 / relu1_2..relu5_3), their channels
    "alex": (_ALEX, (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": (_vgg16_layout(), (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}


class Backbone(nn.Module):
    """torchvision's ``features`` stack (same module indices) that returns the five tapped ReLU outputs."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown LPIPS network {net!r}; known: {', '.join(NETS)}")
        layout, self.taps, _ = NETS[net]
        mods: list[nn.Module] = []
        for spec in layout:
            if spec == "R":
                mods.append(nn.ReLU())  # not in place: tapped outputs must survive the next layer
            elif spec[0] == "M":
                mods.append(nn.MaxPool2d(spec[1], spec[2]))
            else:
                mods.append(nn.Conv2d(spec[1], spec[2], spec[3], stride=spec[4], padding=spec[5]))
        self.features = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


def unit_normalize(feat: torch.Tensor) -> torch.Tensor:
    """Divides each pixel's channel vector by its L2 norm (+1e-10): (B, C, H, W) -> same shape."""
    return feat / (feat.pow(2).sum(1, keepdim=True).sqrt() + EPS)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance; build with :func:`load_lpips` to get real weights (a bare instance is random).

    Args:
        net: ``"alex"`` (the paper's default, recommended as a metric) or ``"vgg"`` (VGG16).
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        self.net_name = net
        self.net = Backbone(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in NETS[net][2])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.min_size = 31 if net == "alex" else 16  # smallest side that still reaches the fifth tap

    def forward(self, x: torch.Tensor, y: torch.Tensor, per_layer: bool = False) -> torch.Tensor:
        """Distance per image pair.

        Args:
            x, y: (B, 3, H, W) float RGB in [0, 1], H, W >= 31 (alex) or 16 (vgg).
            per_layer: also return the five layer terms.

        Returns:
            (B,) distances (>= 0, 0 for identical images); with ``per_layer`` a (B, 5) tensor whose rows sum to them.
        """
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs two (B, 3, H, W) images of equal shape, got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"LPIPS-{self.net_name} needs images of at least {self.min_size} px, got "
                             f"{tuple(x.shape[-2:])}")
        fx, fy = self.net(self._prep(x)), self.net(self._prep(y))
        terms = [lin((unit_normalize(a) - unit_normalize(b)).pow(2)).mean((1, 2, 3))
                 for lin, a, b in zip(self.lins, fx, fy, strict=True)]  # each (B,): lin gives 1 channel
        layers = torch.stack(terms, 1)  # (B, 5)
        return layers if per_layer else layers.sum(1)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return ((2 * x - 1) - self.shift) / self.scale

    def load_backbone(self, state: Mapping[str, torch.Tensor], source: str = "backbone") -> None:
        """Loads a torchvision classifier state dict (``features.*`` used, ``classifier.*`` ignored), strictly."""
        other = [k for k in state if not k.startswith(("features.", "classifier."))]
        if other:
            raise CheckpointError(f"{source} is not a torchvision {self.net_name} state dict (unexpected key "
                                  f"{other[0]!r})")
        feats = {k: v for k, v in state.items() if k.startswith("features.")}
        load_weights(self.net, feats, source)

    def load_lin(self, state: Mapping[str, torch.Tensor], source: str = "lin weights") -> None:
        """Loads the reference's ``lin{i}.model.{j}.weight`` (1, C, 1, 1) tensors; they must be >= 0."""
        found: dict[int, torch.Tensor] = {}
        for key, val in state.items():
            m = re.fullmatch(r"lin(\d+)\.model\.\d+\.weight", key)
            if m is None:
                raise CheckpointError(f"{source}: unexpected key {key!r} (expected lin<i>.model.<j>.weight)")
            found[int(m.group(1))] = val
        want = [tuple(lin.weight.shape) for lin in self.lins]
        got = [tuple(found[i].shape) if i in found else None for i in range(len(want))]
        if got != want or len(found) != len(want):
            raise CheckpointError(f"{source} does not fit LPIPS-{self.net_name}: lin shapes {got}, expected {want}")
        if any(bool((w < 0).any()) for w in found.values()):
            raise CheckpointError(f"{source}: LPIPS lin weights must be non-negative")
        with torch.no_grad():
            for i, lin in enumerate(self.lins):
                lin.weight.copy_(found[i])


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (a 0.5 GB backbone hashes in about a second)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_known(path: Path, known: KnownFile) -> None:
    """Raises CheckpointError when ``path`` carries a published name but not its SHA-256 (other names pass)."""
    if path.name in known.names:
        digest = sha256_file(path)
        if digest != known.sha256:
            raise CheckpointError(f"{path}: sha256 {digest} does not match the published {known.sha256} of "
                                  f"{path.name} (truncated or altered download?)")


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` from a ``.safetensors`` file or a ``.pth`` (``torch.load(weights_only=True)``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling/format errors come in many types; the caller needs one message
        raise CheckpointError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return dict(state)


def find_weights(path: str | os.PathLike[str] | None, env: str, known: KnownFile, what: str,
                 option: str) -> Path:
    """``path``, else ``$env``, else the published file name in torch's hub cache; else a clear error."""
    if path is None and os.environ.get(env):
        path = os.environ[env]
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"no {what} file at {p}")
        return p
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for name in known.names:
        if (hub / name).is_file():
            return hub / name
    raise WeightsNotFoundError(f"{what} needs {known.describe()}; nothing is downloaded here: fetch it yourself and "
                               f"pass it with {option} PATH or ${env} (also searched: {hub})")


def backbone_path(net: str = "alex", path: str | os.PathLike[str] | None = None) -> Path:
    """The backbone file of LPIPS-``net``: ``path``, ``$TORCHWORKS_LPIPS_BACKBONE``, or torch's hub cache."""
    if net not in BACKBONES:
        raise ValueError(f"unknown LPIPS network {net!r}; known: {', '.join(BACKBONES)}")
    return find_weights(path, ENV_BACKBONE, BACKBONES[net], f"LPIPS-{net} (ImageNet {net} backbone)",
                        "--lpips-backbone")


def lin_path(net: str = "alex", path: str | os.PathLike[str] | None = None) -> Path:
    """The v0.1 lin weights: ``path``, ``$TORCHWORKS_LPIPS_LIN``, or the installed ``lpips`` wheel (not imported)."""
    if path is None and os.environ.get(ENV_LIN):
        path = os.environ[ENV_LIN]
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"no LPIPS lin weights file at {p}")
        return p
    spec = importlib.util.find_spec(LPIPS_PACKAGE)  # locates the package on sys.path; does not run its __init__
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        p = Path(folder) / "weights" / "v0.1" / f"{net}.pth"
        if p.is_file():
            return p
    raise WeightsNotFoundError(f"LPIPS lin weights for {net!r} not found (package {LPIPS_PACKAGE!r} searched in "
                               f"{folders or 'sys.path'}): `pip install --no-deps lpips==0.1.4` (only its weight "
                               f"files are used), or set ${ENV_LIN} to a lin .pth")


def infer_net(state: Mapping[str, torch.Tensor]) -> str:
    """``"alex"`` or ``"vgg"`` from the first conv of a torchvision state dict (11x11 vs 3x3 kernels)."""
    w = state.get("features.0.weight")
    shape = tuple(w.shape) if w is not None else None
    for net, (layout, _, _) in NETS.items():
        c = layout[0]
        if shape == (c[2], c[1], c[3], c[3]):
            return net
    raise CheckpointError(f"not an AlexNet or VGG16 torchvision state dict (features.0.weight {shape})")


def load_lpips(backbone: str | os.PathLike[str] | None = None, lin: str | os.PathLike[str] | None = None,
               net: str | None = None, verify: bool = True) -> LPIPS:
    """LPIPS with real weights, in eval mode with frozen parameters.

    Args:
        backbone: torchvision ``alexnet``/``vgg16`` ``.pth`` or ``.safetensors`` (default
            ``$TORCHWORKS_LPIPS_BACKBONE``, then torch's hub cache).
        lin: lin weights file (default ``$TORCHWORKS_LPIPS_LIN``, then the ``lpips`` wheel's v0.1 file).
        net: ``"alex"``/``"vgg"``; default: inferred from the backbone file (``"alex"`` when searching).
        verify: check SHA-256 of files with a published name (backbones) and of the wheel's lin files.

    Raises:
        WeightsNotFoundError: no backbone given or found (the message gives torchvision's URL and hash).
        CheckpointError: a file that does not fit (keys, shapes, hash, negative lin weights).
    """
    path = backbone_path(net or "alex", backbone)
    if verify:
        for known in BACKBONES.values():
            check_known(path, known)
    state = load_state_file(path)
    net = net or infer_net(state)
    model = LPIPS(net)
    model.load_backbone(state, str(path))
    lp = lin_path(net, lin)
    if verify and lin is None and not os.environ.get(ENV_LIN) and sha256_file(lp) != LIN_SHA256[net]:
        raise CheckpointError(f"{lp}: sha256 differs from lpips 0.1.4's {net}.pth ({LIN_SHA256[net]})")
    model.load_lin(load_state_file(lp), str(lp))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@torch.inference_mode()
def lpips_distance(model: LPIPS, pred: torch.Tensor, target: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """:class:`LPIPS` in chunks without autograd: (N, 3, H, W) pairs in [0, 1] -> (N,) float64."""
    return torch.cat([model(a.float(), b.float()).double()
                      for a, b in zip(pred.split(batch_size), target.split(batch_size), strict=True)])
