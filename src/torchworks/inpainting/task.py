"""GAN training of inpainting generators through the shared engine: ``inpaint_gan`` (LaMa) and ``context_encoder``.

Both tasks use manual optimisation: per batch one generator step (optimiser 0) then one discriminator step
(optimiser 1) on the same batch, as LaMa's two-optimiser Lightning module does. The discriminator judges the
generator's prediction detached from the generator step (LaMa re-runs the generator for its discriminator step;
reusing the prediction saves a forward pass and is the usual Lightning GAN pattern).

Data: photos from a folder (e.g. ``dataset_path("celebahq_samples")``), decoded once and resized to
``load_size``; training samples are random square crops (scale and position) resized to ``crop`` with random
horizontal flips, and a hole mask drawn from a ``MASKS`` generator at ``mask_size`` (LaMa's masks are specified in
256 px units) and resized to ``crop``; every random choice of sample ``i`` comes from the stream ``(seed, i)``, so
batches are reproducible and resume is exact. The last ``holdout`` images (sorted by path) are never trained on:
they are validated with fixed masks (stream ``(val_seed, i)``) and reported as hole PSNR/L1 and SSIM of the
composite.

References:
    LaMa, ``saicinpainting/training/trainers/default.py`` (``DefaultInpaintingTrainingModule``) and
    ``configs/training/lama-fourier.yaml``; Pathak et al., Context Encoders, CVPR 2016.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from torchworks.core.checkpoint import build_model
from torchworks.core.registry import MASKS, TASKS
from torchworks.data.masks import scaled_mask
from torchworks.engine.task import Task
from torchworks.inpainting import losses as L
from torchworks.inpainting import metrics

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _photo_dir(entry: str | Path) -> Path:
    """A folder of photos: an existing path, ``samples/photos`` (shipped in the package), ``NAME[/SUB]`` of a
    registered data set, or a shared-data folder.

    Raises:
        FileNotFoundError: none of those; the message says how to fetch a registered data set.
    """
    from torchworks.data import dataset_path
    from torchworks.data.locate import shared_data_dirs

    if Path(entry).exists():
        return Path(entry)
    name, _, sub = str(entry).partition("/")
    if name == "samples":  # photos shipped inside the package (data/sample_data), e.g. "samples/photos"
        from torchworks.data.samples import SAMPLES_DIR

        return SAMPLES_DIR / sub
    from torchworks.core.errors import UnknownNameError

    try:
        base = Path(dataset_path(name))  # a registered set that is absent raises, naming its download command
    except UnknownNameError:
        hits = [d / name for d in shared_data_dirs() if (d / name).is_dir()]
        if not hits:
            raise FileNotFoundError(f"no photo folder or data set called {entry!r} (a registered data set is fetched "
                                    f"with `torchworks data path NAME --download`)") from None
        base = hits[0]
    return base / sub if sub else base


def list_photos(root: str | Path | list[str], subdirs: list[str] | None = None) -> list[Path]:
    """Image files under ``root`` (or under its ``subdirs``), recursively, sorted by path.

    ``root`` is a folder, a data-set name (``"bsds500"``, ``"bsds500/train"``), a folder of the shared data
    directory, or a list of those (their files are concatenated in list order, each list sorted by path).
    """
    if isinstance(root, (list, tuple)):
        return [f for r in root for f in list_photos(r, subdirs)]
    base = _photo_dir(root)
    dirs = [base / s for s in subdirs] if subdirs else [base]
    files = sorted(p for d in dirs for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images under {[str(d) for d in dirs]}")
    return files


def load_photo(path: Path, size: int, square: bool = True) -> np.ndarray:
    """uint8 RGB photo, area-resized (JPEG decoded at reduced scale when that stays >= ``size``).

    ``square=True``: the centre square at (size, size, 3). ``square=False``: the whole photo with its short side
    resized to ``size`` (aspect kept), so random crops can come from anywhere in it.
    """
    import cv2

    head = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if head is None:
        raise FileNotFoundError(f"cannot read image {path}")
    short = min(head.shape[:2])
    flag = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}
    for f in (8, 4, 2):
        if short // f >= size:
            head = cv2.imread(str(path), flag[f])
            break
    if head.ndim == 2:
        head = cv2.cvtColor(head, cv2.COLOR_GRAY2BGR)
    img = cv2.cvtColor(np.ascontiguousarray(head[..., :3]), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = min(h, w)
    if square:
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    out = (max(size, round(w * size / s)), max(size, round(h * size / s)))
    return cv2.resize(img, out, interpolation=cv2.INTER_AREA)


class PhotoCrops(Dataset):
    """(image (3, S, S) float in [0, 1], mask (1, S, S) {0, 1}, 1 = hole) pairs from in-memory photos.

    Args:
        photos: (H, W, 3) uint8 arrays of side ``load_size``.
        crop: output side S.
        masks: a ``MASKS`` generator; ``mask_size`` the side it draws at.
        seed: base of the per-sample random streams ``(seed, i)``.
        train: random crops and flips over ``repeat`` passes; otherwise the full photo resized, no flip.
    """

    def __init__(self, photos: list[np.ndarray], crop: int, masks: Any, mask_size: int, seed: int, train: bool,
                 repeat: int = 1) -> None:
        self.photos, self.crop, self.masks, self.mask_size = photos, crop, masks, mask_size
        self.seed, self.train, self.repeat = seed, train, repeat if train else 1

    def __len__(self) -> int:
        return len(self.photos) * self.repeat

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        import cv2

        img = self.photos[i % len(self.photos)]
        rng = np.random.default_rng((self.seed, i))
        if self.train:
            h, w = img.shape[:2]
            side = int(rng.integers(self.crop, min(h, w) + 1))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            img = img[y:y + side, x:x + side]
            if rng.random() < 0.5:
                img = img[:, ::-1]
        else:  # validation: the centre square of a photo stored with its aspect
            h, w = img.shape[:2]
            side = min(h, w)
            img = img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        if img.shape[0] != self.crop:
            img = cv2.resize(np.ascontiguousarray(img), (self.crop, self.crop), interpolation=cv2.INTER_AREA)
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0
        return image, scaled_mask(self.masks, self.crop, self.mask_size, (self.seed, i, 1))


@dataclass
class PhotoDataConfig:
    """Where the photos and hole masks of an inpainting task come from (shared by every inpainting task).

    Attributes:
        data: a folder of photos, a data-set name (``"bsds500/train"``), a shared-data folder, or a list of
            those; ``subdirs`` restricts each.
        val_data: photos (same forms) used for validation instead of the last ``holdout`` of ``data``; when it
            is set, every photo of ``data`` trains.
        keep_aspect: store photos with their short side at ``load_size`` (aspect kept) so training crops come
            from the whole photo; validation takes the centre square. False: centre squares only.
        limit: use only the first N photos (before the hold-out split is taken from the end).
        holdout: the last N photos are validation/test only.
        crop: training and validation side; ``load_size``: side photos are stored at (crops take 1x..load/crop).
        repeat: training samples per photo per epoch (each with its own crop and mask).
        train_masks, val_masks: ``MASKS`` names, drawn at ``mask_size`` px and resized to ``crop``.
        seed, val_seed: bases of the per-sample random streams.
    """

    data: str | list[str] = "celebahq_samples"
    subdirs: list[str] | None = None
    val_data: str | list[str] | None = None
    keep_aspect: bool = False
    limit: int | None = None
    holdout: int = 8
    crop: int = 64
    load_size: int = 80
    repeat: int = 1000
    train_masks: str = "lama_train_large"
    val_masks: str = "medium_256"
    mask_size: int = 256
    seed: int = 0
    val_seed: int = 1234

    def __post_init__(self) -> None:
        if self.crop < 8 or self.load_size < self.crop:
            raise ValueError(f"need 8 <= crop <= load_size, got crop={self.crop}, load_size={self.load_size}")
        if self.holdout < 0 or self.repeat < 1:
            raise ValueError(f"holdout must be >= 0 and repeat >= 1, got {self.holdout}, {self.repeat}")


class PhotoSplit:
    """The decoded training and validation photos of a :class:`PhotoDataConfig`, loaded once on first use."""

    def __init__(self, cfg: PhotoDataConfig) -> None:
        self.cfg = cfg
        self._photos: tuple[list[np.ndarray], list[np.ndarray]] | None = None

    def photos(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if self._photos is None:
            c = self.cfg
            files = list_photos(c.data, c.subdirs)[: c.limit]
            square = not c.keep_aspect
            if c.val_data is not None:
                train = [load_photo(p, c.load_size, square) for p in files]
                val = [load_photo(p, c.load_size, square) for p in list_photos(c.val_data)]
                self._photos = train, val
                return self._photos
            if len(files) <= c.holdout:
                raise ValueError(f"{len(files)} photos in {c.data!r}, need more than holdout={c.holdout}")
            photos = [load_photo(p, c.load_size, square) for p in files]
            cut = len(photos) - c.holdout
            self._photos = photos[:cut], photos[cut:]
        return self._photos

    def train(self) -> Dataset:
        c = self.cfg
        return PhotoCrops(self.photos()[0], c.crop, MASKS.build(c.train_masks), c.mask_size, c.seed, True, c.repeat)

    def val(self) -> Dataset | None:
        c = self.cfg
        held = self.photos()[1]
        return PhotoCrops(held, c.crop, MASKS.build(c.val_masks), c.mask_size, c.val_seed, False) if held else None


def warm_start(generator: torch.nn.Module, discriminator: torch.nn.Module | None, path: str | Path) -> None:
    """Loads trained weights into ``generator`` (and ``discriminator``, when ``path`` is an ``inpaint_gan`` training
    checkpoint) in place; see ``InpaintTaskConfig.init_from``. From a run with a weight average (``ema``) the
    generator gets the average.

    Raises:
        FileNotFoundError, CheckpointError: no such file, not a torchworks checkpoint, or weights that do not fit
            (other than by extra input channels).
    """
    from torchworks.core.checkpoint import load_checkpoint, load_weights
    from torchworks.core.errors import CheckpointError

    state = load_checkpoint(path)
    task = state.get("task")
    if isinstance(task, dict) and any(k.startswith("generator.") for k in task):
        parts = {name: {k[len(name) + 1:]: v for k, v in task.items() if k.startswith(name + ".")}
                 for name in ("generator", "discriminator")}
        ema = {k[len("generator_ema."):]: v for k, v in task.items() if k.startswith("generator_ema.")}
        if ema:  # a run that kept a weight average: that is the generator it evaluates and exports
            parts["generator"] = ema
    elif isinstance(state.get("model"), dict):
        parts = {"generator": state["model"], "discriminator": {}}
    else:
        raise CheckpointError(f"{path}: neither an inpaint_gan training checkpoint nor an exported generator")
    for name, module in (("generator", generator), ("discriminator", discriminator)):
        weights = parts[name]
        if module is None or not weights:
            continue
        own, fitted = module.state_dict(), dict(weights)
        for key, value in weights.items():
            mine = own.get(key)
            if (mine is not None and value.dim() >= 2 and mine.dim() == value.dim() and mine.shape[1] > value.shape[1]
                    and mine.shape[:1] + mine.shape[2:] == value.shape[:1] + value.shape[2:]):
                wide = torch.zeros_like(mine)  # more input channels here: the new ones start at zero
                wide[:, :value.shape[1]] = value
                fitted[key] = wide
        load_weights(module, fitted, source=f"{path} ({name})")


@dataclass
class InpaintTaskConfig(PhotoDataConfig):
    """Settings of the inpainting GAN tasks (defaults: LaMa's recipe on 64 px face crops); the data fields are
    :class:`PhotoDataConfig`'s.

    Attributes:
        objective: ``"lama"`` (L1-known + NS-adversarial with R1 and mask-as-fake-target + feature matching +
            perceptual) or ``"context_encoder"`` (hole L2 * ``rec`` + NS-adversarial * ``adversarial``).
        generator, generator_args: registered generator and overrides; ``discriminator``, ``discriminator_args``
            likewise (a ``(logits, features)`` discriminator).
        l1_known, l1_missing, adversarial, r1, feature_matching, perceptual: LaMa loss weights (10, 0, 10,
            0.001, 100, 30); the perceptual term is skipped with a logged note when its weights are missing.
        rec: Context Encoder's reconstruction weight (0.999; its adversarial weight is 0.001).
        lr_g, lr_d, betas: Adam settings (LaMa: 1e-3, 1e-4, (0.9, 0.999)).
        prior: an exported ICT appearance prior (``ict_prior_*`` model file): the generator then also gets the
            photo's palette image as 3 more input channels (ICT's guided upsampler; the generator needs
            ``in_channels: 7``). In training the prior is the ground truth quantized to the prior's palette, as
            ICT trains its upsampler; ``prior_noise`` of the hole tokens are swapped for one of their 4 nearest
            palette colours to mimic the transformer's errors (ICT's ``prior_random_degree``).
        init_from: start from trained weights instead of random ones: a training checkpoint of an ``inpaint_gan``
            run (generator and discriminator) or an exported generator file. Weights that have more input
            channels here (an ICT upsampler started from a LaMa generator: 7 inputs instead of 4) keep the trained
            ones for the first channels and start at zero for the others, so the started model computes exactly
            what the trained one did until it learns to use the new inputs. A resumed run ignores it.
        ema: decay of an exponential moving average of the generator's weights, updated after every generator
            step (0: off). Validation, evaluation and export then use the average (``generator_ema``), with its
            batch-norm statistics recomputed (:meth:`InpaintGANTask.recalibrate_generator`). The decay warms up
            as min(ema, (1 + n) / (10 + n)) after n updates, so an average started late in a run (a resumed
            checkpoint without one starts it from the current weights) follows them at first. With batch 8 and
            LaMa's learning rate the weights wander between checkpoints: on 32 held-out photos the mean of the
            LaMa's weights at steps 1600, 2000 and 2200 scored 0.3-0.4 dB above the best of the three alone.
    """

    objective: Literal["lama", "context_encoder"] = "lama"
    generator: str = "lama_tiny"
    generator_args: dict[str, Any] = field(default_factory=dict)
    discriminator: str = "lama_discriminator_tiny"
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    l1_known: float = 10.0
    l1_missing: float = 0.0
    adversarial: float = 10.0
    r1: float = 0.001
    feature_matching: float = 100.0
    perceptual: float = 30.0
    rec: float = 0.999
    lr_g: float = 1e-3
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    prior: str | None = None
    prior_noise: float = 0.1
    init_from: str | None = None
    ema: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError(f"learning rates must be positive, got {self.lr_g}, {self.lr_d}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        if not 0.0 <= self.prior_noise <= 1.0:
            raise ValueError(f"prior_noise must be in [0, 1], got {self.prior_noise}")
        self.betas = tuple(self.betas)


class InpaintGANTask(Task):
    """Generator + discriminator trained with LaMa's or Context Encoder's objective (see module docstring)."""

    manual_optimization = True
    monitor = "val/l1_hole"
    monitor_mode = "min"

    def __init__(self, cfg: InpaintTaskConfig, data_dir: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.generator = build_model(cfg.generator, **cfg.generator_args)
        self.discriminator = build_model(cfg.discriminator, **cfg.discriminator_args)
        self.perceptual = L.build_perceptual(cfg.perceptual) if cfg.objective == "lama" else None
        self.photos = PhotoSplit(cfg)
        self.prior_palette: torch.Tensor | None = None
        if cfg.prior is not None:
            from torchworks.core.checkpoint import load_model

            prior = load_model(cfg.prior)
            if not hasattr(prior, "palette"):
                raise ValueError(f"{cfg.prior} is not an ICT appearance prior (no palette)")
            self.prior_palette, self.prior_size = prior.palette.detach().float().clone(), int(prior.size)
            d2 = torch.cdist(self.prior_palette, self.prior_palette)
            self.prior_neighbours = d2.topk(min(5, len(d2)), largest=False).indices[:, 1:]  # (K, <=4) not itself
        if cfg.init_from is not None:
            warm_start(self.generator, self.discriminator, cfg.init_from)
        # The weight average (cfg.ema): a frozen copy, saved with the task; the generator itself is held in a list
        # as well, because during a training step the engine puts its Fabric wrapper in its place.
        self._raw_generator = [self.generator]
        self.generator_ema: torch.nn.Module | None = None
        if cfg.ema > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    @property
    def inference_generator(self) -> torch.nn.Module:
        """The generator that validation, evaluation and export use: the weight average when ``ema`` is on."""
        return self.generator_ema if self.generator_ema is not None else self._raw_generator[0]

    @torch.no_grad()
    def update_ema(self) -> None:
        """One step of the weight average (after a generator step); buffers (batch-norm statistics) are copied."""
        if self.generator_ema is None:
            return
        n = int(self.ema_updates)
        decay = min(self.cfg.ema, (1 + n) / (10 + n))
        live = self._raw_generator[0]
        for avg, cur in zip(self.generator_ema.parameters(), live.parameters(), strict=True):
            avg.lerp_(cur, 1.0 - decay)
        for avg, cur in zip(self.generator_ema.buffers(), live.buffers(), strict=True):
            avg.copy_(cur)
        self.ema_updates += 1

    def upgrade_state_dict(self, state: Mapping[str, Any]) -> Mapping[str, Any]:
        """A checkpoint saved without the weight average (a run that turns ``ema`` on when it resumes) starts the
        average from its generator, with the warm-up counter at zero."""
        if self.generator_ema is None or any(k.startswith("generator_ema.") for k in state):
            return state
        state = dict(state)
        for key, value in list(state.items()):
            if key.startswith("generator."):
                state["generator_ema." + key[len("generator."):]] = value
        state.setdefault("ema_updates", torch.zeros((), dtype=torch.long))
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`, through :meth:`upgrade_state_dict`."""
        return super().load_state_dict(self.upgrade_state_dict(state_dict), strict=strict, assign=assign)

    def train_dataset(self) -> Dataset:
        return self.photos.train()

    def val_dataset(self) -> Dataset | None:
        return self.photos.val()

    def test_dataset(self) -> Dataset | None:
        return self.val_dataset()

    def _prior(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The ground truth's palette image (B, 3, H, W), hole tokens perturbed in training (see the config)."""
        from torchworks.inpainting.ict.inpainter import prior_image
        from torchworks.inpainting.ict.palette import downsample, hole_tokens, quantize

        tokens = quantize(downsample(image, self.prior_size), self.prior_palette)
        if self.training and self.cfg.prior_noise > 0 and self.prior_neighbours.shape[1] > 0:
            hole = hole_tokens(mask, self.prior_size)
            flip = hole & (torch.rand(tokens.shape) < self.cfg.prior_noise)
            pick = torch.randint(self.prior_neighbours.shape[1], tokens.shape)
            tokens = torch.where(flip, self.prior_neighbours[tokens, pick], tokens)
        return prior_image(tokens, self.prior_palette, self.prior_size, tuple(image.shape[-2:]))

    def recalibrate_generator(self, batches: int = 60, batch_size: int = 8) -> int:
        """Recomputes the generator's batch-norm statistics for its current weights (precise BN, see
        :mod:`torchworks.nn.batchnorm`) on ``batches`` training batches: crops and masks of the training stream at
        its last indices (deterministic, like every sample). Evaluation and export call this first: the running
        averages of a short GAN run lag behind its weights. Returns the number of layers recalibrated."""
        from torchworks.nn.batchnorm import recalibrate_batchnorm

        data = self.train_dataset()
        start = len(data) - batches * batch_size
        if start < 0:
            raise ValueError(f"{batches} batches of {batch_size} need {batches * batch_size} samples; the training "
                             f"stream has {len(data)}")

        def batch(b: int) -> tuple[torch.Tensor, torch.Tensor]:
            items = [data[start + b * batch_size + j] for j in range(batch_size)]
            return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])

        was_training = self.training
        self.eval()  # the task's own training-time randomness (the prior's noise) stays off
        try:
            gen = self.inference_generator
            return recalibrate_batchnorm(gen, (batch(b) for b in range(batches)),
                                         forward=lambda _, xb: gen(self.generator_input(*xb)))
        finally:
            self.train(was_training)

    def generator_input(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The generator's input: the masked image, the mask and (with a prior) the palette image."""
        parts = [image * (1.0 - mask), mask]
        if self.prior_palette is not None:
            parts.append(self._prior(image, mask))
        return torch.cat(parts, dim=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw generator prediction (B, 3, H, W) for images (B, 3, H, W) in [0, 1] and masks (B, 1, H, W)."""
        return self.generator(self.generator_input(image, mask))

    def training_step(self, batch, opt=None):
        image, mask = batch
        c = self.cfg
        pred = self(image, mask)
        comp = mask * pred + (1.0 - mask) * image
        # LaMa's D sees the raw prediction (its known area labelled real); Context Encoder's D the composite.
        fake = pred if c.objective == "lama" else comp
        self.discriminator.requires_grad_(False)
        fake_logits, fake_feats = self.discriminator(fake)
        out: dict[str, torch.Tensor] = {}
        if c.objective == "lama":
            out["l1"] = L.masked_l1(pred, image, mask, c.l1_known, c.l1_missing)
            out["adv_g"] = L.ns_generator_loss(fake_logits, c.adversarial)
            if c.feature_matching > 0:
                with torch.no_grad():
                    real_feats = self.discriminator(image)[1]
                out["fm"] = L.feature_matching(fake_feats, real_feats) * c.feature_matching
            if self.perceptual is not None:
                out["perceptual"] = self.perceptual(pred, image) * c.perceptual
        else:
            out["rec"] = L.masked_l2(pred, image, mask) * c.rec
            out["adv_g"] = L.ns_generator_loss(fake_logits, 1.0 - c.rec)
        g_loss = sum(out.values())
        opt.step(0, g_loss)
        self.update_ema()
        self.discriminator.requires_grad_(True)

        real = image.detach().requires_grad_(c.objective == "lama" and c.r1 > 0)
        real_logits = self.discriminator(real)[0]
        fake_logits = self.discriminator(fake.detach())[0]
        d_mask = mask if c.objective == "lama" else None
        d_loss, d_parts = L.ns_discriminator_loss(real_logits, fake_logits, d_mask,
                                                  real if real.requires_grad else None,
                                                  c.r1 if c.objective == "lama" else 0.0)
        opt.step(1, d_loss)
        with torch.no_grad():
            l1_hole = metrics.l1(comp, image, mask).mean()
        return {"loss": g_loss.detach(), "d_loss": d_loss.detach(), "l1_hole": l1_hole,
                **{k: v.detach() for k, v in out.items()}, **d_parts}

    @torch.no_grad()
    def validation_step(self, batch):
        image, mask = batch
        pred = self.inference_generator(self.generator_input(image, mask))
        comp = mask * pred.clamp(0, 1) + (1.0 - mask) * image
        out = {"l1_hole": metrics.l1(comp, image, mask).mean(), "psnr_hole": metrics.psnr(comp, image, mask).mean()}
        if min(image.shape[-2:]) >= 11:
            out["ssim"] = metrics.ssim(comp, image).mean()
        return out

    def configure_optimizers(self):
        c = self.cfg
        return [torch.optim.Adam(self.generator.parameters(), lr=c.lr_g, betas=c.betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_d, betas=c.betas)]

    def trainable_modules(self):
        return [self.generator, self.discriminator]

    def export_model(self):
        return self.inference_generator, {"name": self.cfg.generator, "kwargs": self.cfg.generator_args}


@TASKS.register("inpaint_gan", config=InpaintTaskConfig)
def inpaint_gan(cfg: InpaintTaskConfig, data_dir: str | None = None) -> InpaintGANTask:
    """LaMa-style GAN inpainting task (any registered generator/discriminator pair)."""
    return InpaintGANTask(cfg, data_dir=data_dir)


@dataclass
class ContextEncoderTaskConfig(InpaintTaskConfig):
    """:class:`InpaintTaskConfig` with Context Encoder defaults: centre holes, L2 0.999 + adversarial 0.001,
    DCGAN Adam (lr 2e-4, beta1 0.5). Set ``train_masks``/``val_masks`` to e.g. ``medium_256`` for random masks."""

    objective: Literal["lama", "context_encoder"] = "context_encoder"
    generator: str = "context_encoder_64"
    discriminator: str = "ce_discriminator_64"
    train_masks: str = "center"
    val_masks: str = "center"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)


@TASKS.register("context_encoder", config=ContextEncoderTaskConfig)
def context_encoder(cfg: ContextEncoderTaskConfig, data_dir: str | None = None) -> InpaintGANTask:
    """Context Encoder task (centre-hole by default, random masks via ``train_masks``)."""
    return InpaintGANTask(cfg, data_dir=data_dir)
