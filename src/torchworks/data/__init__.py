"""Data layer: a registry of public data sets (origin URL + sha256 + license), finding local copies, explicit
checksummed downloads, and loaders.

Importing this package registers the data sets in :data:`torchworks.core.registry.DATASETS` and stays cheap:
no torch, numpy or tqdm is imported until a loader (``load_fashion_mnist``, ``FashionMNIST``) is touched.

Typical use::

    from torchworks.data import dataset_path, load_fashion_mnist
    root = dataset_path("fashion_mnist")                 # raises DataNotFoundError with a fix if absent
    root = dataset_path("cifar10", download=True)        # explicit download into the cache, verified
    images, labels = load_fashion_mnist("train")
"""

from __future__ import annotations

from typing import Any

from torchworks.data import catalog as _catalog  # noqa: F401  (registers the data sets)
from torchworks.data.download import download_file, extract_archive, sha256_file
from torchworks.data.locate import (
    ENV_CACHE,
    ENV_DATA,
    FileCheck,
    Location,
    cache_dir,
    candidate_locations,
    dataset_path,
    fetch,
    find_dataset,
    get_spec,
    list_datasets,
    resolve,
    shared_data_dirs,
    verify,
)
from torchworks.data.spec import DatasetSpec, RemoteFile

__all__ = [
    "ENV_CACHE",
    "ENV_DATA",
    "DatasetSpec",
    "FileCheck",
    "Location",
    "RemoteFile",
    "cache_dir",
    "candidate_locations",
    "dataset_path",
    "download_file",
    "extract_archive",
    "fetch",
    "find_dataset",
    "get_spec",
    "list_datasets",
    "resolve",
    "sha256_file",
    "shared_data_dirs",
    "verify",
    # loaded on first access (they import numpy / torch):
    "FASHION_MNIST_CLASSES",
    "FashionMNIST",
    "load_fashion_mnist",
    "read_idx",
]

_LAZY = {
    "FashionMNIST": ("torchworks.data.fashion_mnist", "FashionMNIST"),
    "load_fashion_mnist": ("torchworks.data.fashion_mnist", "load_fashion_mnist"),
    "FASHION_MNIST_CLASSES": ("torchworks.data.fashion_mnist", "CLASSES"),
    "read_idx": ("torchworks.data.idx", "read_idx"),
}


def __getattr__(name: str) -> Any:
    # PEP 562: heavy loaders are imported only when first used, keeping `import torchworks.data` fast.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
