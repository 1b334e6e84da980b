"""Loss terms of a distillation run, and RepDistiller's per-method weights as ready-made recipes.

A run's loss is ``sum_i weight_i * term_i``; ``ce`` is the student's cross-entropy, every other name is a
registered ``DISTILL_LOSSES`` entry. Which features each method reads defaults to RepDistiller's choice
(:data:`DEFAULT_FEATURES`), written as indices into the zoo feature list ``[f0, f1, ..., fn, pooled]``.

Recipes (:func:`method_terms`) follow ``scripts/run_cifar_distill.sh`` of HobbitLong/RepDistiller
(``-r`` CE weight, ``-a`` KD weight, ``-b`` method weight), DKD's resnet56->resnet20 setting (beta 2) from
mdistiller and DIST's CIFAR setting (beta = gamma = 2, tau = 4). ``"crd+kd"`` combines terms: CE 1, KD 1 and
each feature method with its own weight, as RepDistiller's CRD+KD row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: RepDistiller's feature selection per method: ("logits",) or (kind, start, stop) slices / (kind, index).
#: kind "post" reads post-ReLU maps, "pre" pre-ReLU maps.
DEFAULT_FEATURES: dict[str, tuple[Any, ...]] = {
    "kd": ("logits",), "dkd": ("logits",), "dist": ("logits",),
    "fitnet": ("post", 2), "at": ("post", 1, -1), "sp": ("post", -2), "cc": ("post", -1), "vid": ("post", 1, -1),
    "rkd": ("post", -1), "pkt": ("post", -1), "ab": ("pre", 1, -1), "ft": ("post", -2), "fsp": ("post", 0, -1),
    "nst": ("post", 1, -1), "crd": ("post", -1), "ofd": ("pre", 1, -1),
}
#: Methods whose student and teacher feature lists must have equal length (they pair maps one to one).
PAIRED_METHODS = frozenset({"at", "vid", "ab", "fsp", "nst", "ofd", "sp"})

# (CE weight, KD weight, method weight, method args) per method, RepDistiller's CIFAR-100 settings.
_RECIPES: dict[str, tuple[float, float, float, dict[str, Any]]] = {
    "kd": (0.1, 0.9, 0.0, {}),
    "fitnet": (1.0, 0.0, 100.0, {}),
    "at": (1.0, 0.0, 1000.0, {}),
    "sp": (1.0, 0.0, 3000.0, {}),
    "cc": (1.0, 0.0, 0.02, {}),
    "vid": (1.0, 0.0, 1.0, {}),
    "rkd": (1.0, 0.0, 1.0, {}),
    "pkt": (1.0, 0.0, 30000.0, {}),
    "ab": (1.0, 0.0, 1.0, {}),
    "ft": (1.0, 0.0, 200.0, {}),
    "fsp": (1.0, 0.0, 1.0, {}),  # init-only: RepDistiller sums the FSP terms unweighted in its init stage
    "nst": (1.0, 0.0, 50.0, {}),
    "crd": (1.0, 0.0, 0.8, {"k": 4096}),
    "ofd": (1.0, 0.0, 1e-3, {}),
    "dkd": (1.0, 0.0, 1.0, {"alpha": 1.0, "beta": 2.0, "T": 4.0}),
    "dist": (1.0, 0.0, 1.0, {"beta": 2.0, "gamma": 2.0, "tau": 4.0}),
}
METHODS: tuple[str, ...] = ("none", *_RECIPES)
#: Methods that need an init phase (``init_steps > 0``): init-only losses and FT's paraphraser.
INIT_METHODS = frozenset({"ab", "fsp", "ft"})


@dataclass
class LossTerm:
    """One weighted term of the distillation loss.

    Attributes:
        name: ``ce`` or a registered distillation loss (``kd``, ``crd``, ``at``, ...).
        weight: its weight in the sum.
        args: constructor arguments of the loss (shapes, dimensions, ``n_data`` and labels are filled in by the
            task), e.g. ``{T: 4}`` for KD or ``{k: 4096, mode: reference}``.
        student_layers: what the term reads from the student: indices into a zoo model's feature list
            ``[f0, ..., fn, pooled]``, or dotted module paths of any model (``["layer3.1.conv2"]``: the outputs
            of those submodules, captured by forward hooks); None: the method's default
            (:data:`DEFAULT_FEATURES`, zoo models only). ``teacher_layers`` likewise for the teacher.
        preact: read pre-ReLU maps; None: the method's default (AB and OFD: True). Applies to index
            selections; a module path reads that module's output (name the BN before a ReLU for pre-ReLU values).
    """

    name: str
    weight: float = 1.0
    args: dict[str, Any] = field(default_factory=dict)
    student_layers: list[int | str] | None = None
    teacher_layers: list[int | str] | None = None
    preact: bool | None = None


def default_layers(method: str, n_feats: int) -> list[int]:
    """Feature-list indices RepDistiller uses for ``method`` on a model with ``n_feats`` entries."""
    spec = DEFAULT_FEATURES[method]
    if spec[0] == "logits":
        return []
    if len(spec) == 2:
        return [spec[1] % n_feats]
    return list(range(n_feats))[slice(spec[1], spec[2])]


def default_preact(method: str) -> bool:
    """Whether ``method`` reads pre-ReLU maps by default."""
    return DEFAULT_FEATURES.get(method, ("post",))[0] == "pre"


def method_terms(method: str) -> list[LossTerm]:
    """Loss terms of a recipe: ``"crd"``, ``"kd"``, ``"none"`` (CE only) or a ``+``-joined combination.

    Raises:
        ValueError: an unknown method name (the known ones are listed).
    """
    names = [m.strip().lower() for m in method.split("+") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if not names or unknown:
        raise ValueError(f"unknown distillation method {method!r}; choose from {', '.join(METHODS)} "
                         "or join several with '+', e.g. crd+kd")
    if names == ["none"]:
        return [LossTerm("ce", 1.0)]
    if names == ["kd"]:
        return [LossTerm("ce", 0.1), LossTerm("kd", 0.9, {"T": 4.0})]
    combined = len(names) > 1
    terms = [LossTerm("ce", 1.0 if combined else _RECIPES[names[0]][0])]
    for m in names:
        if m == "none":
            continue
        if m == "kd":
            terms.append(LossTerm("kd", 1.0, {"T": 4.0}))
            continue
        _, _, w, args = _RECIPES[m]
        terms.append(LossTerm(m, w, dict(args)))
    return terms
