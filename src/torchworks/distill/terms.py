"""The loss terms of a :class:`~torchworks.distill.task.DistillationTask`: built from a dry run, checked, evaluated.

:class:`TermSet` resolves which features each term reads, infers the shapes its learnable parts need from one
forward pass of both networks in eval mode, fills in the arguments only the task knows (shapes, ``n_data`` and
labels for CRD, the teacher's BN margins for OFD) and runs every loss once on the dry-run features, so a mismatch
fails when the task is built, naming both models.

Each side of a feature term reads either a zoo model's feature list by index (``[f0, ..., fn, pooled]``,
RepDistiller's defaults when none are given) or any model's submodules by dotted path (``"layer3.1.conv2"``),
captured by :class:`~torchworks.distill.taps.FeatureTaps` hooks during the same forward pass. A model that is
not from the zoo has no feature list, so its feature terms name paths. ``preact`` applies to index selections;
a path takes the named module's output (name the BN before a ReLU to read pre-ReLU values).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.models._base import ZooModel
from torchworks.distill.recipes import PAIRED_METHODS, default_layers, default_preact
from torchworks.distill.taps import FeatureTaps, resolve_module

_LOGIT_METHODS = frozenset({"kd", "dkd", "dist"})


def run_model(model: nn.Module, x: Tensor, need: frozenset[str],
              taps: FeatureTaps | None = None) -> tuple[Tensor, dict[str, Any]]:
    """Logits and the features ``need`` asks for (``"post"``/``"pre"``: a zoo model's post-/pre-ReLU lists).

    Everything comes from one forward pass through the model's own call (so DDP wrappers and ``taps`` see it);
    with ``taps`` the result also holds ``"tap"``: ``{path: tensor}`` of the tapped submodules.
    """
    if not need:
        logits, feats = model(x), {}
    elif need == {"post"} or need == {"pre"}:
        kind = next(iter(need))
        logits, got = model(x, return_features=True, preact=kind == "pre")
        feats = {kind: list(got)}
    else:
        logits, (post, pre) = model(x, return_features=True, preact="both")
        feats = {"post": list(post), "pre": list(pre)}
    if taps is not None:
        feats["tap"] = taps.as_dict()
    return logits, feats


class _Side:
    """What one network gives a feature term: indices into a zoo list (kind "post"/"pre") or paths ("tap")."""

    def __init__(self, kind: str, sel: list[int] | list[str]) -> None:
        self.kind, self.sel = kind, sel

    def shapes(self, feats: dict[str, Any]) -> list[tuple[int, ...]]:
        return [tuple(feats[self.kind][j].shape[1:]) for j in self.sel]


class _Term:
    """Resolved term: its loss module index, kind ("ce", "logits" or "features") and each network's side."""

    def __init__(self, name: str, weight: float, module: int | None, kind: str, s: _Side | None = None,
                 t: _Side | None = None, many: bool = False) -> None:
        self.name, self.weight, self.module, self.kind = name, weight, module, kind
        self.s, self.t, self.many = s, t, many


class TermSet:
    """Builds and evaluates the configured loss terms.

    Args:
        cfg: the task's :class:`~torchworks.distill.task.DistillConfig`.
        student, teacher: any modules mapping images to logits; zoo models also give their feature lists.
        splits: the data (CRD needs the training-set size and labels), or None when no term needs it.

    Raises:
        ValueError: unknown loss name, init-phase misuse, a feature term given several layers, a module path
            that does not exist (close names listed) or whose module runs twice per forward, indices on a model
            outside the zoo.
        ShapeError: student and teacher features that the method cannot pair (counts, channels, sizes), or
            logits that are not (B, num_classes).
    """

    def __init__(self, cfg: Any, student: nn.Module, teacher: nn.Module, splits: Any = None) -> None:
        self.pair = f"student {cfg.student} / teacher {cfg.teacher}"
        self.modules = nn.ModuleList()
        self.terms: list[_Term] = []
        models = {"student": student, "teacher": teacher}
        self._names = {"student": cfg.student, "teacher": cfg.teacher}
        self._zoo = {side: isinstance(m, ZooModel) for side, m in models.items()}
        self.taps = {side: _install_taps(m, cfg.losses, side) for side, m in models.items()}
        example = torch.randn(2, 3, 32, 32)
        feats = {side: _dry_run(m, example, self._zoo[side], self.taps[side]) for side, m in models.items()}
        for side in models:
            _check_logits(feats[side]["logits"], cfg.num_classes, f"{side} {self._names[side]}")
        s_feats, t_feats = feats["student"], feats["teacher"]
        has_init = False
        for i, term in enumerate(cfg.losses):
            if term.name == "ce":
                self.terms.append(_Term("ce", term.weight, None, "ce"))
                continue
            if term.name not in DISTILL_LOSSES:
                close = DISTILL_LOSSES.close_matches(term.name)
                hint = f"did you mean {close[0]!r}?" if close else f"known: ce, {', '.join(DISTILL_LOSSES.names())}"
                raise ValueError(f"losses[{i}]: unknown loss {term.name!r}; {hint}")
            cls = DISTILL_LOSSES.get(term.name)
            if term.name in _LOGIT_METHODS or getattr(cls, "inputs", "") == "logits":
                module = cls(**term.args)
                self.terms.append(_Term(term.name, term.weight, len(self.modules), "logits"))
                self.modules.append(module)
                continue
            pre = default_preact(term.name) if term.preact is None else term.preact
            kind = "pre" if pre else "post"
            s_side = self._side("student", term.name, term.student_layers, kind, s_feats, student)
            t_side = self._side("teacher", term.name, term.teacher_layers, kind, t_feats, teacher)
            many = getattr(cls, "inputs", "") in ("features", "preact_features")
            s_shapes, t_shapes = s_side.shapes(s_feats), t_side.shapes(t_feats)
            if not many and (len(s_side.sel) != 1 or len(t_side.sel) != 1):
                raise ValueError(f"{term.name}: reads one feature per network, got student_layers={s_side.sel}, "
                                 f"teacher_layers={t_side.sel}")
            if term.name in PAIRED_METHODS and len(s_side.sel) != len(t_side.sel):
                raise ShapeError(
                    f"{term.name} pairs feature maps one to one but {self.pair} give {len(s_side.sel)} vs "
                    f"{len(t_side.sel)} maps (student {s_shapes}, teacher {t_shapes}); choose equal-length "
                    "student_layers/teacher_layers")
            args = self._auto_args(term, s_shapes, t_shapes, teacher, t_side, t_feats, splits)
            module = cls(**args)
            self.terms.append(_Term(term.name, term.weight, len(self.modules), "features", s_side, t_side, many))
            self.modules.append(module)
            has_init = has_init or self.is_init_term(self.terms[-1])
        if cfg.init_steps > 0 and not has_init:
            raise ValueError(f"init_steps={cfg.init_steps} but no term has an init phase (ab, fsp, ft, fitnet "
                             "with mode: paper); set init_steps: 0")
        if cfg.init_steps == 0:
            lonely = [t.name for t in self.terms if t.module is not None and getattr(self.modules[t.module],
                                                                                      "init_only", False)]
            if lonely:
                raise ValueError(f"{lonely} train only in the init phase; set init_steps > 0 (RepDistiller: 30 of "
                                 "240 epochs)")
        features = [t for t in self.terms if t.kind == "features"]
        self.student_needs = frozenset(t.s.kind for t in features if t.s.kind != "tap")
        self.teacher_needs = frozenset(t.t.kind for t in features if t.t.kind != "tap")
        self.uses_teacher = any(t.kind != "ce" for t in self.terms)
        self.needs_index = any(getattr(self.modules[t.module], "needs_index", False) for t in self.terms
                               if t.module is not None)
        self._check_forward(s_feats, t_feats)

    @property
    def teacher_reads_features(self) -> bool:
        """Whether any term reads the teacher's features (not only its logits)."""
        return bool(self.teacher_needs) or self.taps["teacher"] is not None

    def _side(self, side: str, name: str, layers: list | None, kind: str, feats: dict, model: nn.Module) -> _Side:
        if layers is not None and layers and all(isinstance(v, str) for v in layers):
            return _Side("tap", list(layers))
        if not self._zoo[side]:
            top = ", ".join(n for n, _ in model.named_children()) or "none"
            raise ValueError(f"{name}: the {side} {self._names[side]!r} is not a zoo model, so it has no numbered "
                             f"feature list: give {side}_layers as module paths, quoted if numeric (its top-level "
                             f"modules: {top})")
        n = len(feats[kind])
        idx = list(layers) if layers is not None else default_layers(name, n)
        if not idx or any(not -n <= j < n for j in idx):
            raise ValueError(f"{name}: {side}_layers {idx} must be non-empty indices into the {n} features of "
                             f"the {side} ([f0, ..., pooled]) in {self.pair}")
        return _Side(kind, idx)

    def _auto_args(self, term: Any, s_shapes: list, t_shapes: list, teacher: nn.Module, t_side: _Side,
                   t_feats: dict, splits: Any) -> dict[str, Any]:
        args = dict(term.args)
        name = term.name
        if name == "fitnet":
            args.update(s_shape=s_shapes[0], t_shape=t_shapes[0])
        elif name == "ab":
            args.update(s_shapes=s_shapes, t_shapes=t_shapes)
        elif name in ("cc", "crd"):
            args.update(s_dim=int(torch.tensor(s_shapes[0]).prod()), t_dim=int(torch.tensor(t_shapes[0]).prod()))
        elif name == "ft":
            args.update(s_channels=s_shapes[0][0], t_channels=t_shapes[0][0])
        elif name == "vid":
            args.update(s_channels=[s[0] for s in s_shapes], t_channels=[t[0] for t in t_shapes])
        elif name == "ofd":
            args.update(s_channels=[s[0] for s in s_shapes], t_channels=[t[0] for t in t_shapes])
            if "margins" not in args:
                args["margins"] = _ofd_margins(teacher, t_side, len(t_feats.get(t_side.kind, ())))
        if name == "crd":
            if splits is None:
                raise ValueError("crd needs the training set (its size and labels) to build the memory bank")
            label_aware = args.pop("label_aware", True)
            args["n_data"] = splits.num_train_total
            if label_aware:
                args["labels"] = torch.as_tensor(splits.arrays("train")[1])
        return args

    def _check_forward(self, s_feats: dict, t_feats: dict) -> None:
        s_logits, t_logits = s_feats["logits"], t_feats["logits"]
        y = torch.zeros(s_logits.shape[0], dtype=torch.long)
        for term in self.terms:
            if term.module is None or getattr(self.modules[term.module], "needs_index", False):
                continue  # CRD would fix its normalisation constant on dummy data
            module = self.modules[term.module]
            flags = {m: m.training for m in module.modules()}
            module.eval()
            try:
                with torch.no_grad():
                    self._value(term, s_logits, s_feats, t_logits, t_feats, y, None, init_phase=False)
            except ShapeError as exc:
                raise ShapeError(f"{term.name} cannot pair {self.pair}: {exc}") from exc
            finally:
                for m, f in flags.items():
                    m.training = f

    def is_init_term(self, term: _Term) -> bool:
        """Whether the term trains in the init phase (init-only losses and FT's paraphraser)."""
        if term.module is None:
            return False
        m = self.modules[term.module]
        return bool(getattr(m, "init_only", False) or getattr(m, "has_init_stage", False))

    def run_student(self, model: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """The student's logits and the features the terms read (``model`` may be its DDP wrapper)."""
        return run_model(model, x, self.student_needs, self.taps["student"])

    def run_teacher(self, model: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """The teacher's logits and the features the terms read."""
        return run_model(model, x, self.teacher_needs, self.taps["teacher"])

    def _value(self, term: _Term, s_logits: Tensor, s_feats: dict, t_logits: Tensor, t_feats: dict, y: Tensor,
               idx: Tensor | None, init_phase: bool) -> Tensor:
        if term.kind == "ce":
            return F.cross_entropy(s_logits, y)
        module = self.modules[term.module]
        if term.kind == "logits":
            if getattr(module, "needs_target", False):
                return module(s_logits.float(), t_logits.float(), target=y)
            return module(s_logits.float(), t_logits.float())
        s = [s_feats[term.s.kind][j].float() for j in term.s.sel]
        t = [t_feats[term.t.kind][j].float() for j in term.t.sel]
        if init_phase and getattr(module, "has_init_stage", False):
            raw = getattr(module, "_original_module", module)  # a Fabric wrapper forwards only `forward`
            return raw.reconstruction_loss(t[0])
        if getattr(module, "needs_index", False):
            return module(s[0], t[0], idx=idx)
        return module(s, t) if term.many else module(s[0], t[0])

    def losses(self, s_logits: Tensor, s_feats: dict, t_logits: Tensor, t_feats: dict, y: Tensor,
               idx: Tensor | None, init_phase: bool) -> dict[str, tuple[float, Tensor]]:
        """``{term name: (weight, value)}`` of the terms active in this phase (names made unique)."""
        out: dict[str, tuple[float, Tensor]] = {}
        for term in self.terms:
            module = None if term.module is None else self.modules[term.module]
            init_only = bool(getattr(module, "init_only", False))
            if init_phase != (init_only or (init_phase and self.is_init_term(term))):
                continue
            key = term.name if term.name not in out else f"{term.name}{len(out)}"
            weight = 1.0 if (init_phase and getattr(module, "has_init_stage", False)) else term.weight
            out[key] = (weight, self._value(term, s_logits, s_feats, t_logits, t_feats, y, idx, init_phase))
        return out


def _install_taps(model: nn.Module, losses: list, side: str) -> FeatureTaps | None:
    """Hooks on every module path the terms name for this side (validated now: a typo fails here)."""
    paths: list[str] = []
    for i, term in enumerate(losses):
        layers = getattr(term, f"{side}_layers")
        if not layers:
            continue
        kinds = {isinstance(v, str) for v in layers}
        if len(kinds) > 1:
            raise ValueError(f"losses[{i}] ({term.name}): {side}_layers mixes indices and module paths: {layers}")
        if kinds == {True}:
            paths += [p for p in layers if p not in paths]
    return FeatureTaps(model, paths) if paths else None


def _dry_run(model: nn.Module, example: Tensor, zoo: bool, taps: FeatureTaps | None) -> dict[str, Any]:
    was = model.training
    model.eval()
    x = example.contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad():
            if zoo:
                logits, (post, pre) = model(x, return_features=True, preact="both")
            else:
                logits, post, pre = model(x), [], []
            tap = taps.as_dict() if taps is not None else {}
    finally:
        model.train(was)
    return {"logits": logits, "post": list(post), "pre": list(pre), "tap": tap}


def _check_logits(logits: Any, num_classes: int, who: str) -> None:
    if not isinstance(logits, Tensor):
        raise ShapeError(f"the {who} returned {type(logits).__name__}; distillation needs a model whose "
                         f"forward(x) returns logits (B, {num_classes}): wrap it to return them")
    if logits.dim() != 2 or logits.shape[1] != num_classes:
        raise ShapeError(f"the {who} returned {tuple(logits.shape)} for 2 images; expected logits (2, "
                         f"{num_classes}) for the data's {num_classes} classes")


def _ofd_margins(teacher: nn.Module, side: _Side, n_t: int) -> list[Any] | None:
    """OFD margins from the teacher's BN layers before the distilled ReLUs, or None (zero margins).

    Zoo indices: stage j -> ``bn_before_relu()[j - 1]``. Module paths: the tapped modules themselves when every
    one is an affine BatchNorm2d (their outputs are the pre-ReLU values OFD distils); otherwise None.
    """
    from torchworks.distill.losses import margin_from_bn

    if side.kind == "tap":
        bns = [resolve_module(teacher, p) for p in side.sel]
        if all(isinstance(m, nn.BatchNorm2d) and m.affine for m in bns):
            return [margin_from_bn(m) for m in bns]
        return None
    t_idx = [j % n_t for j in side.sel]
    try:
        bns = teacher.bn_before_relu()
    except NotImplementedError:
        return None
    if all(1 <= j <= len(bns) for j in t_idx):
        return [margin_from_bn(bns[j - 1]) for j in t_idx]
    return None
