"""Image-level pipelines: OpenCV reads images and finds features, :mod:`torchworks.geometry` does the geometry.

- ``images``: grayscale reading, SIFT (ORB without SIFT) features and ratio-test matching, atomic PNG writing.
- ``two_view``: relative pose of two photos (matches, robust E, pose, flags, an epipolar-line figure).
- ``chessboard``: camera calibration from chessboard photos.
- ``middlebury``: the cameras (K, R, t) of the Middlebury multi-view sets, read from their ``*_par.txt``.
- ``sfm``, ``model_io``: incremental structure from motion; its COLMAP text model, PLY and picture.

OpenCV (the ``[cv]`` extra) is imported inside the functions, so importing this package costs nothing without it.
The command line (``torchworks geometry ...``) only parses arguments and calls these functions.
"""

from torchworks.geometry.pipelines.chessboard import calibrate_images, find_chessboards
from torchworks.geometry.pipelines.two_view import WeakPoseError, two_view

__all__ = ["WeakPoseError", "calibrate_images", "find_chessboards", "two_view"]
