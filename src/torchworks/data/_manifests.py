"""File manifests of the data sets whose public origin is a set of files in a git repository (generated data).

Each line is ``<sha256> <size> <relative path>``. The digests and sizes were computed from the copies in
``../shared/data`` and, for every group but ``opencv_samples``, each file was checked byte-for-byte against
the git blob at the pinned upstream commit named in :mod:`torchworks.data.catalog` (``git hash-object`` equal
to the tree entry). ``opencv_samples`` come from Debian's ``opencv-doc`` 4.6.0 package and are assumed to equal
OpenCV's ``samples/data`` at tag 4.6.0 (the OpenCV repository was too large to check here).

How a line's path maps to a local path and a URL is set per group in ``catalog.py``. The manifests themselves are
package data, one file per group: ``manifests/<group>.txt``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import NamedTuple


class ManifestEntry(NamedTuple):
    sha256: str
    size: int
    path: str


@cache
def manifest(group: str) -> tuple[ManifestEntry, ...]:
    """The entries of one group, parsed once.

    Raises:
        KeyError: no such group.
    """
    if group not in groups():
        raise KeyError(group)
    entries = []
    for line in (resources.files(__package__) / "manifests" / f"{group}.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, size, path = line.split(" ", 2)
            entries.append(ManifestEntry(digest, int(size), path))
    return tuple(entries)


@cache
def groups() -> tuple[str, ...]:
    """Names of all manifest groups."""
    folder = resources.files(__package__) / "manifests"
    return tuple(sorted(f.name[:-4] for f in folder.iterdir() if f.name.endswith(".txt")))
