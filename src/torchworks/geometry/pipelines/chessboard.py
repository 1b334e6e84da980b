"""Camera calibration from photos of a chessboard: OpenCV finds the corners, :mod:`..calibration` solves."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence

from torchworks.core.errors import DataError


def _paths(images: str | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(images, str | os.PathLike):
        paths = sorted(glob.glob(str(images)))
        if not paths:
            raise FileNotFoundError(f"no images match {str(images)!r}")
        return paths
    return [str(p) for p in images]


def find_chessboards(images: str | Sequence[str | os.PathLike[str]], pattern: tuple[int, int] = (9, 6),
                     verbose: bool = True):
    """Sub-pixel inner corners of a ``pattern`` = (columns, rows) chessboard in each image that shows one.

    Args:
        images: a glob (quoted on the shell, e.g. ``'left*.jpg'``) or a list of paths.
        pattern: inner corners per row and per column.
        verbose: name the images without a board on stderr.

    Returns:
        (corners (V, cols * rows, 2) float64 numpy array of the V images with a board, their paths, (H, W) of the
        first image).
    """
    import cv2
    import numpy as np

    from torchworks.geometry.pipelines.images import read_gray

    found, used, size = [], [], None
    for p in _paths(images):
        gray = read_gray(p)
        size = size or gray.shape[:2]
        ok, corners = cv2.findChessboardCorners(gray, pattern)
        if ok:
            corners = cv2.cornerSubPix(gray, corners.reshape(-1, 1, 2), (11, 11), (-1, -1),
                                       (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3))
            found.append(corners.reshape(-1, 2).astype(np.float64))
            used.append(p)
        elif verbose:
            print(f"no {pattern[0]}x{pattern[1]} chessboard in {p}", file=sys.stderr)
    corners = np.stack(found) if found else np.zeros((0, pattern[0] * pattern[1], 2))
    return corners, used, size


def board_points(pattern: tuple[int, int], square: float = 1.0):
    """(cols * rows, 3) float64 corner coordinates on the plane Z = 0, row by row, in units of ``square``."""
    import numpy as np

    board = np.zeros((pattern[0] * pattern[1], 3))
    board[:, :2] = np.mgrid[0:pattern[0], 0:pattern[1]].T.reshape(-1, 2) * square
    return board


def calibrate_images(images: str | Sequence[str | os.PathLike[str]], pattern: tuple[int, int] = (9, 6),
                     square: float = 1.0, min_views: int = 2):
    """Calibrate one camera from chessboard photos.

    Returns a :class:`~torchworks.geometry.calibration.CalibrationResult`.

    Args:
        images: a glob or a list of paths.
        pattern: inner corners (columns, rows).
        square: side of a square, in the unit the translations should have.
        min_views: fewest images with a detected board (2 is the least
            :func:`~torchworks.geometry.calibration.calibrate_camera` accepts).

    Raises:
        FileNotFoundError: the glob matches nothing; DataError: fewer than ``min_views`` boards found.
    """
    import torch

    from torchworks.geometry.calibration import calibrate_camera

    corners, used, size = find_chessboards(images, pattern)
    if len(used) < max(2, min_views):
        n = len(_paths(images))
        raise DataError(f"chessboard found in {len(used)} of {n} images; need at least {max(2, min_views)}")
    return calibrate_camera(torch.from_numpy(board_points(pattern, square)), torch.from_numpy(corners),
                            image_size=size)
