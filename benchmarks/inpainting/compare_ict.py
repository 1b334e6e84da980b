"""Issue 25's comparison: ICT-style transformer inpainting against Telea / NS / FSR, LaMa and ReLaMa, held out.

Writes the ``ict`` section of ``docs/results/inpainting.md`` and the grid ``docs/results/inpainting/ict_grid.jpg``.
Run from the repository root::

    .venv/bin/python benchmarks/inpainting/compare_ict.py --ict-prior PRIOR --ict-upsampler UPSAMPLER \\
        [--lama CKPT] [--relama CKPT] [--limit N] [--threads 1]
    .venv/bin/python benchmarks/inpainting/compare_ict.py --quick --doc /tmp/doc.md   # 2 photos, random tiny models

The photos, masks and metrics are those of the LaMa issue (``experiment_plan.SCENES``, as ``train_scenes.py eval``
uses them): BSDS500 test + Kodak24, centre square crops at 256 px, LaMa's thin / medium / thick masks with mask
seed 0, every method on the same hole (no dilation, no feathering). Hole PSNR, SSIM and the FID proxy (FID on
EfficientNet-Lite0 features, composites against originals) are those of one fill per hole, ICT's seed 0; seconds
are wall time per fill on ``--threads`` threads. Diversity is the mean pairwise distance between ``--samples``
fills of the same hole (ICT: seeds 0..S-1), in EfficientNet-Lite0 feature space (LPIPS weights are not available
offline here) and as hole L1 on the [0, 1] scale (:mod:`torchworks.inpainting.diversity`); a deterministic method
is run twice per hole and scores exactly 0 when both fills are identical. Diversity is measured on the first
``--diversity-images`` photos (default 50: 150 holes; FSR alone costs ~4 CPU-s a fill). ``--quick`` stands
random-weight tiny models in for every learned method and leaves FSR out (the numbers test the script, not the
methods); it must name its ``--doc``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import Machine, write_section  # noqa: E402

DOC = ROOT / "docs" / "results" / "inpainting.md"
GRID = ROOT / "docs" / "results" / "inpainting" / "ict_grid.jpg"
CLASSICAL = ("telea", "ns", "fsr")
FAMILIES = ("thin", "medium", "thick")
LABELS = {"telea": "Telea", "ns": "NS", "fsr": "FSR", "lama": "LaMa", "relama": "ReLaMa", "ict": "ICT"}
SECTION = "ict"
GRID_METHODS = ("telea", "lama", "relama", "ict")
"""Grid columns after the original and the masked input (ICT: its first three samples)."""


def _same_hole(inp: Any) -> Any:
    """Every method fills exactly the mask: the learned defaults (dilate 3 px, feather) are switched off."""
    inp.default_dilate, inp.default_feather = 0, False
    return inp


def learned_methods(args: argparse.Namespace) -> list[Any]:
    """LaMa, ReLaMa (when given) and ICT inpainters from the files in ``args``."""
    from experiment import learned_inpainter

    from torchworks.inpainting.learned import load_ict

    # A training checkpoint (its run's config.yaml beside checkpoints/) gets precise BN as the A/B evaluations do;
    # an exported model file was recalibrated when it was exported.
    out = [learned_inpainter(Path(p), name, recalibrate=(Path(p).parent.parent / "config.yaml").is_file())
           for name, p in (("lama", args.lama), ("relama", args.relama)) if p]
    out.append(_same_hole(load_ict(args.ict_prior, args.ict_upsampler, seed=0, device="cpu", name="ict")))
    return out


def quick_models(folder: Path) -> dict[str, Path]:
    """Random-weight tiny stand-ins saved as files, so ``--quick`` loads them exactly as a real run would."""
    import torchworks.inpainting.ict  # noqa: F401  (registers the ICT models)
    import torchworks.inpainting.nets  # noqa: F401
    from torchworks.core.checkpoint import build_model, save_model

    torch.manual_seed(0)
    prior = build_model("ict_prior_tiny")
    prior.palette.copy_(torch.rand(prior.vocab, 3))
    files = {"lama": "lama_tiny", "relama": "relama_tiny", "ict_prior": None, "ict_upsampler": "ict_upsampler_tiny"}
    paths = {k: folder / f"{k}.safetensors" for k in files}
    for key, name in files.items():  # the generators slimmed further (8 channels, 1 block): seconds, not minutes
        save_model(paths[key], prior if name is None else build_model(name, ngf=8, n_blocks=1))
    return paths


def diversity_rows(methods: list[Any], images: list[Path], samples: int, feature_model: Any,
                   grid_images: int, grid_family: str) -> tuple[dict[tuple[str, str], list[Any]], list[torch.Tensor]]:
    """Per (family, method name): the :class:`~torchworks.inpainting.diversity.Diversity` of each photo; and the
    grid tiles of the first ``grid_images`` photos (``grid_family`` masks)."""
    from torchworks.inpainting.diversity import diversity, is_pluralistic, sample_fills
    from torchworks.inpainting.evaluate import draw_mask, load_square, mask_generator

    gens = {f: mask_generator(f, 256) for f in FAMILIES}
    found: dict[tuple[str, str], list[Any]] = {}
    tiles = []
    for i, path in enumerate(images):
        img = load_square(path, 256)[None]
        for fam in FAMILIES:
            mask = draw_mask(gens[fam], 256, (0, i))[None]  # the harness's mask i of the family
            shown = []
            for m in methods:
                fills = sample_fills(m, img, mask, samples if is_pluralistic(m) else 2)
                found.setdefault((fam, m.name), []).append(diversity(fills, mask, feature_model))
                if m.name in GRID_METHODS:
                    shown += list(fills[:3] if is_pluralistic(m) else fills[:1])
            if i < grid_images and fam == grid_family:
                tiles.append(torch.cat([img[0], (img * (1 - mask) + mask)[0], *shown], -1))
    return found, tiles


def write_grid(tiles: list[torch.Tensor], path: Path, max_width: int = 2400) -> None:
    """The tiles stacked with a white 2 px frame, area-downscaled to ``max_width``, as a JPEG (quality 88)."""
    import torch.nn.functional as F

    from torchworks.data.images import write_image

    grid = torch.cat([F.pad(t, (2, 2, 2, 2), value=1.0) for t in tiles], -2)
    if grid.shape[-1] > max_width:
        grid = F.interpolate(grid[None], scale_factor=max_width / grid.shape[-1], mode="area")[0]
    pixels = (grid.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    write_image(path, pixels, quality=88)


def table(rows: list[Any], sets: dict, div: dict[tuple[str, str], list[Any]], names: list[str]) -> str:
    """Markdown: per mask family and method, the means over photos."""
    lines = ["| masks | method | hole PSNR (dB) | SSIM | FID-proxy | s / image | diversity (features) | "
             "diversity (hole L1) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for fam in FAMILIES:
        for name in names:
            sel = [r for r in rows if r.family == fam and r.method == name]
            fid = sets.get((fam, name), {}).get("fid", math.nan)
            d = div[(fam, name)]
            feat, l1 = np.mean([x.feature for x in d]), np.mean([x.hole_l1 for x in d])
            lines.append(f"| {fam} | {LABELS.get(name, name)} | {np.mean([r.psnr_hole for r in sel]):.2f} | "
                         f"{np.mean([r.ssim for r in sel]):.4f} | {fid:.2f} | "
                         f"{np.mean([r.seconds for r in sel]):.3f} | {feat:.3f} | {l1:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ict-prior", help="exported ICT prior (.safetensors)")
    ap.add_argument("--ict-upsampler", help="exported ICT upsampler (.safetensors)")
    ap.add_argument("--lama", help="general LaMa checkpoint (optional)")
    ap.add_argument("--relama", help="ReLaMa checkpoint (optional)")
    ap.add_argument("--samples", type=int, default=5, help="fills per hole for diversity (default 5)")
    ap.add_argument("--limit", type=int, help="first N held-out photos (default all 224)")
    ap.add_argument("--diversity-images", type=int, default=50, help="first N photos for diversity (default 50)")
    ap.add_argument("--grid-images", type=int, default=4, help="held-out photos in the grid (default 4)")
    ap.add_argument("--grid-family", default="thick", choices=FAMILIES, help="masks shown in the grid")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--doc", type=Path, help=f"results file (default {DOC.relative_to(ROOT)})")
    ap.add_argument("--grid", type=Path, help=f"grid image (default {GRID.relative_to(ROOT)})")
    ap.add_argument("--quick", action="store_true", help="2 photos, random-weight tiny models; needs --doc")
    args = ap.parse_args(argv)
    if args.quick and args.doc is None:
        ap.error("--quick writes a test section: name its --doc (the results file is for real runs)")
    if not args.quick and not (args.ict_prior and args.ict_upsampler):
        ap.error("--ict-prior and --ict-upsampler are required (or --quick)")
    if args.samples < 2:
        ap.error(f"--samples must be at least 2 (a diversity is a distance between samples), got {args.samples}")
    for f in (args.ict_prior, args.ict_upsampler, args.lama, args.relama):
        if f and not Path(f).is_file():
            ap.error(f"no such file: {f}")
    doc = args.doc or DOC
    grid_path = args.grid or (doc.parent / "inpainting" / "ict_grid.jpg" if args.doc else GRID)
    torch.set_num_threads(args.threads)

    from experiment_plan import SCENES, test_images

    from torchworks.inpainting import get_inpainter
    from torchworks.inpainting.evaluate import evaluate
    from torchworks.inpainting.fid import efficientnet_lite0

    machine = Machine.measure(threads=args.threads)
    tmp = tempfile.TemporaryDirectory() if args.quick else None
    if tmp is not None:
        paths = quick_models(Path(tmp.name))
        args.lama, args.relama = paths["lama"], paths["relama"]
        args.ict_prior, args.ict_upsampler = paths["ict_prior"], paths["ict_upsampler"]
    images = test_images(SCENES)[: 2 if args.quick else args.limit]
    methods = [get_inpainter(m) for m in CLASSICAL if not (args.quick and m == "fsr")] + learned_methods(args)
    names = [m.name for m in methods]
    effnet = efficientnet_lite0()
    t0 = time.process_time()
    ev = evaluate(methods, images, list(FAMILIES), size=256, seed=0, grid_images=0, feature_model=effnet)
    rows = ev.rows
    for r in rows:
        r.method = r.method.name
    sets = {(fam, m.name): v for (fam, m), v in ev.sets.items()}
    n_div = min(len(images), max(args.diversity_images, args.grid_images))
    div, tiles = diversity_rows(methods, images[:n_div], args.samples, effnet, args.grid_images, args.grid_family)
    cpu = time.process_time() - t0
    machine.finish()
    if tmp is not None:
        tmp.cleanup()
    write_grid(tiles, grid_path)

    columns = [LABELS[n] for n in GRID_METHODS if n in names and n != "ict"]
    cmd = " ".join(["python benchmarks/inpainting/compare_ict.py", *(sys.argv[1:] if argv is None else argv)])
    image_link = grid_path.relative_to(doc.parent) if grid_path.is_relative_to(doc.parent) else grid_path
    body = [f"Produced by `{cmd}`; {machine.describe()}; {cpu / 60:.1f} CPU-minutes.", ""]
    if args.quick:
        body += ["**Quick mode: random-weight tiny models; these numbers test the script, not the methods.**", ""]
    body += [f"{len(images)} held-out photos (BSDS500 test + Kodak24, never trained on), 256 px centre crops, "
             "LaMa's thin / medium / thick masks with mask seed 0, each method filling exactly the mask. Hole PSNR, "
             "SSIM and the FID proxy (FID on ImageNet EfficientNet-Lite0 features, composites vs originals; not "
             "comparable to Inception FID) come from one fill per hole (ICT: seed 0). Diversity (first "
             f"{n_div} photos): mean pairwise distance between {args.samples} fills of the same hole (ICT: seeds "
             f"0-{args.samples - 1}) in EfficientNet-Lite0 feature space and as hole L1 ([0, 1] scale); "
             "deterministic methods are run twice per hole and score exactly 0 when both fills are identical.", "",
             table(rows, sets, div, names), "",
             f"![ICT grid]({image_link})", "",
             f"Grid: {len(tiles)} held-out photos with {args.grid_family} masks; columns: original | masked | "
             + " | ".join(columns) + " | ICT samples 1-3 (seeds 0-2)."]
    if machine.busy:
        body += ["", f"Note: the machine was loaded ({machine.load_text()}): wall seconds are inflated."]
    write_section(doc, SECTION, "\n".join(body), heading="## Transformer inpainting (ICT-style, issue 25)",
                  title="# Inpainting results")
    print(f"wrote the {SECTION} section of {doc} and {grid_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
