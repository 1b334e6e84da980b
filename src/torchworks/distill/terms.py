"""The loss terms of a :class:`~torchworks.distill.task.DistillationTask`: built from a dry run, checked, evaluated.

:class:`TermSet` resolves which features each term reads (RepDistiller's defaults or the config's indices),
infers the shapes its learnable parts need from one forward pass of both networks in eval mode, fills in the
arguments only the task knows (shapes, ``n_data`` and labels for CRD, the teacher's BN margins for OFD) and runs
every loss once on the dry-run features, so a mismatch fails when the task is built, naming both models.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.recipes import PAIRED_METHODS, default_layers, default_preact

_LOGIT_METHODS = frozenset({"kd", "dkd", "dist"})


def run_model(model: nn.Module, x: Tensor, need: frozenset[str]) -> tuple[Tensor, dict[str, list[Tensor]]]:
    """Logits and the feature lists ``need`` asks for (``"post"``: post-ReLU, ``"pre"``: pre-ReLU).

    Both kinds come from one forward pass: a zoo model's ``_forward`` computes them together (it bypasses a
    DDP wrapper's ``forward``, which only matters for DDP runs combining pre- and post-ReLU terms).
    """
    if not need:
        return model(x), {}
    if need == {"post"} or need == {"pre"}:
        kind = next(iter(need))
        logits, feats = model(x, return_features=True, preact=kind == "pre")
        return logits, {kind: list(feats)}
    logits, post, pre = model._forward(x, True)
    return logits, {"post": list(post), "pre": list(pre)}


class _Term:
    """Resolved term: its loss module index, feature kind and indices on each side."""

    def __init__(self, name: str, weight: float, module: int | None, kind: str, s_idx: list[int], t_idx: list[int],
                 many: bool) -> None:
        self.name, self.weight, self.module, self.kind = name, weight, module, kind
        self.s_idx, self.t_idx, self.many = s_idx, t_idx, many


class TermSet:
    """Builds and evaluates the configured loss terms.

    Args:
        cfg: the task's :class:`~torchworks.distill.task.DistillConfig`.
        student, teacher: zoo models (``forward(x, return_features, preact)``).
        splits: the data (CRD needs the training-set size and labels), or None when no term needs it.

    Raises:
        ValueError: unknown loss name, init-phase misuse, a feature term given several layers.
        ShapeError: student and teacher features that the method cannot pair (counts, channels, sizes).
    """

    def __init__(self, cfg: Any, student: nn.Module, teacher: nn.Module, splits: Any = None) -> None:
        self.pair = f"student {cfg.student} / teacher {cfg.teacher}"
        self.modules = nn.ModuleList()
        self.terms: list[_Term] = []
        example = torch.randn(2, 3, 32, 32)
        s_feats = _dry_run(student, example)
        t_feats = _dry_run(teacher, example)
        has_init = False
        for i, term in enumerate(cfg.losses):
            if term.name == "ce":
                self.terms.append(_Term("ce", term.weight, None, "ce", [], [], False))
                continue
            if term.name not in DISTILL_LOSSES:
                close = DISTILL_LOSSES.close_matches(term.name)
                hint = f"did you mean {close[0]!r}?" if close else f"known: ce, {', '.join(DISTILL_LOSSES.names())}"
                raise ValueError(f"losses[{i}]: unknown loss {term.name!r}; {hint}")
            cls = DISTILL_LOSSES.get(term.name)
            if term.name in _LOGIT_METHODS or getattr(cls, "inputs", "") == "logits":
                module = cls(**term.args)
                self.terms.append(_Term(term.name, term.weight, len(self.modules), "logits", [], [], False))
                self.modules.append(module)
                continue
            pre = default_preact(term.name) if term.preact is None else term.preact
            kind = "pre" if pre else "post"
            s_list, t_list = s_feats[kind], t_feats[kind]
            s_idx = term.student_layers if term.student_layers is not None else default_layers(term.name, len(s_list))
            t_idx = term.teacher_layers if term.teacher_layers is not None else default_layers(term.name, len(t_list))
            self._check_indices(term.name, s_idx, t_idx, len(s_list), len(t_list))
            many = getattr(cls, "inputs", "") in ("features", "preact_features")
            if not many and (len(s_idx) != 1 or len(t_idx) != 1):
                raise ValueError(f"{term.name}: reads one feature per network, got student_layers={s_idx}, "
                                 f"teacher_layers={t_idx}")
            if term.name in PAIRED_METHODS and len(s_idx) != len(t_idx):
                raise ShapeError(
                    f"{term.name} pairs feature maps one to one but {self.pair} give {len(s_idx)} vs {len(t_idx)} "
                    f"maps (student {[tuple(s_list[j].shape[1:]) for j in s_idx]}, teacher "
                    f"{[tuple(t_list[j].shape[1:]) for j in t_idx]}); choose equal-length student_layers/"
                    "teacher_layers")
            s_shapes = [tuple(s_list[j].shape[1:]) for j in s_idx]
            t_shapes = [tuple(t_list[j].shape[1:]) for j in t_idx]
            args = self._auto_args(term, s_shapes, t_shapes, teacher, t_idx, len(t_list), splits)
            module = cls(**args)
            self.terms.append(_Term(term.name, term.weight, len(self.modules), kind, s_idx, t_idx, many))
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
        self.student_needs = frozenset(t.kind for t in self.terms if t.kind in ("pre", "post"))
        self.teacher_needs = self.student_needs
        self.uses_teacher = any(t.kind != "ce" for t in self.terms)
        self.needs_index = any(getattr(self.modules[t.module], "needs_index", False) for t in self.terms
                               if t.module is not None)
        self._check_forward(s_feats, t_feats)

    def _check_indices(self, name: str, s_idx: list[int], t_idx: list[int], n_s: int, n_t: int) -> None:
        for side, idx, n in (("student", s_idx, n_s), ("teacher", t_idx, n_t)):
            if not idx or any(not -n <= j < n for j in idx):
                raise ValueError(f"{name}: {side}_layers {idx} must be non-empty indices into the {n} features of "
                                 f"the {side} ([f0, ..., pooled]) in {self.pair}")

    def _auto_args(self, term: Any, s_shapes: list, t_shapes: list, teacher: nn.Module, t_idx: list[int],
                   n_t: int, splits: Any) -> dict[str, Any]:
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
                args["margins"] = _ofd_margins(teacher, [j % n_t for j in t_idx], n_t)
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

    def run_model(self, model: nn.Module, x: Tensor, need: frozenset[str]):
        """See :func:`run_model`."""
        return run_model(model, x, need)

    def _value(self, term: _Term, s_logits: Tensor, s_feats: dict, t_logits: Tensor, t_feats: dict, y: Tensor,
               idx: Tensor | None, init_phase: bool) -> Tensor:
        if term.kind == "ce":
            return F.cross_entropy(s_logits, y)
        module = self.modules[term.module]
        if term.kind == "logits":
            if getattr(module, "needs_target", False):
                return module(s_logits.float(), t_logits.float(), target=y)
            return module(s_logits.float(), t_logits.float())
        s = [s_feats[term.kind][j].float() for j in term.s_idx]
        t = [t_feats[term.kind][j].float() for j in term.t_idx]
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


def _dry_run(model: nn.Module, example: Tensor) -> dict[str, Any]:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, post, pre = model._forward(example.contiguous(memory_format=torch.channels_last), True)
    finally:
        model.train(was)
    return {"logits": logits, "post": list(post), "pre": list(pre)}


def _ofd_margins(teacher: nn.Module, t_idx: list[int], n_t: int) -> list[Tensor] | None:
    """OFD margins from the teacher's BN-before-ReLU layers of the chosen stages (stage j -> bns[j - 1])."""
    try:
        bns = teacher.bn_before_relu()
    except NotImplementedError:
        return None
    if all(1 <= j <= len(bns) for j in t_idx):
        from torchworks.distill.losses import margin_from_bn

        return [margin_from_bn(bns[j - 1]) for j in t_idx]
    return None
