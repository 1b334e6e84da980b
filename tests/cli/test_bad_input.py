"""Every verb and sub-verb, given bad input, answers with ONE line on stderr, exit code 2 and no output file.

One parametrised test per verb: each row is a command line (``{png}``, ``{out}``, ... name the fixture files) and the
fragments the error line must contain. The kinds of bad input tried: a missing file, a file of the wrong type (a PNG
given as YAML/CSV/text), a corrupt file (random bytes, a pickled .npy, a truncated image, malformed YAML), an
unknown name, a number out of range and an output that cannot be written (a path under a regular file). The CLI
runs in-process (``main(argv)``) to keep the table fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from torchworks.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny_fashion.yaml")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Bad (and a few good) input files, shared by every row."""
    from PIL import Image

    d = tmp_path_factory.mktemp("bad_input")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / "photo.png")
    hole = np.zeros((40, 40), np.uint8)
    hole[10:20, 10:20] = 255
    Image.fromarray(hole).save(d / "mask.png")
    (d / "trunc.png").write_bytes((d / "photo.png").read_bytes()[:120])
    (d / "random.bin").write_bytes(b"\x00\xff" + rng.bytes(4094))  # NUL bytes and invalid UTF-8
    (d / "latin1.txt").write_bytes("Ein Mädchen läuft.\n".encode("latin-1"))
    (d / "text.txt").write_text("not an image\n")
    (d / "bad.yaml").write_text("task:\n  name: image_classifier\n  lr: [0.1\n")
    (d / "series.csv").write_text("Date,Value\n" + "".join(f"2020-01-{i:02d},{i % 7}\n" for i in range(1, 29)))
    np.save(d / "pickled.npy", np.array([{"pose": 1}], dtype=object), allow_pickle=True)
    (d / "images").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / "images" / "a.png")
    (d / "empty_dir").mkdir()
    paths = {p.stem if p.is_file() else p.name: str(p) for p in d.iterdir()}
    return {**paths, "dir": str(d), "missing": str(d / "missing.png"), "tiny": TINY}


def check(argv: list[str], fragments: tuple[str, ...], files: dict[str, str], tmp_path: Path, capsys) -> None:
    """Runs one row: exit code 2, a single error line holding every fragment, nothing written to ``{out}``."""
    out = tmp_path / "out" / "result"
    names = {**files, "out": str(out), "out_png": str(out) + ".png", "under_file": files["photo"] + "/sub/x.png"}
    args = [a.format(**names) for a in argv]
    code = main(args)
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2, (args, captured.err)
    assert "Traceback" not in captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("torchworks") and "error:" in lines[0], lines[0]
    for fragment in fragments:
        assert fragment.format(**names) in lines[0], (fragment, lines[0])
    assert not (tmp_path / "out").exists(), "a failed command left output behind"
    leftovers = [p for p in Path(files["dir"]).rglob("*") if p.name.endswith((".part", "_inpainted.png"))]
    assert not leftovers, leftovers


def rows(*table):
    return pytest.mark.parametrize("argv, fragments", [r[1:] for r in table], ids=[r[0] for r in table])


