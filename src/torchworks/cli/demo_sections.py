"""The sections of ``torchworks demo``: each calls one capability on a shipped model and renders what it returns.

Every builder takes a :class:`~torchworks.cli.demo_context.DemoContext` and the
:class:`~torchworks.cli.demo_page.SectionResult` to fill. It records its commands first (so a failure still shows
how to reproduce it), chooses the data to show, calls the domain (``inpainting.compare``, ``geometry.pipelines``
and ``geometry.pose_error``, ``sequence.forecasting``, ``transformer``; the distillation section is
:mod:`torchworks.cli.demo_distill`), writes its PNG files into ``ctx.out`` and raises
:class:`~torchworks.cli.demo_context.NotShipped` when its model has not been shipped yet. Missing data sets raise
the data layer's ``DataNotFoundError``; the caller reports both as expected situations, anything else as a
failure. Heavy modules are imported inside the builders, so importing this module stays cheap.

A section whose data set is not on the machine falls back to the samples shipped in the package
(:mod:`torchworks.data.samples`, permissive licences only) and says so, so that every section shows a result on a
clone with no data folder and no network.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path

from torchworks.cli.demo_context import (
    DEFAULT_SENTENCES,
    PACKAGE,
    DemoContext,
    NotShipped,
    demo_command,
    shown,
    threads_flag,
)
from torchworks.cli.demo_page import SectionResult

TEMPLE_VIEWS = (10, 11)
SCENE_SIZE = 256  # the evaluation size of docs/results/inpainting.md
SCENE_PHOTO = "kodim22.png"  # Kodak24's barn by a pond: sky, grass, water, edges


# --- (a) inpainting -------------------------------------------------------------------------------------------

def _scene(ctx: DemoContext, res: SectionResult) -> Path:
    """A scene photo that no scene model trained on: Kodak24's barn (``kodim22``, part of the held-out evaluation
    split of ``docs/results/inpainting.md``) read from the data catalog at run time (Kodak's images carry no formal
    licence text, so none is copied into the package), else the scene photo shipped in the package, which the
    scene models did train on (the page says so)."""
    from torchworks.core.errors import DataNotFoundError
    from torchworks.data import dataset_path
    from torchworks.data.samples import sample_path

    try:
        photo = dataset_path("kodak24", ctx.data_dir) / SCENE_PHOTO
    except DataNotFoundError:
        photo = sample_path("photos/china.jpg")
        res.text(f"Photo: {photo.name}, shipped in the package (scikit-learn's sample, CC BY 2.0), centre square "
                 f"area-resized to {SCENE_SIZE} px. It is one of the scene models' training photos, so it flatters "
                 "them; the held-out Kodak24 photos (data set kodak24, not shipped: no formal licence text) are "
                 "not on this machine: `torchworks data path kodak24 --download` fetches them.")
        return photo
    res.text(f"Photo: {SCENE_PHOTO} from Kodak24 (data set kodak24, read at run time), one of the 224 held-out "
             f"photos of the inpainting evaluation that no model here trained on; centre square area-resized to "
             f"{SCENE_SIZE} px, the evaluation size.")
    return photo


def inpainting(ctx: DemoContext, res: SectionResult) -> None:
    """(a) Every registered inpainter on the same held-out scene photo and mask, best-ranked first, side by side
    with hole PSNR and time (:func:`torchworks.inpainting.compare.compare_methods`)."""
    import numpy as np

    from torchworks.core.registry import INPAINTERS, MASKS
    from torchworks.data.images import write_image
    from torchworks.data.masks import scaled_mask
    from torchworks.inpainting.compare import ERROR, RAN, compare_methods, registered_methods
    from torchworks.inpainting.task import load_photo
    from torchworks.ui.ranking import methods_by_quality

    out = shown(ctx.final_out)
    res.commands.append(demo_command(ctx, "inpainting"))
    photo = load_photo(_scene(ctx, res), SCENE_SIZE)  # (256, 256, 3) uint8
    # LaMa's thick evaluation masks at the evaluation size, as in docs/results/inpainting.md.
    hole = scaled_mask(MASKS.build("thick_256"), SCENE_SIZE, 256, (1234, ctx.seed))[0].numpy() > 0.5
    masked = photo.copy()
    masked[hole] = 255
    write_image(ctx.out / "inpainting_input.png", photo)
    write_image(ctx.out / "inpainting_mask.png", hole.astype(np.uint8) * 255)
    write_image(ctx.out / "inpainting_masked.png", masked)
    names, aliases = registered_methods()
    methods = methods_by_quality(names)  # the UI's order: the best for natural photos first
    res.commands.append(shlex.join(["torchworks", "inpaint", f"{out}/inpainting_input.png", "--mask",
                                    f"{out}/inpainting_mask.png", "-o", f"inpainting_{methods[0]}.png", "--method",
                                    methods[0]]) + f"   # or --method {', '.join(methods[1:])}")
    tiles = [("inpainting_input.png", "photo"), ("inpainting_mask.png", f"mask, white = hole ({hole.mean():.0%})"),
             ("inpainting_masked.png", "input with the hole")]
    rows = []
    results = compare_methods(photo, hole, methods, progress=lambda name: ctx.note(f"inpainting: {name}"))
    for r in results:
        if r.status != RAN:
            rows.append([r.name, r.kind, r.status, "", r.note])
            continue
        write_image(ctx.out / f"inpainting_{r.name}.png", r.filled)
        tiles.append((f"inpainting_{r.name}.png", f"{r.name} ({r.kind}): hole PSNR {r.psnr_hole:.2f} dB"))
        doc = (INPAINTERS.get(r.name).__doc__ or "").split(". Model card")[0] if r.kind == "learned" else ""
        rows.append([r.name, r.kind, f"{r.psnr_hole:.2f}", f"{r.ms:.0f}", doc])
    res.images(tiles)
    res.table(["method", "kind", "hole PSNR (dB)", "time (ms)", "note"], rows)
    if aliases:
        res.text("Aliases, not repeated: " + ", ".join(f"{a} = {t}" for a, t in aliases.items()) + ".")
    res.text("Methods are listed in the order the web UI offers them: by the held-out evaluation in "
             "docs/results/inpainting.md, the best for natural photos first. Pixels outside the hole (grown by the "
             "method's default dilation) are the input's, bit for bit. Each learned model's card "
             "(src/torchworks/inpainting/pretrained/*.md) states its domain and its margin over Telea.")
    scored = [r for r in results if r.status == RAN]
    best = max(scored, key=lambda r: r.psnr_hole) if scored else None
    res.summary = f"{len(scored)} methods on a {SCENE_SIZE} px scene photo" + (
        f"; best hole PSNR {best.name} {best.psnr_hole:.2f} dB" if best else "")
    failures = [r.name for r in results if r.status == ERROR]
    if failures:
        raise RuntimeError(f"inpainter(s) failed: {', '.join(failures)} (see the table)")


# --- (b) geometry ---------------------------------------------------------------------------------------------

def _two_views(ctx: DemoContext):
    """(view a, view b, "fx,fy,cx,cy", ground-truth R and t of x_b = R x_a + t, data note): two temple views, or,
    when that data set is absent, the rectified motorcycle pair shipped in the package."""
    import torch

    from torchworks.core.errors import DataError, DataNotFoundError
    from torchworks.data import dataset_path
    from torchworks.data.samples import stereo_pair
    from torchworks.geometry.pipelines.middlebury import read_middlebury_cameras
    from torchworks.geometry.pose_error import relative_pose

    try:
        base = dataset_path("multiview_temple_sparse_ring", ctx.data_dir)
    except DataNotFoundError:
        pair = stereo_pair()
        k_arg = ",".join(repr(float(v)) for v in pair["K"])
        note = ("Data: the Middlebury 2014 Motorcycle stereo pair shipped in the package (scikit-image's 1/4-size "
                "copy; cite Scharstein et al., GCPR 2014). " + pair["note"] + " The temple views this section "
                "shows when they are on the machine (data set multiview_temple_sparse_ring, research terms, not "
                "shipped) are fetched by `torchworks data path multiview_temple_sparse_ring --download`.")
        return (pair["left"], pair["right"], k_arg, torch.tensor(pair["R"], dtype=torch.float64),
                torch.tensor(pair["t"], dtype=torch.float64), note)
    cameras = read_middlebury_cameras(base / "templeSR_par.txt")
    names = [f"templeSR{i:04d}.png" for i in TEMPLE_VIEWS]
    if any(n not in cameras for n in names):
        raise DataError(f"views {' and '.join(names)} are not both listed in {base / 'templeSR_par.txt'}")
    a, b = (cameras[n] for n in names)
    k_arg = ",".join(repr(float(a.K[i, j])) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))  # fx, fy, cx, cy
    note = ("Data: Middlebury multi-view templeSparseRing (research use; cite Seitz et al. CVPR 2006), read at run "
            "time from the data catalog.")
    return (a.path, b.path, k_arg, *relative_pose(a.R, a.t, b.R, b.t), note)


def geometry(ctx: DemoContext, res: SectionResult) -> None:
    """(b) Two calibrated views: matches, essential matrix by RANSAC, pose, epipolar lines
    (:func:`torchworks.geometry.pipelines.two_view`); the recovered pose is compared with the data set's ground
    truth (the Middlebury temple, else the shipped motorcycle pair) by
    :func:`torchworks.geometry.pose_error.relative_pose_error`."""
    import math

    from torchworks.geometry.pipelines import two_view
    from torchworks.geometry.pose_error import relative_pose_error
    from torchworks.geometry.rotations import matrix_to_axis_angle

    res.commands.append(demo_command(ctx, "geometry"))
    pa, pb, k_arg, r_gt, t_gt, data_note = _two_views(ctx)
    res.commands.append(shlex.join(["torchworks", "geometry", "two-view", shown(pa), shown(pb), "--K", k_arg,
                                    "--seed", str(ctx.seed), "--out", "epilines.png"]))
    ctx.note("geometry: SIFT matches and RANSAC")
    out = two_view(pa, pb, K=tuple(float(v) for v in k_arg.split(",")), out=str(ctx.out / "geometry_epilines.png"),
                   seed=ctx.seed)
    rot_err, t_err = (math.degrees(float(e)) for e in relative_pose_error(out["R"], out["t"], r_gt, t_gt))
    angle = math.degrees(float(matrix_to_axis_angle(out["R"], project=True).norm()))
    angle_gt = math.degrees(float(matrix_to_axis_angle(r_gt).norm()))
    res.images([("geometry_epilines.png", f"{pa.name} | {pb.name}: inlier matches (dots) and the epipolar "
                 "line each one induces in the other view")])
    res.table(["", "recovered", "ground truth", "error"], [
        ["rotation angle", f"{angle:.3f} deg", f"{angle_gt:.3f} deg", f"{rot_err:.3f} deg (geodesic)"],
        ["translation direction", " ".join(f"{v:.4f}" for v in out["t"].tolist()),
         " ".join(f"{v:.4f}" for v in (t_gt / t_gt.norm()).tolist()), f"{t_err:.2f} deg"],
        ["inliers", str(int(out["inliers"].sum())), "", ""]])
    res.pre("\n".join(ln for ln in out["report"].splitlines() if not ln.startswith("wrote ")))
    res.text(data_note + " Poses follow the OpenCV convention, x2 = R x1 + t with |t| = 1 (scale is not observable "
             "from two views).")
    res.summary = (f"{int(out['inliers'].sum())} inliers; rotation {angle:.2f} deg, error vs ground truth "
                   f"{rot_err:.2f} deg (t direction {t_err:.1f} deg)")


# --- (c) forecasting ------------------------------------------------------------------------------------------

def _series(ctx: DemoContext) -> tuple[Path, str, str]:
    """(CSV, place, data note): the Melbourne series the model trained on or, when that data set is absent, the
    Seattle series shipped in the package."""
    from torchworks.core.errors import DataNotFoundError
    from torchworks.data import dataset_path
    from torchworks.data.samples import sample_path

    try:
        csv = dataset_path("jbrownlee_timeseries", ctx.data_dir) / "daily-min-temperatures.csv"
    except DataNotFoundError:
        return (sample_path("series/seattle_temp_min.csv"), "seattle",
                "Data: daily minimum temperatures in Seattle 2012-2015 (NOAA, public domain; shipped in the package "
                "from vega_datasets), a city and years the model never saw: it runs unchanged, trained on Melbourne. "
                "Chronological 70/15/15 split, scored on the last 15 %. The Melbourne series of the model card "
                "(data set jbrownlee_timeseries, not shipped: its licence is unclear) is fetched by `torchworks data "
                "path jbrownlee_timeseries --download`.")
    return (csv, "melbourne", "Data: daily minimum temperatures in Melbourne 1981-1990, chronological 70/15/15 "
            "split, scored on the last 15 %.")


def forecast(ctx: DemoContext, res: SectionResult) -> None:
    """(c) The shipped Melbourne temperature LSTM on a test period, against persistence and seasonal naive."""
    import shutil

    from torchworks.sequence.forecasting import evaluate_pretrained

    res.commands.append(demo_command(ctx, "forecast"))
    csv, place, data_note = _series(ctx)
    res.commands.append(shlex.join(["torchworks", "forecast", "--csv", shown(csv), "--column", "Temp",
                                    "--pretrained", "melbourne_temp_lstm", "--season", "365", "--out",
                                    "runs/seq_forecast"]))
    ctx.note("forecast: scoring the test windows")
    scratch = ctx.out / "_forecast"
    report = evaluate_pretrained(csv, "melbourne_temp_lstm", target="Temp", season=365, out_dir=scratch)
    os.replace(report.figure, ctx.out / f"forecast_{place}.png")
    shutil.rmtree(scratch, ignore_errors=True)
    res.images([(f"forecast_{place}.png", f"{place.title()} test period: truth, the LSTM's 1-day-ahead forecast "
                 "and persistence (tomorrow = today)")])
    base = report.errors["persistence"][0]
    res.table(["model", "RMSE (deg C)", "MAE (deg C)", "RMSE / persistence"],
              [[k, f"{r:.4f}", f"{m:.4f}", f"{r / base:.3f}"] for k, (r, m) in report.errors.items()])
    res.pre("\n".join(report.lines()[:1] + [ln for ln in report.lines() if ln.startswith("the LSTM")]))
    res.text("Model: sequence/pretrained/melbourne_temp_lstm (4,385 parameters, 10 s of training; recipe and card "
             "beside the weights). " + data_note)
    lstm = report.errors["lstm"][0]
    res.summary = f"{place.title()}: LSTM RMSE {lstm:.3f} vs persistence {base:.3f} ({lstm / base:.2f}x)"


# --- (d) GPT --------------------------------------------------------------------------------------------------

def gpt(ctx: DemoContext, res: SectionResult) -> None:
    """(d) Text sampled from the shipped character-level Shakespeare GPT, exactly as ``torchworks generate``."""
    import torch

    from torchworks.transformer.gpt.generate import generate_text
    from torchworks.transformer.pretrained import load_pretrained

    res.commands += [demo_command(ctx, "gpt", "--prompt", ctx.prompt, "--tokens", str(ctx.tokens)),
                     shlex.join(["torchworks", "generate", "--prompt", ctx.prompt, "--max-new-tokens",
                                 str(ctx.tokens), "--seed", str(ctx.seed), *threads_flag(ctx)])]
    model, tokenizer = load_pretrained()
    ctx.note(f"gpt: sampling {ctx.tokens} characters")
    # The defaults of `torchworks generate`: temperature 0.8, top-k 40, top-p 0.95, KV cache.
    text = generate_text(model, tokenizer, ctx.prompt, ctx.tokens, temperature=0.8, top_k=40, top_p=0.95,
                         generator=torch.Generator().manual_seed(ctx.seed), use_cache=True)
    res.pre(ctx.prompt + text)
    params = sum(p.numel() for p in model.parameters())
    res.text(f"Model: transformer/pretrained/gpt_char_shakespeare ({params / 1e6:.2f} M parameters, character "
             "level, trained here on tinyshakespeare; see its model card). Sampling: temperature 0.8, top-k 40, "
             f"top-p 0.95, seed {ctx.seed}.")
    res.summary = f"{len(text)} characters after {ctx.prompt!r}"


# --- (e) translation ------------------------------------------------------------------------------------------

def translator_file() -> Path:
    """Where the German-to-English model ships."""
    return PACKAGE / "transformer" / "pretrained" / "translate_de_en_multi30k.safetensors"


def translation(ctx: DemoContext, res: SectionResult) -> None:
    """(e) German sentences translated to English by the shipped encoder-decoder (beam search)."""
    import torchworks.transformer.seq2seq.data as td

    extra = [a for s in ctx.sentences for a in ("--sentence", s)] if ctx.sentences != list(DEFAULT_SENTENCES) else []
    res.commands.append(demo_command(ctx, "translation", *extra, "--beam", str(ctx.beam)))
    code = (f"from torchworks.transformer.seq2seq.data import load_translator, translate; m, t = "
            f"load_translator(); print(translate(m, t, {json.dumps(ctx.sentences, ensure_ascii=False)}, "
            f"beam_size={ctx.beam}))")
    res.commands.append(shlex.join(["python", "-c", code]))
    load = getattr(td, "load_translator", None)
    if load is None or not translator_file().is_file():
        raise NotShipped(f"translation model not shipped yet ({shown(translator_file())} and "
                         "torchworks.transformer.seq2seq.data.load_translator are expected)")
    ctx.note("translation: loading the model")
    try:
        model, tokenizer = load()
    except FileNotFoundError as exc:
        raise NotShipped(f"translation model not shipped yet ({exc})") from exc
    ctx.note(f"translation: beam search ({ctx.beam})")
    english = td.translate(model, tokenizer, ctx.sentences, beam_size=ctx.beam)
    res.table(["German", "English (model)"], [[de, en] for de, en in zip(ctx.sentences, english, strict=True)])
    card = translator_file().with_suffix(".md")
    res.text(f"Model: {shown(translator_file())}, trained on Multi30k (image captions: short descriptive "
             f"sentences translate best); beam size {ctx.beam}." + (f" Model card: {shown(card)}." if card.is_file()
                                                                     else ""))
    res.summary = f"{len(english)} sentences; first: {english[0]!r}"


# --- (f) distillation: torchworks.cli.demo_distill ------------------------------------------------------------

def distill(ctx: DemoContext, res: SectionResult) -> None:
    """(f) The shipped CIFAR-10 teacher next to its distilled students (or, without CIFAR-10, distillation on the
    shipped Fashion-MNIST slice); see :mod:`torchworks.cli.demo_distill`."""
    from torchworks.cli.demo_distill import distill as build

    build(ctx, res)


SECTIONS: dict[str, tuple[str, Callable[[DemoContext, SectionResult], None]]] = {
    "inpainting": ("Inpainting: every method on one photo", inpainting),
    "geometry": ("Geometry: two views, epipolar lines and the recovered pose", geometry),
    "forecast": ("Sequence: LSTM forecast against persistence", forecast),
    "gpt": ("Transformer: GPT text from a prompt", gpt),
    "translation": ("Transformer: German to English translation", translation),
    "distill": ("Distillation: student and teacher accuracy", distill),
}
"""Section name -> (page title, builder), in page order."""
