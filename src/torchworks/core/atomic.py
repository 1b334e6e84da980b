"""Atomic outputs: a file or folder appears under its real name complete, or not at all.

Everything is first written to a hidden temporary sibling (same folder, so the final ``os.replace`` is a rename on
one file system), flushed to disk, given the permissions a plain ``open()`` would have (``mkstemp`` makes 0600
files), then renamed over the target. A failure or an interrupt at any point deletes the temporary and leaves an
existing target untouched.

Errors: an ``OSError`` of our own steps (creating the parent folders, the temporary, writing, renaming) is raised
again with the *target* as its file name, so the CLI's one-line message says ``Permission denied: out/x.png``
rather than naming a temporary file the user never asked for.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_dir", "atomic_path", "atomic_write_bytes", "atomic_write_text"]

PART = ".part"  # temporaries are hidden ``.<name>.<random>.part`` (so no listing by file type picks one up)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> Path:
    """Writes ``data`` to ``path`` atomically (parent folders created).

    Returns:
        The path written.

    Raises:
        OSError: (its subclass as the system raised it) the folder cannot be created or written, ``path`` is a
            folder, or the disk is full; ``filename`` is ``path``.
    """
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Writes ``text`` to ``path`` atomically in ``encoding`` (newlines written as given, never translated)."""
    return atomic_write_bytes(path, text.encode(encoding))


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yields a temporary file name beside ``path`` for a writer that wants a file name, and renames the file
    over ``path`` when the block ends without an exception.

    The temporary exists (empty) when the block starts; the writer may overwrite or replace it. With
    ``keep_suffix`` it ends in ``path``'s suffix (``.<name>.<random>.part.npy``), for writers that choose the
    format by it (``cv2.imwrite``, ``PIL.Image.save``) or append a missing one (``np.save``); the price is that a
    run killed mid-write leaves a hidden file a listing by that suffix would see.

    Example::

        with atomic_path("cache/train.npy", keep_suffix=True) as tmp:
            np.save(tmp, images)

    Raises:
        OSError: as :func:`atomic_write_bytes`; an exception raised inside the block propagates unchanged, after
            the temporary is deleted.
    """
    target = Path(path)
    suffix = PART + (target.suffix if keep_suffix else "")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _naming(exc, target) from None
    tmp = Path(name)
    try:
        yield tmp
        try:
            _fsync(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except OSError as exc:
            raise _naming(exc, target) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a new empty temporary folder beside ``path``; when the block ends without an exception, it replaces
    ``path`` (whose old content is removed; deciding whether that is allowed is the caller's job).

    Replacing an existing folder takes two renames (old out of the way, new in), so for an instant ``path`` is
    absent; it never holds a mix of old and new files, and a failed second rename puts the old folder back.

    Raises:
        OSError: as :func:`atomic_write_bytes`; an exception raised inside the block propagates unchanged, after
            the temporary folder is deleted.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=PART, dir=target.parent))
    except OSError as exc:
        raise _naming(exc, target) from None
    try:
        yield tmp
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
            _swap_in(tmp, target)
        except OSError as exc:
            raise _naming(exc, target) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(target.parent)


def _swap_in(tmp: Path, target: Path) -> None:
    if not target.is_dir() or target.is_symlink():
        os.replace(tmp, target)  # absent, or a file/link: a folder cannot be renamed over those, which raises
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old)  # renaming a folder over an empty folder is allowed
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _naming(exc: OSError, target: Path) -> OSError:
    """The same error with ``target`` as its file name (a message-only error is returned as it is)."""
    if exc.errno is None or exc.strerror is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(target))


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:  # a writer given a file name may not have flushed to disk
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    """Makes the rename itself durable; best effort (some systems cannot open or sync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
