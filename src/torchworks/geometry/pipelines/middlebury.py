"""Cameras of the Middlebury multi-view data sets (temple, dino): the ``*_par.txt`` file beside the images.

The file's first line is the number of images; each further line is ``name k11 k12 ... k33 r11 ... r33 t1 t2 t3``
(21 numbers): the intrinsics K, and R, t of the ``world_to_cam`` pose x = K (R X + t), row-major, in the OpenCV
camera frame.

References:
    Seitz, Curless, Diebel, Scharstein, Szeliski, "A Comparison and Evaluation of Multi-View Stereo Reconstruction
    Algorithms", CVPR 2006 (the data sets and the file format, https://vision.middlebury.edu/mview/data/).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

from torchworks.core.errors import DataError


class MiddleburyView(NamedTuple):
    """One image of a multi-view set: its file, K (3, 3), and the ``world_to_cam`` R (3, 3) and t (3,), all
    float64 tensors."""

    path: Path
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor


def read_middlebury_cameras(par_file: str | os.PathLike[str]) -> dict[str, MiddleburyView]:
    """Every camera listed in a Middlebury ``*_par.txt`` file, by image name, in file order.

    Returns:
        ``{image name: MiddleburyView}``; ``path`` is the image beside ``par_file`` (not checked to exist).

    Raises:
        FileNotFoundError: no such file. DataError: a line without a name and 21 numbers, or a count on the first
        line that differs from the number of cameras (the offending line or counts are named).
    """
    par = Path(par_file)
    lines = [ln.split() for ln in par.read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DataError(f"{par}: empty camera file")
    views = {}
    for i, parts in enumerate(lines[1:], 2):
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError:
            values = []
        if len(values) != 21:
            raise DataError(f"{par}:{i}: expected an image name and 21 numbers (K, R, t), got {' '.join(parts)!r}")
        v = torch.tensor(values, dtype=torch.float64)
        views[parts[0]] = MiddleburyView(par.parent / parts[0], v[:9].reshape(3, 3), v[9:18].reshape(3, 3), v[18:])
    if lines[0] != [str(len(views))]:
        raise DataError(f"{par}: the first line says {' '.join(lines[0])!r} cameras, the file lists {len(views)}")
    return views
