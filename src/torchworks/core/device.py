"""Choosing the device a model runs on: ``"auto"``, ``"cpu"``, ``"cuda"`` (``"cuda:N"``) or ``"mps"``.

``"auto"`` takes CUDA when a GPU is visible, else Apple's MPS when it is built and available, else the CPU, so
the same command works on a laptop, a GPU box and a CPU server. Naming a device that is not there is an input
error (one line, the CLI's exit code 2), never a silent fallback.
"""

from __future__ import annotations

import torch

from torchworks.core.errors import TorchworksError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
"""What ``--device`` accepts (``cuda:N`` too)."""


class DeviceError(TorchworksError, ValueError):
    """The requested device does not exist on this machine, or its name is not a device."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for a user's device name.

    Args:
        name: ``"auto"`` (or None), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, or a ``torch.device``.

    Raises:
        DeviceError: an unknown name, or a device this machine does not have (the message says what it has).
    """
    if isinstance(name, torch.device):
        name = str(name)
    key = "auto" if name is None else str(name).strip().lower()
    if key == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    kind, _, index = key.partition(":")
    if kind not in DEVICE_CHOICES or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(f"unknown device {name!r}: use one of auto, cpu, cuda, cuda:N, mps")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise DeviceError(f"device {name!r} requested but this machine has no CUDA GPU ({available()})")
        if index and int(index) >= n:
            raise DeviceError(f"device {name!r} requested but only cuda:0..cuda:{n - 1} exist")
        return torch.device(key)
    if not _mps_available():
        raise DeviceError(f"device {name!r} requested but MPS is not available here ({available()})")
    return torch.device("mps")


def available() -> str:
    """A short list of the devices this machine has, e.g. ``"available: cpu"``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return "available: " + ", ".join(found)


__all__ = ["DEVICE_CHOICES", "DeviceError", "available", "resolve_device"]
