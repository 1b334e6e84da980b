"""Every model file shipped inside the package loads from the file alone, in a fresh interpreter, and computes what
it computed when its reference output was stored.

Each file runs in its own ``python -c`` (nothing imported beforehand): ``load_model(path)`` must find the module
that registers the model through the catalog. The output on a fixed input is compared with the value stored in
``tests/fixtures/shipped_model_outputs.json``, keyed by the SHA-256 of the file's tensors (stable across renames).
A retrained model needs its entry refreshed: ``python tests/core/test_shipped_models.py --update``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "torchworks"
FIXTURE = ROOT / "tests" / "fixtures" / "shipped_model_outputs.json"
SHIPPED = sorted(PACKAGE.rglob("*.safetensors"))

# Runs in the fresh interpreter: load, feed a fixed input chosen by model class, print a summary of the output.
PROBE = r"""
import json, sys
import torch
torch.set_num_threads(1)
from torchworks.core.checkpoint import load_checkpoint, load_model
path = sys.argv[1]
model = load_model(path).eval()
state = load_checkpoint(path)
kw = state["model_spec"].get("kwargs") or {}
g = torch.Generator().manual_seed(0)
kind = type(model).__name__
if kind == "ViT":
    c = model.config
    args = (torch.rand(2, c.in_chans, c.image_size, c.image_size, generator=g),)
elif kind == "CifarResNet":
    args = (torch.rand(2, 3, 32, 32, generator=g),)
elif kind == "SequenceNet":
    args = (torch.rand(2, 12, kw["input_size"], generator=g),)
elif kind == "Forecaster":
    args = (torch.rand(2, kw["window"], kw["n_features"], generator=g) * 20,)
elif kind == "GPT":
    args = (torch.randint(0, kw["vocab_size"], (1, 32), generator=g),)
elif kind == "Seq2SeqTransformer":
    V = kw["src_vocab_size"]
    args = (torch.randint(3, V, (1, 12), generator=g), torch.randint(3, V, (1, 9), generator=g))
elif kind == "FFCResNetGenerator":
    rgb, hole = torch.rand(1, 3, 64, 64, generator=g), (torch.rand(1, 1, 64, 64, generator=g) > 0.7).float()
    args = (torch.cat([rgb * (1 - hole), hole], 1),)
else:
    raise SystemExit(f"no probe input for model class {kind}: add one to tests/core/test_shipped_models.py")
with torch.no_grad():
    out = model(*args)
out = (out[0] if isinstance(out, tuple) else out).double()
weights_equal = all(torch.equal(model.state_dict()[k].to(v.dtype), v) for k, v in state["model"].items())
print(json.dumps({"sha256": __import__("safetensors").safe_open(path, "pt").metadata()["sha256"],
                  "class": kind, "spec": state["model_spec"]["name"], "weights_equal": weights_equal,
                  "shape": list(out.shape), "mean": out.mean().item(), "abs_mean": out.abs().mean().item(),
                  "first": out.flatten()[:4].tolist()}))
"""


def probe(path: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=600,
                         cwd=ROOT)
    assert res.returncode == 0, f"{path.name} in a fresh interpreter:\n{res.stderr[-3000:]}"
    return json.loads(res.stdout.splitlines()[-1])


def test_the_package_ships_models():
    # the parametrisation below must not silently become empty (e.g. after a move of the pretrained folders)
    assert len(SHIPPED) >= 10, SHIPPED
    assert all(p.with_suffix(".md").is_file() for p in SHIPPED), "every shipped model needs its model card"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_model_loads_alone_and_reproduces_its_stored_output(path):
    got = probe(path)
    stored = json.loads(FIXTURE.read_text())
    ref = stored.get(got["sha256"])
    assert ref is not None, (f"no stored output for {path.name} (weights sha256 {got['sha256'][:12]}...); if it "
                             "was retrained, run: python tests/core/test_shipped_models.py --update")
    assert got["weights_equal"], f"{path.name}: the loaded weights differ from the stored tensors"
    assert (got["class"], got["spec"], got["shape"]) == (ref["class"], ref["spec"], ref["shape"])
    for key in ("mean", "abs_mean", "first"):
        assert got[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-5), (path.name, key)


def update() -> None:
    """Re-probes every shipped file and rewrites the fixture (entries of files no longer shipped are dropped)."""
    rows = {}
    for path in SHIPPED:
        got = probe(path)
        sha = got.pop("sha256")
        rows[sha] = {"file": str(path.relative_to(PACKAGE)), **got}
        print(path.name, got["class"], got["mean"])
    FIXTURE.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit("usage: python tests/core/test_shipped_models.py --update")
    update()
