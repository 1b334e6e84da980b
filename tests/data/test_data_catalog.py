"""The registered data sets: complete metadata, valid checksums, cheap import, and agreement with ../shared/data."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from torchworks.core.registry import DATASETS
from torchworks.data import DatasetSpec, RemoteFile, list_datasets, resolve, verify
from torchworks.data.spec import check_relpath

REQUIRED = {
    "fashion_mnist", "cifar10", "kodak24", "bsds500", "celebahq_samples", "multi30k", "tinyshakespeare",
    "wikitext2", "stockprice_tataglobal", "pmdarima_msft", "jbrownlee_timeseries", "opencv_samples_geometry",
    "middlebury_stereo", "multiview_temple_sparse_ring", "strecha_fountain_p11",
}
HEX64 = re.compile(r"[0-9a-f]{64}")


def test_required_data_sets_are_registered():
    names = {s.name for s in list_datasets()}
    assert REQUIRED <= names
    assert [s.name for s in list_datasets()] == sorted(names)
    assert DATASETS.build("fashion_mnist") is DATASETS.get("fashion_mnist")


@pytest.mark.parametrize("spec", list_datasets(), ids=lambda s: s.name)
def test_spec_metadata_is_complete(spec):
    assert spec.license.strip() and spec.description.strip() and spec.homepage.startswith("http")
    assert spec.expected and spec.files
    for f in spec.files:
        assert f.sha256 is None or HEX64.fullmatch(f.sha256), f.url
        assert f.sha256 is not None or f.git_blob is not None, f"{f.url} would download unverified"
        assert f.url.startswith(("https://", "http://"))
        check_relpath(f.path)
    for path in spec.checksummed_paths():
        assert all(HEX64.fullmatch(d) for d in spec.accepted_sha256(path))
    assert len({f.path for f in spec.files}) == len(spec.files)
    # What a download produces must form a complete copy: every expected path is a file or comes from an archive.
    plain = {f.path for f in spec.files if not f.extract}
    assert set(spec.expected) <= plain or any(f.extract for f in spec.files)


def test_files_without_a_sha256_are_pinned_by_git_blob_at_a_pinned_commit():
    by_blob = {(s.name, f.path): f for s in list_datasets() for f in s.files if f.sha256 is None}
    assert set(by_blob) == {("wikitext2", "train.txt")}
    train = by_blob[("wikitext2", "train.txt")]
    # `git ls-tree 77f55b9 word_language_model/data/wikitext-2/` in pytorch/examples; the URL names that commit
    assert train.git_blob == "2d84b35af79e411d73ea7cae83c73964c6ac83b4"
    assert "/pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8/" in train.url


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"license": " "}, "license"),
        ({"folder": "../x"}, "relative"),
        ({"expected": ("/abs",)}, "relative"),
        ({"name": "Bad Name"}, "snake"),
        ({"files": (), "expected": ()}, "no expected"),
        ({"known_sha256": (("a.txt", "d41d8cd98f00b204e9800998ecf8427e"),)}, "64 lowercase hex"),
    ],
)
def test_invalid_specs_are_rejected(kwargs, match):
    fields = dict(name="x", description="d", license="MIT", homepage="https://e.org", folder="x",
                  files=(RemoteFile("https://e.org/a.txt", "0" * 64, "a.txt"),))
    fields.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DatasetSpec(**fields)


def test_invalid_remote_files_are_rejected():
    with pytest.raises(ValueError, match="64 lowercase hex"):
        RemoteFile("https://e.org/a", "ABC", "a")
    with pytest.raises(ValueError, match="http"):
        RemoteFile("ftp://e.org/a", "0" * 64, "a")
    with pytest.raises(ValueError, match="relative"):
        RemoteFile("https://e.org/a", "0" * 64, "sub/../../a")
    with pytest.raises(ValueError, match="must be verifiable"):
        RemoteFile("https://e.org/a", None, "a")
    with pytest.raises(ValueError, match="40 lowercase hex"):
        RemoteFile("https://e.org/a", None, "a", git_blob="abc")


def test_import_is_cheap():
    code = (
        "import sys, torchworks.data as d; d.list_datasets(); "
        "heavy = [m for m in ('torch', 'numpy', 'tqdm', 'urllib.request') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _shared_copies() -> list[str]:
    names = []
    for spec in list_datasets():
        try:
            path = resolve(spec)
        except FileNotFoundError:
            continue
        if path.parent.name == "data" and path.parent.parent.name == "shared":
            names.append(spec.name)
    return names


@pytest.mark.parametrize("name", _shared_copies() or [
    pytest.param("none", marks=pytest.mark.skip("no ../shared/data here: it checks that folder's copies"))])
def test_shared_copy_matches_registered_checksums(name):
    """Every file of the ../shared/data copy exists and hashes to the registered digest (no network)."""
    rows = verify(name)
    bad = [r for r in rows if not r.ok]
    assert not bad, bad[:3]
    spec = DATASETS.get(name)
    checked = sum(r.detail == "sha256 ok" for r in rows)
    assert checked >= len([p for p in spec.expected if spec.accepted_sha256(p)])