@rows(
    ("missing", ["train", "{missing}.yaml"], ("config file not found", "missing.png.yaml")),
    ("png-as-yaml", ["train", "{photo}"], ("photo.png is a PNG image", "YAML")),
    ("random-bytes", ["train", "{random}"], ("random.bin is binary data",)),
    ("malformed-yaml", ["train", "{bad}", "-o", "{out}"], ("malformed YAML", "bad.yaml", "line")),
    ("unknown-task", ["train", "{tiny}", "--set", "task.name=image_clasifier", "-o", "{out}"],
     ("image_clasifier", "did you mean", "image_classifier")),
    ("threads-0", ["train", "{tiny}", "--threads", "0", "-o", "{out}"], ("--threads must be >= 1, got 0",)),
    ("devices-0", ["train", "{tiny}", "--devices", "0", "--out", "{out}"], ("--devices must be >= 1",)),
    ("unwritable-out", ["train", "{tiny}", "--out", "{under_file}"], ("cannot write", "photo.png is not a folder")),
)
def test_train(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-config", ["eval", "{missing}.yaml", "--ckpt", "{random}"], ("config file not found",)),
    ("png-as-yaml", ["eval", "{photo}", "--ckpt", "{random}"], ("PNG image", "YAML")),
    ("missing-ckpt", ["eval", "{tiny}", "--ckpt", "{missing}"], ("missing.png",)),
    ("corrupt-ckpt", ["eval", "{tiny}", "--ckpt", "{random}"], ("random.bin",)),
    ("unknown-split", ["eval", "{tiny}", "--ckpt", "{random}", "--split", "tset"], ("invalid choice 'tset'", "test")),
    ("threads-neg", ["eval", "{tiny}", "--ckpt", "{random}", "--threads", "-1"], ("--threads must be >= 1",)),
)
def test_eval(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(("unknown-kind", ["list", "modelz"], ("modelz",)))
def test_list(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("unknown-name", ["data", "path", "fashion_mnst"], ("fashion_mnst", "fashion_mnist")),
    ("missing-data-dir", ["data", "path", "fashion_mnist", "--data-dir", "{missing}"], ("--data-dir", "missing.png")),
    ("bad-action", ["data", "verfy", "fashion_mnist"], ("invalid choice 'verfy'", "did you mean verify")),
)
def test_data_path(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-data-dir-before", ["data", "--data-dir", "{missing}", "verify", "fashion_mnist"],
     ("--data-dir", "not an existing folder")),
    ("missing-data-dir-after", ["data", "verify", "fashion_mnist", "--data-dir", "{missing}"],
     ("--data-dir", "not an existing folder")),
    ("empty-data-dir", ["data", "verify", "fashion_mnist", "--data-dir", "{empty_dir}"],
     ("no copy of 'fashion_mnist' in --data-dir",)),
    ("unknown-name", ["data", "verify", "fashion_mnst"], ("fashion_mnst", "fashion_mnist")),
)
def test_data_verify(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


def test_data_verify_of_an_empty_data_dir_when_no_copy_exists_anywhere(files, tmp_path, capsys, monkeypatch):
    # a clone without ../shared: the empty --data-dir is the only folder searched that exists; still "no copy"
    # (exit 2), not four "missing" rows of a verification that failed (exit 1)
    import torchworks.data.locate as locate

    monkeypatch.setattr(locate, "shared_data_dirs", lambda: [])
    monkeypatch.setenv("TORCHWORKS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHWORKS_DATA", raising=False)
    check(["data", "verify", "fashion_mnist", "--data-dir", "{empty_dir}"],
          ("no copy of 'fashion_mnist' in --data-dir",), files, tmp_path, capsys)


@rows(
    ("missing-config", ["distill", "--config", "{missing}.yaml", "-o", "{out}"], ("config file not found",)),
    ("png-as-yaml", ["distill", "--config", "{photo}", "-o", "{out}"], ("PNG image", "YAML")),
    ("malformed-yaml", ["distill", "--config", "{bad}", "-o", "{out}"], ("malformed YAML",)),
    ("unknown-method", ["distill", "--method", "kdd", "--data", "synthetic", "-o", "{out}"],
     ("unknown distillation method 'kdd'", "did you mean kd")),
    ("unknown-in-combination", ["distill", "--method", "crd+kdd", "--data", "synthetic", "-o", "{out}"],
     ("'kdd' in 'crd+kdd'",)),
    ("steps-0", ["distill", "--steps", "0", "-o", "{out}"], ("--steps must be >= 1",)),
    ("lr-negative", ["distill", "--lr", "-0.1", "-o", "{out}"], ("--lr must be > 0",)),
    ("unwritable-out", ["distill", "--data", "synthetic", "--out", "{under_file}"], ("cannot write",)),
)
def test_distill(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-image", ["inpaint", "{missing}", "--mask", "{mask}", "-o", "{out_png}"], ("no such image",)),
    ("missing-mask", ["inpaint", "{photo}", "--mask", "{missing}", "-o", "{out_png}"], ("no such mask",)),
    ("text-as-image", ["inpaint", "{text}", "--mask", "{mask}", "-o", "{out_png}"], ("cannot read image", "text.txt")),
    ("truncated-png", ["inpaint", "{trunc}", "--mask", "{mask}", "-o", "{out_png}"], ("cannot read image",)),
    ("unknown-method", ["inpaint", "{photo}", "--mask", "{mask}", "--method", "teleaa", "-o", "{out_png}"],
     ("teleaa", "telea")),
    ("radius-neg", ["inpaint", "{photo}", "--mask", "{mask}", "--radius", "-3", "-o", "{out_png}"],
     ("--radius must be >= 1, got -3",)),
    ("dilate-neg", ["inpaint", "{photo}", "--mask", "{mask}", "--dilate", "-3", "-o", "{out_png}"],
     ("--dilate must be >= 0, got -3",)),
    ("quality-500", ["inpaint", "{photo}", "--mask", "{mask}", "--quality", "500", "-o", "{out_png}"],
     ("--quality must be in 1..100, got 500",)),
    ("threshold-2", ["inpaint", "{photo}", "--mask", "{mask}", "--threshold", "2", "--out", "{out_png}"],
     ("--threshold must be in 0..1",)),
    ("threshold-nan", ["inpaint", "{photo}", "--mask", "{mask}", "--threshold", "nan", "--out", "{out_png}"],
     ("--threshold must be a finite number",)),
    ("unwritable-out", ["inpaint", "{photo}", "--mask", "{mask}", "-o", "{under_file}"], ("cannot write",)),
)
def test_inpaint(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-images", ["inpaint-eval", "--images", "{missing}", "-o", "{out}"], ("no such image folder",)),
    ("no-images", ["inpaint-eval", "--images", "{empty_dir}", "-o", "{out}"], ("no images",)),
    ("unknown-mask", ["inpaint-eval", "--images", "{images}", "--masks", "zebra", "-o", "{out}"],
     ("unknown mask family 'zebra'", "thin")),
    ("close-mask", ["inpaint-eval", "--images", "{images}", "--masks", "thik", "-o", "{out}"], ("did you mean thick",)),
    ("unknown-method", ["inpaint-eval", "--images", "{images}", "--methods", "teleaa", "-o", "{out}"],
     ("teleaa", "telea")),
    ("limit-neg", ["inpaint-eval", "--images", "{images}", "--limit", "-1", "-o", "{out}"], ("--limit must be >= 1",)),
    ("size-small", ["inpaint-eval", "--images", "{images}", "--size", "8", "-o", "{out}"], ("--size must be >= 32",)),
    ("unwritable-out", ["inpaint-eval", "--images", "{images}", "--out", "{under_file}"], ("cannot write",)),
    ("out-is-file", ["inpaint-eval", "--images", "{images}", "--out", "{photo}"], ("is a file; give a folder",)),
)
def test_inpaint_eval(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-image", ["geometry", "two-view", "{missing}", "{photo}", "-o", "{out_png}"], ("image not found",)),
    ("text-as-image", ["geometry", "two-view", "{text}", "{photo}", "-o", "{out_png}"], ("cannot decode image",)),
    ("random-bytes", ["geometry", "two-view", "{random}", "{photo}", "-o", "{out_png}"], ("cannot decode image",)),
    ("threshold-0", ["geometry", "two-view", "{photo}", "{photo}", "--threshold", "0", "-o", "{out_png}"],
     ("--threshold must be > 0",)),
    ("bad-K", ["geometry", "two-view", "{photo}", "{photo}", "--K", "1,2,3", "-o", "{out_png}"], ("--K takes",)),
    ("unknown-solver", ["geometry", "two-view", "{photo}", "{photo}", "--solver", "5pt"], ("invalid choice '5pt'",)),
    ("unwritable-out", ["geometry", "two-view", "{photo}", "{photo}", "--out", "{under_file}"], ("cannot write",)),
)
def test_geometry_two_view(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("no-match", ["geometry", "calibrate", "{dir}/nothing*.png"], ("no images match",)),
    ("text-as-image", ["geometry", "calibrate", "{text}"], ("cannot decode image",)),
    ("square-0", ["geometry", "calibrate", "{photo}", "--square", "0"], ("--square must be > 0",)),
    ("pattern-1x1", ["geometry", "calibrate", "{photo}", "--pattern", "1x1"], ("at least 2x2",)),
)
def test_geometry_calibrate(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


POSE = ["--from", "opencv", "--to", "opengl"]


@rows(
    ("missing-file", ["geometry", "convert-pose", "{missing}", *POSE], ("pose file not found",)),
    ("random-bytes", ["geometry", "convert-pose", "{random}", *POSE], ("random.bin is binary data",)),
    ("png", ["geometry", "convert-pose", "{photo}", *POSE], ("PNG image",)),
    ("pickled-npy", ["geometry", "convert-pose", "{pickled}", *POSE], ("not a numeric .npy array",)),
    ("wrong-count", ["geometry", "convert-pose", "1", "2", "3", *POSE], ("12 (3x4) or 16 (4x4)",)),
    ("inf", ["geometry", "convert-pose", *["1"] * 11, "inf", *POSE], ("finite",)),
    ("nothing", ["geometry", "convert-pose", *POSE], ("no pose given",)),
    ("unknown-convention", ["geometry", "convert-pose", "--from", "opencv", "--to", "opengll", "1"],
     ("invalid choice 'opengll'", "did you mean opengl")),
)
def test_geometry_convert_pose(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("unknown-experiment", ["sequence", "run", "countr", "-o", "{out}"], ("invalid choice 'countr'", "counter")),
    ("repeats-0", ["sequence", "run", "counter", "--repeats", "0", "-o", "{out}"], ("--repeats must be >= 1",)),
    ("steps-0", ["sequence", "run", "counter", "--steps", "0", "-o", "{out}"], ("--steps must be >= 1",)),
    ("unwritable-out", ["sequence", "run", "counter", "--out", "{under_file}"], ("cannot write",)),
)
def test_sequence_run(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(("extra-argument", ["sequence", "list", "counter"], ("unrecognized arguments: counter",)))
def test_sequence_list(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-csv", ["forecast", "--csv", "{missing}", "--column", "Value", "-o", "{out}"], ("--csv not found",)),
    ("png-as-csv", ["forecast", "--csv", "{photo}", "--column", "Value", "-o", "{out}"], ("PNG image", "CSV")),
    ("random-bytes", ["forecast", "--csv", "{random}", "--column", "Value", "-o", "{out}"], ("binary data",)),
    ("latin1", ["forecast", "--csv", "{latin1}", "--column", "Value", "-o", "{out}"], ("not a CSV text file",)),
    ("unknown-column", ["forecast", "--csv", "{series}", "--column", "Valu", "-o", "{out}"], ("no column 'Valu'",)),
    ("horizon-0", ["forecast", "--csv", "{series}", "--column", "Value", "--horizon", "0", "-o", "{out}"],
     ("--horizon must be >= 1",)),
    ("folds-1", ["forecast", "--csv", "{series}", "--column", "Value", "--folds", "1", "-o", "{out}"],
     ("--folds must be 0 (off) or >= 2",)),
    ("unwritable-out", ["forecast", "--csv", "{series}", "--column", "Value", "--out", "{under_file}"],
     ("cannot write",)),
)
def test_forecast(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-ckpt", ["generate", "--ckpt", "{missing}"], ("not found",)),
    ("corrupt-ckpt", ["generate", "--ckpt", "{random}"], ("checkpoint",)),
    ("tokens-0", ["generate", "--max-new-tokens", "0"], ("--max-new-tokens must be >= 1",)),
    ("top-p-2", ["generate", "--top-p", "2"], ("--top-p must be in (0, 1]",)),
    ("temperature-nan", ["generate", "--temperature", "nan"], ("--temperature must be a finite number",)),
)
def test_generate(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-file", ["translate", "--file", "{missing}", "-o", "{out}"], ("--file not found",)),
    ("random-bytes", ["translate", "--file", "{random}", "-o", "{out}"], ("random.bin is binary data",)),
    ("png", ["translate", "--file", "{photo}", "-o", "{out}"], ("PNG image",)),
    ("latin1", ["translate", "--file", "{latin1}", "-o", "{out}"], ("is not a UTF-8 text file", "line 1")),
    ("corrupt-ckpt", ["translate", "Hallo.", "--ckpt", "{random}", "-o", "{out}"], ("random.bin",)),
    ("beam-0", ["translate", "Hallo.", "--beam", "0", "-o", "{out}"], ("--beam must be >= 1",)),
    ("alpha-neg", ["translate", "Hallo.", "--alpha", "-1", "-o", "{out}"], ("--alpha must be >= 0",)),
    ("unwritable-out", ["translate", "Hallo.", "--out", "{under_file}"], ("cannot write",)),
    ("unwritable-png", ["translate", "Hallo.", "--attention-png", "{under_file}"], ("cannot write",)),
)
def test_translate(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-ckpt", ["transformer", "attention", "--text", "ROMEO", "--ckpt", "{missing}", "-o", "{out_png}"],
     ("not found",)),
    ("corrupt-ckpt", ["transformer", "attention", "--text", "ROMEO", "--ckpt", "{random}", "-o", "{out_png}"],
     ("checkpoint",)),
    ("empty-text", ["transformer", "attention", "--text", "", "-o", "{out_png}"], ("no tokens",)),
    ("unwritable-out", ["transformer", "attention", "--text", "ROMEO", "--out", "{under_file}"], ("cannot write",)),
    ("out-is-folder", ["transformer", "attention", "--text", "ROMEO", "--out", "{dir}"], ("is a folder",)),
)
def test_transformer_attention(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("missing-file", ["embed", "--file", "{missing}"], ("--file not found",)),
    ("random-bytes", ["embed", "--file", "{random}"], ("binary data",)),
    ("png", ["embed", "--file", "{photo}"], ("PNG image",)),
    ("max-length-2", ["embed", "hi", "--max-length", "2"], ("--max-length must be in 3..512, got 2",)),
    ("batch-0", ["embed", "hi", "--batch-size", "0"], ("--batch-size must be >= 1",)),
)
def test_embed(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("upload-inf", ["ui", "--max-upload-mb", "inf"], ("--max-upload-mb must be a finite number",)),
    ("upload-neg", ["ui", "--max-upload-mb", "-1"], ("--max-upload-mb must be in (0",)),
    ("port-big", ["ui", "--port", "70000"], ("--port must be in 1..65535",)),
    ("port-text", ["ui", "--port", "http"], ("expected an integer, got 'http'",)),
)
def test_ui(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


@rows(
    ("unknown-section", ["demo", "--sections", "gtp", "-o", "{out}"], ("unknown demo section 'gtp'", "gpt")),
    ("cifar-limit-neg", ["demo", "--cifar-limit", "-1", "-o", "{out}"], ("--cifar-limit must be >= 1",)),
    ("out-is-file", ["demo", "--sections", "gpt", "-o", "{photo}"], ("is a file",)),
    ("unwritable-out", ["demo", "--sections", "gpt", "--out", "{under_file}"], ("cannot write",)),
    ("missing-data-dir", ["demo", "--sections", "gpt", "--data-dir", "{missing}", "-o", "{out}"], ("--data-dir",)),
)
def test_demo(argv, fragments, files, tmp_path, capsys):
    check(argv, fragments, files, tmp_path, capsys)


def test_unwritable_folder_is_refused_before_work(files, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root may write into a read-only folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        check(["inpaint", files["photo"], "--mask", files["mask"], "-o", str(ro / "x.png")],
              ("not writable",), files, tmp_path, capsys)
    finally:
        ro.chmod(0o700)
