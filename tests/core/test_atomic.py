"""core.atomic: the target is complete or untouched, never half-written; no temporary survives a failure; errors
name the target in one line; files get the permissions of a plain open()."""

import os
import stat

import numpy as np
import pytest

from torchworks.cli._common import user_error_message
from torchworks.core import atomic
from torchworks.core.atomic import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_text


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_bytes_and_text_round_trip_with_parents_created(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    assert atomic_write_bytes(target, b"\x00\xffdata") == target
    assert target.read_bytes() == b"\x00\xffdata"
    atomic_write_text(target, "h\u00e9\r\nx\n", encoding="latin-1")
    assert target.read_bytes() == "h\u00e9\r\nx\n".encode("latin-1")  # no newline translation
    assert _names(target.parent) == ["out.bin"]


def test_permissions_follow_the_umask_not_mkstemp(tmp_path):
    old = os.umask(0o027)
    try:
        f = atomic_write_bytes(tmp_path / "f.txt", b"x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750


@pytest.mark.parametrize("signal", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, signal):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old content")
    seen = []

    def failing_fsync(fd):
        seen.append(os.fstat(fd).st_size)  # the new bytes were written to the temporary, not the target
        raise signal

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(type(signal)) as info:
        atomic_write_bytes(target, b"new content, longer than the old one")
    assert seen == [len(b"new content, longer than the old one")]
    assert target.read_bytes() == b"old content"
    assert _names(tmp_path) == ["model.safetensors"]
    if isinstance(signal, OSError):  # the message names the file asked for, not the temporary
        assert user_error_message(info.value) == f"No space left on device: {target}"


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def no_rename(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(atomic.os, "replace", no_rename)
    with pytest.raises(PermissionError) as info:
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and _names(tmp_path) == ["out.png"]
    assert user_error_message(info.value) == f"Permission denied: {target}"


def test_exception_in_the_block_propagates_unchanged_and_removes_the_partial_file(tmp_path):
    target = tmp_path / "x.npy"
    np.save(target, np.zeros(3))
    with pytest.raises(ZeroDivisionError), atomic_path(target, keep_suffix=True) as tmp:
        tmp.write_bytes(b"half a file")
        raise ZeroDivisionError
    np.testing.assert_array_equal(np.load(target), np.zeros(3))
    assert _names(tmp_path) == ["x.npy"]


def test_atomic_path_keeps_the_suffix_for_writers_that_need_it(tmp_path):
    target = tmp_path / "cache.npy"
    with atomic_path(target, keep_suffix=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".cache.npy.") and tmp.name.endswith(".part.npy")
        assert tmp.is_file() and not target.exists()
        np.save(tmp, np.arange(5))  # np.save appends .npy to any other name
    np.testing.assert_array_equal(np.load(target), np.arange(5))
    assert _names(tmp_path) == ["cache.npy"]
    with atomic_path(target) as tmp:  # by default no listing by file type can pick a temporary up
        assert tmp.name.startswith(".cache.npy.") and tmp.suffix == ".part"
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"


def test_absent_folder_is_created_but_a_file_in_the_way_is_a_one_line_error(tmp_path):
    (tmp_path / "blocker").write_text("a file")
    target = tmp_path / "blocker" / "sub" / "out.txt"
    with pytest.raises(NotADirectoryError) as info:
        atomic_write_text(target, "x")
    assert user_error_message(info.value) == f"Not a directory: {target}"


def test_writing_over_a_folder_is_a_one_line_error_and_keeps_the_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("1")
    with pytest.raises(IsADirectoryError) as info:
        atomic_write_bytes(tmp_path / "out", b"x")
    assert user_error_message(info.value) == f"Is a directory: {tmp_path / 'out'}"
    assert _names(tmp_path) == ["out"] and (tmp_path / "out" / "keep").read_text() == "1"


def test_unwritable_folder_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    target = tmp_path / "ro" / "out.txt"

    def denied(prefix, suffix, dir):  # what mkstemp raises in a read-only folder (root cannot be refused by chmod)
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "abc" + suffix))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError) as info:
        atomic_write_text(target, "x")
    assert user_error_message(info.value) == f"Permission denied: {target}"
    assert not target.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_really_refuses(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PermissionError) as info:
            atomic_write_text(ro / "out.txt", "x")
    finally:
        ro.chmod(0o700)
    assert user_error_message(info.value) == f"Permission denied: {ro / 'out.txt'}"


def test_atomic_dir_replaces_an_existing_folder_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_dir(target) as tmp:
        assert _names(tmp) == [] and tmp.parent == tmp_path
        (tmp / "cameras.txt").write_text("new")
    assert _names(target) == ["cameras.txt"] and (target / "cameras.txt").read_text() == "new"
    assert _names(tmp_path) == ["model"]  # neither the temporary nor the old folder is left


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "points.ply").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "points.ply").write_text("half")
        raise RuntimeError("encoder failed")
    assert _names(target) == ["points.ply"] and (target / "points.ply").read_text() == "old"
    assert _names(tmp_path) == ["model"]


def test_atomic_dir_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    (target / "a").write_text("old")
    real = os.replace
    calls = []

    def second_rename_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # old moved aside; moving the new folder in fails
            raise OSError(5, "Input/output error", str(src))
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", second_rename_fails)
    with pytest.raises(OSError) as info, atomic_dir(target) as tmp:
        (tmp / "a").write_text("new")
    assert user_error_message(info.value) == f"Input/output error: {target}"
    assert (target / "a").read_text() == "old"
    assert _names(tmp_path) == ["model"]
