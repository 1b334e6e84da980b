"""The command line as a user meets it: fast help, listings, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tw(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchworks.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys, time; t = time.perf_counter(); from torchworks.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'yaml', 'safetensors', 'lightning') if m in sys.modules)\n"
            "print('RESULT', heavy, time.perf_counter() - t)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    wall = time.perf_counter() - start
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    assert "RESULT []" in line, line  # nothing heavy imported for --help
    for verb in ("train", "eval", "list", "data"):
        assert f"    {verb}" in out
    assert wall < 2.0, f"torchworks --help took {wall:.2f}s including interpreter start"


@pytest.mark.parametrize("verb", ["train", "eval", "list", "data"])
def test_each_verb_explains_itself(verb):
    res = tw(verb, "--help")
    assert res.returncode == 0 and "usage: torchworks " + verb in res.stdout
    assert len(res.stdout.splitlines()) > 5


def test_list_models_and_tasks_with_pattern():
    res = tw("list", "models", "fashion_*")
    names = [ln.split()[0] for ln in res.stdout.splitlines()]
    assert res.returncode == 0 and names == ["fashion_cnn", "fashion_mlp"]
    assert "image_classifier" in tw("list", "tasks").stdout
    res = tw("list", "models", "no_such_*")
    assert res.returncode == 0 and res.stdout == "" and "no models matching 'no_such_*'" in res.stderr


def test_unknown_kind_is_a_usage_error():
    res = tw("list", "modelz")
    assert res.returncode == 2 and "'modelz'" in res.stderr and "did you mean models" in res.stderr


def _one_line_error(res: subprocess.CompletedProcess, *fragments: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


def test_missing_config_file(tmp_path):
    _one_line_error(tw("train", str(tmp_path / "nope.yaml")), "config file not found", "nope.yaml")


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task:\n  name: image_classifier\n  lr: [0.1\ntrainer: {}\n")
    _one_line_error(tw("train", str(bad)), "malformed YAML", "bad.yaml", "line")


def test_unknown_task_key_and_bad_override_type(tmp_path):
    cfg = ROOT / "configs" / "tiny_fashion.yaml"
    _one_line_error(tw("train", str(cfg), "--set", "task.lrr=0.1"), "task.lrr", "did you mean lr")
    _one_line_error(tw("train", str(cfg), "--set", "trainer.max_steps=abc"), "trainer.max_steps", "'abc'")
    _one_line_error(tw("train", str(cfg), "--set", "task.name=image_clasifier"), "image_clasifier",
                    "image_classifier")


def test_unknown_data_set_name():
    _one_line_error(tw("data", "path", "fashion_mnst"), "fashion_mnst", "fashion_mnist")


def test_checkpoint_errors(tmp_path):
    cfg = str(ROOT / "configs" / "tiny_fashion.yaml")
    _one_line_error(tw("eval", cfg, "--ckpt", str(tmp_path / "none.ckpt")), "none.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00" * 64)
    _one_line_error(tw("eval", cfg, "--ckpt", str(junk)), "junk.ckpt")
