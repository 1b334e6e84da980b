"""Small, permissively licensed samples shipped inside the package, so the tour and tests work on a lone clone.

The registered data sets (:mod:`torchworks.data.catalog`) are found on the machine or downloaded on request; the
samples here are always present. Each is a few public files (or a slice of them) whose licence allows
redistribution; ``sample_data/MANIFEST.json`` lists every file with its size, sha256, origin, licence and how it
was derived, and :func:`build_samples` rebuilds them from a ``shared/data`` folder, so that derivation is code.

=================================  ========================================================================
``photos/astronaut_face.png``      224x224 crop of scikit-image's ``astronaut.png`` (NASA, public domain)
``photos/china.jpg``               scikit-learn's ``china.jpg`` scene, unmodified (CC BY 2.0, danielbuechele)
``stereo/motorcycle_*.jpg``        Middlebury 2014 Motorcycle at 1/4 size as bundled by scikit-image, with the
                                   calibration and ground-truth pose in ``stereo/motorcycle_pair.json``
``series/seattle_temp_min.csv``    Seattle daily minimum temperature 2012-2015 (NOAA, public domain; from
                                   vega_datasets' ``seattle-weather.csv``), columns ``Date,Temp``
``fashion_mnist/sample.npz``       500 training (50 per class) + 1,000 test (100 per class) Fashion-MNIST
                                   images (MIT), with their indices in the official files
=================================  ========================================================================

Importing this module costs nothing beyond the standard library; numpy is imported by the loaders that need it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["SAMPLES_DIR", "SampleFile", "build_samples", "check_samples", "fashion_mnist_sample", "manifest",
           "sample_path", "stereo_pair"]

SAMPLES_DIR = Path(__file__).resolve().parent / "sample_data"
MANIFEST = "MANIFEST.json"

SIZE_LIMIT = 5_000_000  # bytes; a test keeps the shipped set below it (it is ~1.2 MB)


@dataclass(frozen=True)
class SampleFile:
    """One row of the manifest.

    Attributes:
        path: relative POSIX path below ``sample_data/``.
        bytes: file size. sha256: hex digest of the file.
        source: where the original came from (package and version, or repository and commit, and its path).
        licence: the licence of the original, as its origin states it.
        derived: what was done to the original ("unmodified" or the exact operation).
        used_by: what in the project reads it.
    """

    path: str
    bytes: int
    sha256: str
    source: str
    licence: str
    derived: str
    used_by: str


@cache
def manifest() -> tuple[SampleFile, ...]:
    """Every shipped sample file, as listed in ``sample_data/MANIFEST.json``."""
    rows = json.loads((SAMPLES_DIR / MANIFEST).read_text(encoding="utf-8"))["files"]
    return tuple(SampleFile(**row) for row in rows)


def sample_path(rel: str) -> Path:
    """Path of a shipped sample file.

    Raises:
        FileNotFoundError: ``rel`` is not in the manifest, or the package was installed without its data files.
    """
    if rel not in {f.path for f in manifest()}:
        raise FileNotFoundError(f"no shipped sample {rel!r}; samples: {', '.join(f.path for f in manifest())}")
    path = SAMPLES_DIR / rel
    if not path.is_file():
        raise FileNotFoundError(f"the shipped sample {path} is missing: the package was installed without its data "
                                "files (pyproject [tool.setuptools.package-data])")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check_samples() -> list[str]:
    """Problems with the shipped samples (missing, altered, unlisted files); empty when all is well."""
    problems = []
    listed = {f.path for f in manifest()}
    for f in manifest():
        path = SAMPLES_DIR / f.path
        if not path.is_file():
            problems.append(f"{f.path}: missing")
        elif path.stat().st_size != f.bytes or _sha256(path) != f.sha256:
            problems.append(f"{f.path}: differs from the manifest (size or sha256)")
    for path in sorted(SAMPLES_DIR.rglob("*")):
        rel = path.relative_to(SAMPLES_DIR).as_posix()
        if path.is_file() and rel != MANIFEST and rel not in listed:
            problems.append(f"{rel}: not in the manifest")
    return problems


def stereo_pair() -> dict[str, Any]:
    """The calibrated two-view sample: image paths, the shared intrinsics and the ground-truth relative pose.

    Returns:
        ``{"left": Path, "right": Path, "K": (fx, fy, cx, cy), "R": 3x3 nested list, "t": [3] unit vector,
        "note": str}`` with the pose in the OpenCV convention ``x_right = R x_left + t``.
    """
    meta = json.loads(sample_path("stereo/motorcycle_pair.json").read_text(encoding="utf-8"))
    return {"left": sample_path(meta["left"]), "right": sample_path(meta["right"]), "K": tuple(meta["K"]),
            "R": meta["R"], "t": meta["t"], "note": meta["note"]}


def fashion_mnist_sample(split: str) -> tuple[Any, Any]:
    """The shipped Fashion-MNIST slice: ``(images uint8 (N, 28, 28), labels int64 (N,))``.

    Args:
        split: ``"train"`` (500 images, 50 per class) or ``"test"`` (1,000 images, 100 per class).
    """
    import numpy as np

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    with np.load(sample_path("fashion_mnist/sample.npz"), allow_pickle=False) as d:
        return d[f"{split}_images"], d[f"{split}_labels"].astype(np.int64)


# --- rebuilding from a shared/data folder ---------------------------------------------------------------------

FACE_CROP = (124, 0, 348, 224)  # (left, upper, right, lower) in astronaut.png: the face with hair and chin
MOTORCYCLE = {"f": 994.978, "cx": 311.193, "cy": 254.877, "doffs": 31.086, "baseline_mm": 193.001}
JPEG_QUALITY = 85
FASHION_PER_CLASS = {"train": 50, "test": 100}


def build_samples(shared: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Writes every sample file (not the manifest) into ``out`` from the originals in a ``shared/data`` folder.

    Needs Pillow and numpy. PNG, CSV and the arrays are reproduced exactly; JPEG bytes depend on the libjpeg
    version, their pixels do not (within a level or two).
    """
    import csv
    import io

    import numpy as np
    from PIL import Image

    from torchworks.data.idx import read_idx

    shared, out = Path(shared), Path(out)
    for sub in ("photos", "stereo", "series", "fashion_mnist"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    with Image.open(shared / "skimage_bundled" / "astronaut.png") as im:
        im.crop(FACE_CROP).save(out / "photos" / "astronaut_face.png", optimize=True)
    (out / "photos" / "china.jpg").write_bytes((shared / "sklearn_sample_images" / "china.jpg").read_bytes())

    # The right view's principal point lies doffs = 31.086 px right of the left one's: dropping its first 31
    # columns gives both views one K (to 0.086 px), which is what `torchworks geometry two-view --K` takes.
    shift = int(MOTORCYCLE["doffs"])
    with Image.open(shared / "skimage_bundled" / "motorcycle_left.png") as left:
        left.convert("RGB").save(out / "stereo" / "motorcycle_left.jpg", quality=JPEG_QUALITY, optimize=True)
    with Image.open(shared / "skimage_bundled" / "motorcycle_right.png") as right:
        right.convert("RGB").crop((shift, 0, right.width, right.height)).save(
            out / "stereo" / "motorcycle_right.jpg", quality=JPEG_QUALITY, optimize=True)
    pair = {
        "left": "stereo/motorcycle_left.jpg", "right": "stereo/motorcycle_right.jpg",
        "K": [MOTORCYCLE["f"], MOTORCYCLE["f"], MOTORCYCLE["cx"], MOTORCYCLE["cy"]],
        "R": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "t": [-1.0, 0.0, 0.0],
        "note": "Middlebury 2014 Motorcycle (rectified stereo, 1/4 size as in scikit-image): the right camera sits "
                f"{MOTORCYCLE['baseline_mm']} mm along the left camera's x axis with the same orientation, so "
                "x_right = R x_left + t with R = I and unit t = (-1, 0, 0). The right view has its first "
                f"{shift} columns removed so that both views share K (principal points then differ by "
                f"{MOTORCYCLE['doffs'] - shift:.3f} px).",
    }
    (out / "stereo" / "motorcycle_pair.json").write_text(json.dumps(pair, indent=1) + "\n", encoding="utf-8")

    with open(shared / "vega_datasets" / "seattle-weather.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Date", "Temp"])
    for row in rows:
        writer.writerow([row["date"].replace("/", "-"), row["temp_min"]])
    (out / "series" / "seattle_temp_min.csv").write_text(buf.getvalue(), encoding="utf-8")

    fm = shared / "fashion_mnist_debian"
    arrays: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    for split, stem in (("train", "train"), ("test", "t10k")):
        images = read_idx(fm / f"{stem}-images-idx3-ubyte.gz")
        labels = read_idx(fm / f"{stem}-labels-idx1-ubyte.gz")
        idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: FASHION_PER_CLASS[split]]
                                      for c in range(10)]))
        arrays |= {f"{split}_images": images[idx], f"{split}_labels": labels[idx].astype(np.uint8),
                   f"{split}_index": idx.astype(np.int32)}
    np.savez_compressed(out / "fashion_mnist" / "sample.npz", **arrays)


if __name__ == "__main__":  # python -m torchworks.data.samples [SHARED_DATA]: rebuild the files (not the manifest)
    import sys

    build_samples(sys.argv[1] if len(sys.argv) > 1 else "../shared/data", SAMPLES_DIR)
    print("\n".join(check_samples()) or "samples match the manifest")
