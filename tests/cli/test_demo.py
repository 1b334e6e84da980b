"""``torchworks demo``: the tour page, its images, its commands, and how it reports what it could not show."""

from __future__ import annotations

import html
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FAST = "inpainting,forecast,gpt,translation"


def tw(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchworks.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def has_data(name: str) -> bool:
    from torchworks.data import find_dataset

    return find_dataset(name) is not None


def read_png(path: Path) -> np.ndarray:
    from torchworks.data.images import read_image

    return read_image(path)[0]


def commands(page: str) -> list[str]:
    """Every command line shown in the page's 'Reproduce' blocks, unescaped."""
    blocks = re.findall(r'<pre class="cmd">(.*?)</pre>', page, flags=re.S)
    return [html.unescape(line) for b in blocks for line in b.splitlines()]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    out = tmp_path_factory.mktemp("tour") / "demo"
    res = tw("demo", "--sections", FAST, "--tokens", "40", "--out", str(out), "--no-progress")
    return out, res


def test_page_links_existing_pngs_and_shows_each_section(tour):
    out, res = tour
    assert res.returncode == 0, res.stdout + res.stderr
    page = (out / "index.html").read_text(encoding="utf-8")
    for heading in ("Inpainting: every method on one photo", "Sequence: LSTM forecast against persistence",
                    "Transformer: GPT text from a prompt", "Transformer: German to English translation"):
        assert f">{heading} <span" in page
    assert "Geometry" not in page and "Distillation" not in page  # only the sections asked for
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 8
    for name in images:
        assert "/" not in name and not name.startswith("http"), name  # relative links beside the page
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 100, name
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network
    assert "<script" not in page
    # the summary names every section and the page; progress goes to stderr
    assert f"page: {out / 'index.html'}" in res.stdout
    for name in FAST.split(","):
        assert re.search(rf"^  {name}\s", res.stdout, flags=re.M), res.stdout
    assert "[1/4] inpainting" in res.stderr
    # the build folder was renamed into place: no temporary folder is left beside it
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo"]


def test_commands_are_shown_for_each_section(tour):
    out, _ = tour
    cmds = commands((out / "index.html").read_text(encoding="utf-8"))
    assert any(c.startswith("torchworks demo --sections inpainting") for c in cmds)
    assert any(c.startswith("torchworks inpaint ") and "--method" in c for c in cmds)
    assert any(c.startswith("torchworks generate --prompt ROMEO: --max-new-tokens 40 --seed 0") for c in cmds)
    assert any(c.startswith("torchworks demo --sections translation") for c in cmds)
    if has_data("jbrownlee_timeseries"):
        assert any(c.startswith("torchworks forecast --csv ") and "--pretrained melbourne_temp_lstm" in c
                   for c in cmds)


def test_inpainting_outputs_change_the_hole_and_keep_the_rest(tour):
    import torch
    import torch.nn.functional as F

    out, _ = tour
    photo = read_png(out / "inpainting_input.png")
    mask = read_png(out / "inpainting_mask.png")
    hole = mask > 127
    assert photo.shape == (256, 256, 3) and 0.05 < hole.mean() < 0.6
    masked = read_png(out / "inpainting_masked.png")
    assert (masked[~hole] == photo[~hole]).all() and (masked[hole] == 255).all()
    # learned methods grow the hole by 3 px and feather the seam: compare outside a 4 px margin
    near = F.max_pool2d(torch.from_numpy(hole)[None, None].float(), 9, 1, 4)[0, 0].numpy() > 0
    methods = [p.stem.removeprefix("inpainting_") for p in out.glob("inpainting_*.png")]
    methods = [m for m in methods if m not in ("input", "mask", "masked")]
    assert {"telea", "ns", "mean", "blur"} <= set(methods)
    assert "(learned): hole PSNR" in (out / "index.html").read_text(encoding="utf-8")  # a shipped model ran
    for method in methods:
        filled = read_png(out / f"inpainting_{method}.png")
        assert (filled[~near] == photo[~near]).all(), method
        assert np.abs(filled[hole].astype(int) - masked[hole].astype(int)).mean() > 10, method  # hole filled
    page = (out / "index.html").read_text(encoding="utf-8")
    for method in methods:
        assert f"<td>{method}</td>" in page


def test_inpaint_command_reproduces_the_learned_result(tour, tmp_path):
    out, _ = tour
    line = next(c for c in commands((out / "index.html").read_text(encoding="utf-8"))
                if c.startswith("torchworks inpaint "))
    argv = shlex.split(line.split("   #")[0])[1:]
    target = argv[argv.index("-o") + 1]
    argv[argv.index("-o") + 1] = str(tmp_path / target)
    res = tw(*argv)
    assert res.returncode == 0, res.stderr
    assert (read_png(tmp_path / target) == read_png(out / target)).all()


def test_gpt_text_is_what_the_generate_command_prints(tour):
    out, _ = tour
    page = (out / "index.html").read_text(encoding="utf-8")
    section = page.split('id="gpt"')[1]
    text = html.unescape(re.search(r"<pre>(.*?)</pre>", section, flags=re.S).group(1))
    res = tw("generate", "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "0")
    assert res.returncode == 0, res.stderr
    assert text.startswith("ROMEO:") and len(text) > len("ROMEO:") + 10
    assert res.stdout.removesuffix("\n") == text


def test_translation_not_shipped_is_said_clearly(tmp_path, monkeypatch, capsys):
    # The translator ships, so the "not shipped" path is exercised by pointing the section at a missing file.
    import torchworks.cli.demo_sections as ds

    monkeypatch.setattr(ds, "translator_file", lambda: tmp_path / "nowhere" / "translate.safetensors")
    out = tmp_path / "tour"
    assert _main("--sections", "translation", "--out", str(out)) == 0  # a missing model is not a failure
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "translation model not shipped yet" in page and "nowhere" in page
    assert re.search(r"^  translation\s+not shipped\s+translation model not shipped yet", capsys.readouterr().out,
                     flags=re.M)


def test_help_lists_every_section_with_the_data_it_falls_back_from():
    import torchworks.data  # noqa: F401  (registers the data sets)
    from torchworks.cli.demo_cmd import SECTION_NAMES
    from torchworks.cli.demo_sections import SECTIONS
    from torchworks.core.registry import DATASETS

    res = tw("demo", "--help")
    assert res.returncode == 0, res.stderr
    epilog = res.stdout.split("\nsections (default: all")[1].split("\nexamples:")[0]
    assert re.findall(r"^  (\w+) {2,}", epilog, flags=re.M) == list(SECTION_NAMES) == list(SECTIONS)
    # every data set named in brackets is one `torchworks data path NAME --download` knows, and each has a fallback
    fallbacks = re.findall(r"\[(\w+)[^\]]*; else ([^\]]+)\]", epilog)
    assert len(fallbacks) == 4 and all(name in DATASETS.names() for name, _ in fallbacks), fallbacks
    assert "shipped Fashion-MNIST slice" in dict(fallbacks)["cifar10"]
    assert "torchworks data path NAME --download" in epilog and "when it ships" not in res.stdout


def test_demo_command_rebuilds_one_section_in_its_own_folder(tmp_path, monkeypatch):
    from torchworks.cli.demo_context import DemoContext, demo_command

    monkeypatch.chdir(tmp_path)
    ctx = DemoContext(out=tmp_path / ".demo.part", final_out=tmp_path / "out" / "demo", threads=2)
    assert demo_command(ctx, "gpt", "--tokens", "5") == ("torchworks demo --sections gpt --out out/demo_gpt "
                                                        "--tokens 5 --threads 2")


def test_unknown_section_lists_close_matches(tmp_path):
    res = tw("demo", "--sections", "inpaint,gpt", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown demo section 'inpaint'" in res.stderr and "did you mean inpainting" in res.stderr
    assert not (tmp_path / "x").exists()


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    res = tw("demo", "--sections", "translation", "--out", str(tmp_path))
    assert res.returncode == 2 and "did not write" in res.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def _main(*argv: str) -> int:
    from torchworks.cli.main import main

    return main(["demo", "--no-progress", *argv])


def test_failing_section_is_reported_and_the_tour_goes_on(tmp_path, monkeypatch, capsys):
    from torchworks.cli import demo_sections

    def broken(ctx, res):
        res.commands.append("torchworks generate --prompt X")
        raise RuntimeError("the model exploded")

    monkeypatch.setitem(demo_sections.SECTIONS, "gpt", ("Transformer: GPT text from a prompt", broken))
    out = tmp_path / "tour"
    assert _main("--sections", "gpt,translation", "--out", str(out)) == 1
    stdout = capsys.readouterr().out
    assert "1 FAILED" in stdout and "RuntimeError: the model exploded" in stdout
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "the model exploded" in page and 'class="status failed"' in page and "traceback" in page
    assert "torchworks generate --prompt X" in page  # the command is shown even though the section failed
    assert "Transformer: German to English translation" in page  # later sections still ran
    # a second run replaces the folder as a whole: the failure is gone
    monkeypatch.undo()
    assert _main("--sections", "translation", "--out", str(out)) == 0
    assert "exploded" not in (out / "index.html").read_text(encoding="utf-8")


def test_translation_section_uses_the_shipped_interface(tmp_path, monkeypatch, capsys):
    import torchworks.transformer.seq2seq.data as td
    from torchworks.cli import demo_sections

    weights = tmp_path / "translate_de_en_multi30k.safetensors"
    weights.write_bytes(b"stand-in")
    calls = {}

    def fake_translate(model, tokenizer, sentences, *, beam_size=1, **kw):
        calls["beam"] = beam_size
        return [f"EN({s})" for s in sentences]

    monkeypatch.setattr(demo_sections, "translator_file", lambda: weights)
    monkeypatch.setattr(td, "load_translator", lambda path=None: ("model", "tokenizer"), raising=False)
    monkeypatch.setattr(td, "translate", fake_translate)
    out = tmp_path / "tour"
    assert _main("--sections", "translation", "--sentence", "Ein Hund rennt.", "--beam", "3", "--out", str(out)) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<td>Ein Hund rennt.</td><td>EN(Ein Hund rennt.)</td>" in page and calls["beam"] == 3
    assert "not shipped" not in page and "EN(Ein Hund rennt.)" in capsys.readouterr().out


def test_missing_data_falls_back_to_the_shipped_samples(tmp_path, monkeypatch, capsys):
    import torchworks.data.locate as locate

    monkeypatch.setattr(locate, "shared_data_dirs", lambda: [])
    monkeypatch.setenv("TORCHWORKS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHWORKS_DATA", raising=False)
    out = tmp_path / "tour"
    assert _main("--sections", "inpainting,geometry,forecast", "--out", str(out)) == 0
    stdout = capsys.readouterr().out
    assert re.search(r"^  inpainting\s+ok\s+\d+ methods on a 256 px scene photo", stdout, flags=re.M), stdout
    err = float(re.search(r"^  geometry\s+ok\s+.*error vs ground truth ([\d.]+) deg", stdout, flags=re.M).group(1))
    assert err < 0.5  # the shipped rectified pair: R = I
    assert re.search(r"^  forecast\s+ok\s+Seattle: LSTM RMSE [\d.]+ vs persistence", stdout, flags=re.M), stdout
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "FAILED" not in page and 'class="status missing"' not in page
    # each section names what it shows instead and the command that fetches what it would show
    assert "china.jpg" in page and "torchworks data path kodak24 --download" in page
    assert "Motorcycle" in page and "torchworks data path multiview_temple_sparse_ring --download" in page
    assert "Seattle" in page and "torchworks data path jbrownlee_timeseries --download" in page
    assert (out / "geometry_epilines.png").stat().st_size > 10_000 and (out / "forecast_seattle.png").is_file()
    assert not (tmp_path / "cache").exists()  # nothing was downloaded


def test_distill_shows_a_shipped_student_next_to_the_teacher(tmp_path, monkeypatch, capsys):
    if not has_data("cifar10"):
        pytest.skip("CIFAR-10 not found: torchworks data path cifar10 --download (170 MB)")
    import torchworks.distill  # noqa: F401  (registers the zoo)
    import torchworks.distill.task as task
    from torchworks.core.checkpoint import build_model, save_model

    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    (shipped / "resnet56_cifar10.safetensors").symlink_to(task.PRETRAINED_DIR / "resnet56_cifar10.safetensors")
    save_model(shipped / "resnet20_cifar10_kd.safetensors", build_model("resnet20", num_classes=10))
    (shipped / "resnet20_cifar10_kd.md").write_text("test accuracy **70.00 %** on the 10,000 test images\n")
    monkeypatch.setattr(task, "PRETRAINED_DIR", shipped)
    out = tmp_path / "tour"
    assert _main("--sections", "distill", "--cifar-limit", "100", "--out", str(out)) == 0
    stdout = capsys.readouterr().out
    assert re.search(r"teacher resnet56 [\d.]+ % on 100 test images( \(JPEG q75\))?; "
                     r"student resnet20_cifar10_kd [\d.]+ %", stdout)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<td>student</td><td>resnet20_cifar10_kd</td>" in page and "<td>70.00 %</td>" in page
    assert "not shipped yet" not in page and (out / "distill_accuracy.png").stat().st_size > 5000


def _write_cifar_npz(path: Path, n: int = 20) -> None:
    """A stand-in for the shared cifar10_jpeg_bytes.npz: n test (and n train) JPEG images."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    out = {}
    for split in ("train", "test"):
        blobs = []
        for _ in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=75)
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        out[f"{split}_jpeg"] = np.concatenate(blobs)
        out[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        out[f"{split}_labels"] = (np.arange(n) % 10).astype(np.uint8)
    np.savez_compressed(path, **out)


def test_distill_says_it_scores_the_jpeg_copy_of_cifar10(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCHWORKS_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    _write_cifar_npz(data / "cifar10_jpeg_bytes.npz")
    out = tmp_path / "tour"
    assert _main("--sections", "distill", "--cifar-limit", "10", "--data-dir", str(data), "--out", str(out)) == 0
    assert re.search(r"teacher resnet56 [\d.]+ % on 10 test images \(JPEG q75\)", capsys.readouterr().out)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("JPEG (quality 75) copy of CIFAR-10") >= 2  # the figure's caption and the text
    assert "card: full 10k test (JPEG q75 copy)" in page


def _lone_base(tmp_path: Path) -> Path:
    """A scratch folder with no ``shared/data`` beside any of its ancestors (as on a user's machine)."""
    import tempfile

    for parent in (tmp_path, Path("/var/tmp"), Path("/dev/shm"), Path.home()):
        if parent.is_dir() and os.access(parent, os.W_OK) and not any(
                (a / "shared" / "data").exists() for a in (parent, *parent.parents)):
            return Path(tempfile.mkdtemp(prefix="tw-lone-", dir=parent))
    pytest.skip("every scratch folder here has a shared/data folder above it: cannot simulate a lone clone")


def test_lone_clone_tour_shows_every_section_offline(tmp_path):
    """The package alone (src/ copied away from the project, no data folder, no cache, network refused) still
    gives every section of the tour a result, from the models and samples it ships."""
    import shutil

    base = _lone_base(tmp_path)
    try:
        clone = base / "clone"
        shutil.copytree(ROOT / "src", clone / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        (base / "empty").mkdir()
        env = {**os.environ, "PYTHONPATH": str(clone / "src"), "TORCHWORKS_DATA": str(base / "empty"),
               "TORCHWORKS_CACHE": str(base / "cache"), "http_proxy": "http://127.0.0.1:9",
               "https_proxy": "http://127.0.0.1:9", "no_proxy": "", "OMP_NUM_THREADS": "1"}

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True,
                                  timeout=900)

        where = run("-c", "import torchworks, torchworks.data as d; print(torchworks.__file__); "
                          "print(d.shared_data_dirs(), d.find_dataset('multiview_temple_sparse_ring'))")
        assert where.stdout.splitlines() == [str(clone / "src" / "torchworks" / "__init__.py"), "[] None"], where
        res = run("-m", "torchworks.cli.main", "demo", "--out", str(base / "tour"), "--tokens", "20",
                  "--no-progress")
        assert res.returncode == 0, res.stdout + res.stderr
        status = dict(re.findall(r"^  (\w+)\s+(ok|not shipped|no data|FAILED)", res.stdout, flags=re.M))
        assert status == {name: "ok" for name in
                          ("inpainting", "geometry", "forecast", "gpt", "translation", "distill")}, res.stdout
        out = base / "tour"
        for png in ("inpainting_input.png", "inpainting_telea.png", "geometry_epilines.png", "forecast_seattle.png",
                    "distill_accuracy.png"):
            assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert float(re.search(r"error vs ground truth ([\d.]+) deg", res.stdout).group(1)) < 0.5
        assert re.search(r"distill\s+ok\s+Fashion-MNIST \(no CIFAR-10 here\): teacher ViT [\d.]+ %; student "
                         r"[\d.]+ % labels only, [\d.]+ % with KD", res.stdout)
        page = (out / "index.html").read_text(encoding="utf-8")
        gpt_text = html.unescape(re.search(r"<pre>(.*?)</pre>", page.split('id="gpt"')[1], flags=re.S).group(1))
        assert gpt_text.startswith("ROMEO:") and len(gpt_text) > 20
        assert page.split('id="translation"')[1].split('id="distill"')[0].count("<tr><td>") == 3  # 3 sentences
        assert not (base / "cache").exists() or not any((base / "cache").rglob("*"))  # nothing downloaded
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_full_tour_every_section(tmp_path):
    out = tmp_path / "demo"
    res = tw("demo", "--out", str(out), "--cifar-limit", "200", "--tokens", "60", "--no-progress", timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Geometry: two views" in page and "Distillation: student and teacher accuracy" in page
    if has_data("multiview_temple_sparse_ring"):
        assert (out / "geometry_epilines.png").stat().st_size > 10_000
        err = float(re.search(r"error vs ground truth ([\d.]+) deg", res.stdout).group(1))
        assert err < 1.0
    if has_data("cifar10"):
        acc = float(re.search(r"teacher resnet56 ([\d.]+) %", res.stdout).group(1))
        assert 60 < acc < 90  # the card: 77.39 % on the full test split
        assert (out / "distill_accuracy.png").is_file()
