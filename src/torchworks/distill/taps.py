"""Feature taps: capture intermediate outputs of any ``nn.Module`` by module path, and infer shapes by a dry run.

Zoo models expose their features directly (``forward(x, return_features=True)``); taps are for everything
else (a user's own network, a torchvision/timm model): name the submodules by their dotted path, as printed by
``model.named_modules()``, and read their outputs after each forward::

    taps = FeatureTaps(model, ["layer2", "layer3.1.bn2"])    # validated now: a typo fails here
    logits = model(x)
    f2, f3 = taps.outputs()                                  # in the order given; cleared on the next forward
    shapes = feature_shapes(model, ["layer2"], torch.zeros(1, 3, 32, 32))   # {"layer2": (C, H, W)}
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def resolve_module(model: nn.Module, path: str) -> nn.Module:
    """Returns ``model``'s submodule at dotted ``path``; raises ValueError listing close names if absent."""
    modules = dict(model.named_modules())
    if path in modules and path != "":
        return modules[path]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
    # a parent or child path is also a plausible intention ("layer1" vs "layer1.0")
    close += [n for n in names if (n.startswith(path + ".") or path.startswith(n + ".")) and n not in close][:3]
    if close:
        hint = f"; close names: {', '.join(close)}"
    else:
        hint = f"; top-level modules: {', '.join(n for n in names if '.' not in n)}"
    raise ValueError(f"no module at path {path!r} in {type(model).__name__}{hint}")


class FeatureTaps:
    """Forward hooks that store the outputs (or inputs) of submodules chosen by path.

    All paths are resolved when the taps are built, so a wrong path fails at construction with a list of close
    names. Outputs are stored as produced (not detached): a tap on the student keeps the graph, a tap on a
    teacher run under ``torch.no_grad()`` holds no graph. A module whose output is a tuple (e.g. a zoo block
    asked for its pre-activation) is stored as the tuple's first element unless ``take`` says otherwise.

    One forward pass of ``model`` gives one tensor per path. **A tapped module that runs twice in one forward
    pass is an error** (``ValueError`` raised from the second call, naming the path): a module reused inside
    ``forward`` (a shared ``nn.ReLU``, a weight-tied layer) has no single output to distil, and keeping either
    call silently would pair the wrong tensors. Tap a module that runs once instead (the enclosing block, or the
    layer feeding the reused one). Only calls made while ``model`` itself runs count: a recomputation by
    activation checkpointing during backward, or a direct call of the submodule, leaves the stored outputs alone.

    Args:
        model: any module.
        paths: dotted module paths, e.g. ``["layer1", "layer2.0.conv1"]``.
        capture: ``"output"`` (default) or ``"input"`` (the first positional input, e.g. pre-ReLU values feeding
            an ``nn.ReLU``).
        take: index used when the captured value is a tuple/list (0).

    Use as a context manager or call :meth:`remove` to detach the hooks.
    """

    def __init__(self, model: nn.Module, paths: Sequence[str], capture: str = "output", take: int = 0) -> None:
        if capture not in ("output", "input"):
            raise ValueError(f"FeatureTaps: capture must be 'output' or 'input', got {capture!r}")
        if isinstance(paths, str) or len(paths) == 0:
            raise ValueError(f"FeatureTaps: paths must be a non-empty list of module paths, got {paths!r}")
        self.paths = list(paths)
        self.capture, self.take = capture, take
        modules = [resolve_module(model, p) for p in self.paths]  # validate all before hooking any
        self._store: dict[str, Tensor] = {}
        self._running = False  # inside a forward of `model`: the only calls that count
        self._model_name = type(model).__name__
        self._handles = []
        for path, module in zip(self.paths, modules, strict=True):
            self._handles.append(module.register_forward_hook(self._hook(path)))
        self._handles.append(model.register_forward_pre_hook(self._start))
        self._handles.append(model.register_forward_hook(self._stop, always_call=True))

    def _start(self, *_: object) -> None:
        self._store.clear()
        self._running = True

    def _stop(self, *_: object) -> None:
        self._running = False

    def _hook(self, path: str):
        def hook(_module: nn.Module, args: tuple, output: object) -> None:
            if not self._running:
                return
            if path in self._store:
                raise ValueError(f"FeatureTaps: module {path!r} ran twice in one forward pass of "
                                 f"{self._model_name} (a module reused inside forward); its output is ambiguous, "
                                 "so tap a module that runs once (e.g. the enclosing block)")
            value = args[0] if self.capture == "input" else output
            if isinstance(value, (tuple, list)):
                value = value[self.take]
            if not isinstance(value, Tensor):
                raise TypeError(f"FeatureTaps: module {path!r} produced {type(value).__name__}, not a tensor")
            self._store[path] = value

        return hook

    def outputs(self) -> list[Tensor]:
        """Captured tensors in the order of ``paths``; raises if a tapped module did not run in the last forward."""
        missing = [p for p in self.paths if p not in self._store]
        if missing:
            raise RuntimeError(f"FeatureTaps: modules {missing} did not run in the last forward pass")
        return [self._store[p] for p in self.paths]

    def as_dict(self) -> dict[str, Tensor]:
        return dict(zip(self.paths, self.outputs(), strict=True))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._store.clear()

    def __enter__(self) -> FeatureTaps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


@torch.no_grad()
def feature_shapes(
    model: nn.Module, paths: Sequence[str], example: Tensor, capture: str = "output"
) -> dict[str, tuple[int, ...]]:
    """Shapes (without the batch dimension) of the tapped tensors, from one forward pass on ``example``.

    The model is run in eval mode (BN running statistics stay untouched) and restored to its previous mode.
    Connectors and regressors are then built from these shapes, e.g.
    ``FitNetLoss(s_shape=shapes_s["layer2"], t_shape=shapes_t["layer2"])``.
    """
    was_training = model.training
    model.eval()
    try:
        with FeatureTaps(model, paths, capture=capture) as taps:
            model(example)
            return {p: tuple(t.shape[1:]) for p, t in taps.as_dict().items()}
    finally:
        model.train(was_training)


@torch.no_grad()
def zoo_feature_shapes(model: nn.Module, example: Tensor, preact: bool = False) -> list[tuple[int, ...]]:
    """Shapes (without batch) of a zoo model's feature list ``[f0, ..., pooled]`` by a dry run in eval mode."""
    was_training = model.training
    model.eval()
    try:
        _, feats = model(example, return_features=True, preact=preact)
        return [tuple(f.shape[1:]) for f in feats]
    finally:
        model.train(was_training)
