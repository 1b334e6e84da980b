"""What a data set is: its public origin (URLs + sha256), its license, and which files make a local copy whole.

A :class:`DatasetSpec` is pure description. Finding a local copy lives in :mod:`torchworks.data.locate`, fetching
bytes in :mod:`torchworks.data.download`; the registered specs are in :mod:`torchworks.data.catalog`.

Paths inside a spec are relative POSIX paths (``"train/100075.jpg"``) below the data set's folder, so the same
spec describes a copy under ``--data-dir``, ``$TORCHWORKS_DATA``, ``../shared/data`` or the download cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")


def check_relpath(path: str, what: str = "path") -> str:
    """Returns ``path`` if it is a safe relative POSIX path (no absolute path, no ``..``, no backslash).

    Raises:
        ValueError: the path could escape the data set's folder.
    """
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{what} must be a relative POSIX path inside the data set folder, got {path!r}")
    return path


def check_sha256(value: str | None, what: str = "sha256") -> str | None:
    """Returns ``value`` if it is ``None`` (unknown) or 64 lowercase hex digits.

    Raises:
        ValueError: anything else (an md5, upper case, a truncated hash).
    """
    if value is not None and not _SHA256.fullmatch(value):
        raise ValueError(f"{what} must be 64 lowercase hex digits or None, got {value!r}")
    return value


def check_git_blob(value: str | None, what: str = "git blob id") -> str | None:
    """Returns ``value`` if it is ``None`` or 40 lowercase hex digits (a git object id).

    Raises:
        ValueError: anything else.
    """
    if value is not None and not _GIT_SHA1.fullmatch(value):
        raise ValueError(f"{what} must be 40 lowercase hex digits or None, got {value!r}")
    return value


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set's public origin.

    Args:
        url: where to download it (http or https).
        sha256: hex digest of the bytes served at ``url``; ``None`` when only ``git_blob`` is known.
        path: relative target path inside the data set folder.
        size: expected size in bytes, when known (catches truncation even without a Content-Length).
        mirrors: further URLs serving the same bytes, tried in order when ``url`` fails.
        extract: unpack this file into the data set folder after download (``.tar.gz``/``.tgz``/``.tar``,
            ``.zip``, or a single ``.gz``), then delete the archive.
        git_blob: the file's git blob id at the pinned commit its URL names (SHA-1 of ``b"blob <size>\\0"`` +
            the bytes, what ``git ls-tree`` lists). It verifies files whose bytes were never at hand to compute a
            sha256 (the tree of a pinned commit lists the id even when the blob is too large to fetch). SHA-1 is
            broken for collisions an attacker crafts in pairs, not for matching an existing file's id (second
            preimage), which is what verification needs.

    Every file of a registered data set carries ``sha256`` or ``git_blob``: a download is always verified.
    """

    url: str
    sha256: str | None
    path: str
    size: int | None = None
    mirrors: tuple[str, ...] = ()
    extract: bool = False
    git_blob: str | None = None

    def __post_init__(self) -> None:
        for u in (self.url, *self.mirrors):
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"RemoteFile url must start with http:// or https://, got {u!r}")
        check_sha256(self.sha256, f"sha256 of {self.url}")
        check_git_blob(self.git_blob, f"git blob id of {self.url}")
        if self.sha256 is None and self.git_blob is None:
            raise ValueError(f"{self.url}: give its sha256 or its git blob id; a download must be verifiable")
        check_relpath(self.path, "RemoteFile.path")
        if self.size is not None and self.size < 0:
            raise ValueError(f"RemoteFile.size must be >= 0, got {self.size}")

    @property
    def urls(self) -> tuple[str, ...]:
        """The primary URL followed by the mirrors."""
        return (self.url, *self.mirrors)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set.

    Args:
        name: registry name (``"fashion_mnist"``); also the folder a download goes to.
        description: one line for ``torchworks data list``.
        license: license or terms of use, as stated by the origin.
        homepage: where a human reads about the data set.
        folder: folder name of the copy under ``../shared/data`` (and accepted under any other root).
        files: the public origin, one entry per downloadable file.
        expected: relative paths that must all exist for a folder to count as this data set; defaults to the
            paths of the non-archive ``files``.
        alt_layouts: other complete sets of paths that also count (e.g. a derived copy in the shared folder
            that the public origin does not serve); loaders must accept each.
        known_sha256: extra ``(path, sha256)`` pairs for files that are not downloaded as such: archive
            members, derived copies, repackaged files. A path may appear several times; any listed digest
            (or its ``files`` digest) passes :func:`~torchworks.data.verify`.
        system_paths: absolute folders where an OS package installs the data set
            (``/usr/share/datasets/fashion-mnist``).
        notes: caveats shown by ``torchworks data info``.
    """

    name: str
    description: str
    license: str
    homepage: str
    folder: str
    files: tuple[RemoteFile, ...]
    expected: tuple[str, ...] = ()
    alt_layouts: tuple[tuple[str, ...], ...] = ()
    known_sha256: tuple[tuple[str, str], ...] = ()
    system_paths: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", self.name):
            raise ValueError(f"data set name must be lower_snake_case, got {self.name!r}")
        if not self.license.strip():
            raise ValueError(f"data set {self.name!r} needs a license (or the terms of use its origin states)")
        check_relpath(self.folder, f"folder of {self.name!r}")
        if not self.expected:
            # Frozen dataclass: the derived default has to be written through object.__setattr__.
            object.__setattr__(self, "expected", tuple(f.path for f in self.files if not f.extract))
        if not self.expected:
            raise ValueError(f"data set {self.name!r} lists no expected files")
        for layout in self.layouts:
            for p in layout:
                check_relpath(p, f"expected path of {self.name!r}")
        seen: set[str] = set()
        for f in self.files:
            if f.path in seen:
                raise ValueError(f"data set {self.name!r} lists {f.path!r} twice")
            seen.add(f.path)
        hashes: dict[str, set[str]] = {}
        for f in self.files:
            if f.sha256 is not None:
                hashes.setdefault(f.path, set()).add(f.sha256)
        for p, digest in self.known_sha256:
            check_relpath(p, f"known_sha256 path of {self.name!r}")
            hashes.setdefault(p, set()).add(check_sha256(digest, f"known sha256 of {p!r}"))  # type: ignore[arg-type]
        # Plain attributes, not dataclass fields, so dataclasses.asdict(spec) stays JSON-friendly.
        object.__setattr__(self, "_hashes", {p: frozenset(d) for p, d in hashes.items()})
        object.__setattr__(self, "_blobs", {f.path: f.git_blob for f in self.files if f.git_blob is not None})
        for p in self.system_paths:
            if not p.startswith("/"):
                raise ValueError(f"system_paths of {self.name!r} must be absolute, got {p!r}")

    def __call__(self) -> DatasetSpec:
        # Registries build entries by calling them; a spec builds to itself, so DATASETS.build(name) works.
        return self

    @property
    def layouts(self) -> tuple[tuple[str, ...], ...]:
        """``expected`` followed by ``alt_layouts``: each is a complete set of paths."""
        return (self.expected, *self.alt_layouts)

    def accepted_sha256(self, path: str) -> frozenset[str]:
        """Digests that count as a good copy of ``path`` (empty when none is known)."""
        return self._hashes.get(path, frozenset())  # type: ignore[attr-defined]

    def git_blob(self, path: str) -> str | None:
        """The git blob id that counts as a good copy of ``path`` (None when not pinned that way)."""
        return self._blobs.get(path)  # type: ignore[attr-defined]

    def checksummed_paths(self) -> tuple[str, ...]:
        """Every relative path with at least one known digest (sha256 or git blob id), in a stable order."""
        return tuple(sorted(set(self._hashes) | set(self._blobs)))  # type: ignore[attr-defined]

    @property
    def download_size(self) -> int | None:
        """Total bytes of ``files`` when every size is known, else ``None``."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]
