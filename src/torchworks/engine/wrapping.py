"""How a task's modules and optimisers are handed to Fabric, and how its steps are routed through the wrappers.

Only the modules listed by ``task.trainable_modules()`` are set up with Fabric (and so wrapped in DDP when
training on several processes); a frozen teacher or feature extractor stays a plain module that is merely moved
to the device, so it is neither broadcast nor synchronised.

DDP averages gradients only for calls that go *through* its wrapper. A task calls its submodules as usual
(``self.student(x)``), so during ``training_step`` the trainer temporarily puts each wrapper in the place of
its module inside the task (``task._modules``) and puts the original back afterwards: outside a step the task,
its ``state_dict`` and its parameter names are exactly as the task built them. When the trainable module is the
task itself, ``training_step`` is routed through the wrapper's ``forward`` instead (Fabric's forward-method
redirection).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class ModuleRouter:
    """Sets up a task's trainable modules with Fabric and routes ``training_step`` through them.

    Args:
        fabric: the run's Fabric (launched).
        task: the task; it must already be on ``fabric.device``.

    Raises:
        ValueError: ``trainable_modules()`` lists a module that is not part of the task, lists one module
            inside another, mixes the task itself with its submodules, has no trainable parameter, or is the
            task itself for a manual-optimisation task under DDP.
    """

    def __init__(self, fabric: Any, task: nn.Module) -> None:
        modules = list(task.trainable_modules())
        if not modules:
            raise ValueError(f"{type(task).__name__}.trainable_modules() is empty: nothing to train")
        names = {}
        for name, module in task.named_modules():
            names.setdefault(id(module), name)  # a module shared under two names is swapped at its first
        for m in modules:
            if not isinstance(m, nn.Module) or id(m) not in names:
                raise ValueError(f"{type(task).__name__}.trainable_modules() returned {type(m).__name__}, "
                                 "which is not a submodule of the task")
        if any(m is task for m in modules) and len(modules) > 1:
            raise ValueError("trainable_modules() must return either the task itself or its submodules, not both")
        if any(m is task for m in modules) and getattr(task, "manual_optimization", False) and fabric.world_size > 1:
            raise ValueError(f"{type(task).__name__} uses manual optimisation under DDP: list its networks "
                             "separately in trainable_modules() (e.g. [self.generator, self.discriminator]); "
                             "backward passes inside one DDP-wrapped call cannot be synchronised")
        for a in modules:
            for b in modules:
                if a is not b and any(sub is b for sub in a.modules()):
                    raise ValueError(f"trainable_modules() lists {names[id(b)]!r} inside {names[id(a)]!r}; "
                                     "list each trainable part once")
        self.task = task
        self.whole: Any = None
        self.wrapped: list[Any] = []
        self._slots: list[tuple[nn.Module, str, nn.Module, Any]] = []
        for m in modules:
            if not any(p.requires_grad for p in m.parameters()):
                continue  # DDP refuses a module without trainable parameters, and there is nothing to sync
            wrapper = fabric.setup_module(m)
            self.wrapped.append(wrapper)
            if m is task:
                self.whole = wrapper
            else:
                parent_name, _, attr = names[id(m)].rpartition(".")
                parent = task.get_submodule(parent_name)
                self._slots.append((parent, attr, m, wrapper))
        if not self.wrapped:
            raise ValueError(f"{type(task).__name__}.trainable_modules() has no parameter with requires_grad=True")

    @contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, the task's trainable submodules are their Fabric wrappers."""
        for parent, attr, _, wrapper in self._slots:
            parent._modules[attr] = wrapper
        try:
            yield
        finally:
            for parent, attr, original, _ in self._slots:
                parent._modules[attr] = original

    def training_step(self, batch: Any, opt: Any = None) -> Any:
        """Calls ``task.training_step`` so that every trainable forward passes through its wrapper."""
        target = self.whole if self.whole is not None else self.task
        with self.active():
            if opt is None:
                return target.training_step(batch)
            return target.training_step(batch, opt)


class FabricStepper:
    """The :class:`~torchworks.engine.task.OptimizerStepper` given to manual-optimisation tasks.

    ``step(i, loss)`` zero-grads optimiser ``i`` *before* back-propagating, so gradients that an earlier loss
    left on its parameters (e.g. the generator loss flowing into the discriminator) never leak into its update.

    Args:
        fabric: the run's Fabric.
        optimizers: the Fabric-wrapped optimisers, in ``configure_optimizers`` order.
        clip_module: a Fabric-wrapped module passed to ``fabric.clip_gradients``.
        grad_clip: max total gradient 2-norm per optimiser, or None.
    """

    def __init__(self, fabric: Any, optimizers: Sequence[Any], clip_module: Any,
                 grad_clip: float | None = None) -> None:
        self.fabric = fabric
        self.optimizers = list(optimizers)
        self.clip_module = clip_module
        self.grad_clip = grad_clip
        self.grad_norms: dict[int, torch.Tensor] = {}

    def step(self, index: int, loss: torch.Tensor) -> None:
        """Zero-grads optimiser ``index``, back-propagates ``loss``, clips and steps that optimiser."""
        if not 0 <= index < len(self.optimizers):
            raise IndexError(f"optimizer index {index} out of range; the task has {len(self.optimizers)}")
        opt = self.optimizers[index]
        opt.zero_grad(set_to_none=True)
        # The task calls us inside the engine's autocast block; backward should not run under autocast.
        with torch.autocast(device_type=self.fabric.device.type, enabled=False):
            self.fabric.backward(loss)
        self.clip(index)
        opt.step()

    def clip(self, index: int) -> None:
        """Clips optimiser ``index``'s gradients (when clipping is on) and remembers the norm before clipping."""
        if self.grad_clip is None:
            return
        norm = self.fabric.clip_gradients(self.clip_module, self.optimizers[index], max_norm=self.grad_clip,
                                          error_if_nonfinite=False)
        if hasattr(norm, "full_tensor"):  # FSDP: a replicated DTensor
            norm = norm.full_tensor()
        self.grad_norms[index] = norm


def as_list(optimizers: Any) -> list[torch.optim.Optimizer]:
    """``configure_optimizers()``'s result as a non-empty list."""
    if isinstance(optimizers, torch.optim.Optimizer):
        return [optimizers]
    opts = list(optimizers or [])
    if not opts or not all(isinstance(o, torch.optim.Optimizer) for o in opts):
        raise ValueError(f"configure_optimizers() must return an optimizer or a non-empty list of them, "
                         f"got {optimizers!r}")
    return opts
