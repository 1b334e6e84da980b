"""Run pycolmap's incremental SfM on a folder of images and print a JSON summary (for bench_sfm.py).

Runs inside a separate environment that has pycolmap (it is never a dependency of torchworks), e.g.:

    python -m venv /tmp/pycolmap-venv && /tmp/pycolmap-venv/bin/pip install pycolmap
    /tmp/pycolmap-venv/bin/python benchmarks/geometry/pycolmap_runner.py IMAGE_DIR --names a.png b.png \\
        --K fx,fy,cx,cy --max-size 1536 --threads 1 --work /tmp/colmap_work

K is in OpenCV's pixel convention (as torchworks takes it); COLMAP's is shifted by half a pixel, so cx, cy get
+0.5. The intrinsics are held fixed in bundle adjustment (as in torchworks' run). The JSON holds, for the largest
model: per image name the world_to_cam quaternion (w, x, y, z) and translation, the number of points, the mean
reprojection error, and the wall and CPU seconds of each stage.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import pycolmap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", help="folder of the images")
    ap.add_argument("--names", nargs="+", required=True, help="image file names inside the folder")
    ap.add_argument("--K", required=True, help="fx,fy,cx,cy in OpenCV's pixel convention")
    ap.add_argument("--max-size", type=int, default=-1, help="SIFT on images at most this large (-1: full size)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", required=True, help="scratch folder (deleted and recreated)")
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fx, fy, cx, cy = (float(v) for v in args.K.split(","))
    db = work / "database.db"
    times = {}

    def stage(name, fn):
        c, w = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        out = fn()
        c2 = resource.getrusage(resource.RUSAGE_SELF)
        times[name] = {"wall": time.perf_counter() - w,
                       "cpu": (c2.ru_utime + c2.ru_stime) - (c.ru_utime + c.ru_stime)}
        return out

    reader = pycolmap.ImageReaderOptions(camera_model="PINHOLE", camera_params=f"{fx},{fy},{cx + 0.5},{cy + 0.5}")
    extraction = pycolmap.FeatureExtractionOptions(max_image_size=args.max_size, num_threads=args.threads)
    stage("features", lambda: pycolmap.extract_features(db, args.images, image_names=args.names,
                                                        camera_mode=pycolmap.CameraMode.SINGLE,
                                                        reader_options=reader, extraction_options=extraction,
                                                        device=pycolmap.Device.cpu))
    matching = pycolmap.FeatureMatchingOptions(num_threads=args.threads)
    stage("matching", lambda: pycolmap.match_exhaustive(db, matching_options=matching, device=pycolmap.Device.cpu))
    options = pycolmap.IncrementalPipelineOptions(num_threads=args.threads, ba_refine_focal_length=False,
                                                  ba_refine_principal_point=False, ba_refine_extra_params=False)
    models = stage("mapping", lambda: pycolmap.incremental_mapping(db, args.images, work / "sparse", options=options))
    best = max(models.values(), key=lambda m: m.num_reg_images()) if models else None
    out = {"times": times, "models": len(models), "images": {}, "points": 0, "mean_reprojection_error": None}
    if best is not None:
        for image in best.images.values():
            if not image.has_pose:
                continue
            pose = image.cam_from_world()
            x, y, z, w = pose.rotation.quat  # Eigen order (x, y, z, w)
            out["images"][image.name] = {"q_wxyz": [float(w), float(x), float(y), float(z)],
                                         "t": [float(v) for v in pose.translation]}
        out["points"] = best.num_points3D()
        out["mean_reprojection_error"] = best.compute_mean_reprojection_error()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
