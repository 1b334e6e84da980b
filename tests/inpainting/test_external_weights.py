"""Official LaMa weights (``best.ckpt``, ``big-lama.pt``) read without running pickled or TorchScript code.

The real files are not on this machine, so the tests build stand-ins with the reference formats: a
Lightning-1.x-style checkpoint dict (``state_dict`` with ``generator.model.<i>.`` keys next to evaluator and
discriminator weights, OmegaConf-like hyper-parameters and a callback keyed by its class) and a TorchScript
archive traced around ``model.generator.model.<i>`` (IOPaint's ``JITWrapper`` layout).
"""

from __future__ import annotations

import os
import sys
import types
from collections import OrderedDict

import pytest
import torch
from torch import nn

import torchworks.inpainting.nets  # noqa: F401  (registers the generators)
from torchworks.core.checkpoint import build_model, load_model
from torchworks.core.errors import CheckpointError
from torchworks.inpainting.external import (
    import_lama_weights,
    infer_layout,
    lama_generator_state,
    load_lama_generator,
    read_archive,
)
from torchworks.inpainting.nets.lama import to_reference_state_dict

torch.set_num_threads(1)
LAYOUT = dict(ngf=8, n_downsampling=3, n_blocks=2)


def _generator(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    g = build_model("big_lama", **LAYOUT)
    with torch.no_grad():  # non-trivial BN statistics so a wrong mapping shows in the output
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return g.eval()


# Stand-ins for the classes a Lightning 1.x checkpoint pickles (OmegaConf config, a callback class as a key).
_omega = types.ModuleType("omegaconf.dictconfig")
_pl = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")


class DictConfig(dict):
    __module__ = "omegaconf.dictconfig"

    def __reduce__(self):
        return (DictConfig, (), {"_content": dict(self)})


class ModelCheckpoint:
    __module__ = "pytorch_lightning.callbacks.model_checkpoint"


_omega.DictConfig, _pl.ModelCheckpoint = DictConfig, ModelCheckpoint


@pytest.fixture
def fake_modules(monkeypatch):
    for name in ("omegaconf", "pytorch_lightning", "pytorch_lightning.callbacks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", _omega)
    monkeypatch.setitem(sys.modules, "pytorch_lightning.callbacks.model_checkpoint", _pl)


def _lightning_ckpt(path, g):
    sd = OrderedDict(to_reference_state_dict(g.state_dict(), LAYOUT["n_downsampling"], LAYOUT["n_blocks"]))
    sd["val_evaluator.scores.lpips.model.net.lin0.weight"] = torch.zeros(1, 64, 1, 1)
    sd["discriminator.model0.0.weight"] = torch.zeros(4, 3, 4, 4)
    cfg = DictConfig(generator={"kind": "ffc_resnet", "n_blocks": LAYOUT["n_blocks"]})
    torch.save({"epoch": 3, "global_step": 100, "pytorch-lightning_version": "1.2.9", "state_dict": sd,
                "hyper_parameters": cfg, "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(1.0)}}},
               path)
    return path


def _module_tree(tensors: dict[str, torch.Tensor]) -> nn.Module:
    root = nn.Module()
    for key, value in tensors.items():
        *parents, leaf = key.split(".")
        node = root
        for p in parents:
            if not hasattr(node, p):
                node.add_module(p, nn.Module())
            node = getattr(node, p)
        node.register_buffer(leaf, value.clone())
    return root


class _Wrapper(nn.Module):
    def __init__(self, tree: nn.Module) -> None:
        super().__init__()
        self.model = tree

    def forward(self, image, mask):
        return image * (1 - mask)


def _torchscript(path, g):
    ref = to_reference_state_dict(g.state_dict(), LAYOUT["n_downsampling"], LAYOUT["n_blocks"])
    torch.jit.trace(_Wrapper(_module_tree(ref)), (torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8))).save(str(path))
    return path


@pytest.mark.parametrize("fmt", ["ckpt", "jit"])
def test_stand_in_loads_to_the_same_outputs(tmp_path, fake_modules, fmt):
    g = _generator(1)
    path = _lightning_ckpt(tmp_path / "best.ckpt", g) if fmt == "ckpt" else _torchscript(tmp_path / "big-lama.pt", g)
    loaded = load_lama_generator(path)
    x = torch.rand(2, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))
    assert infer_layout(lama_generator_state(path)) == LAYOUT


def test_import_writes_a_safetensors_model_that_rebuilds_alone(tmp_path, fake_modules):
    g = _generator(2)
    out = import_lama_weights(_lightning_ckpt(tmp_path / "best.ckpt", g), tmp_path / "cache" / "big.safetensors")
    assert out.read_bytes()[8:9] == b"{"  # safetensors header, not a pickle
    x = torch.rand(1, 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(load_model(out, expect="big_lama").eval()(x), g(x))


def test_lightning_hparams_stay_inert_records(tmp_path, fake_modules):
    obj, kind = read_archive(_lightning_ckpt(tmp_path / "best.ckpt", _generator()))
    assert kind == "checkpoint"
    rec = obj["hyper_parameters"]
    assert type(rec).__name__ == "DictConfig" and not isinstance(rec, dict)  # a record, not the class
    assert rec.state["_content"]["generator"]["n_blocks"] == 2


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch " + str(_Evil.target),))


def test_pickle_with_unexpected_global_is_refused_and_never_runs(tmp_path):
    _Evil.target = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match=r"refusing a pickle that needs '(posix|os|nt)\.system'"):
        lama_generator_state(path)
    assert not _Evil.target.exists()


def test_truncated_random_and_foreign_files_are_refused(tmp_path, fake_modules):
    good = _lightning_ckpt(tmp_path / "best.ckpt", _generator()).read_bytes()
    (tmp_path / "half.ckpt").write_bytes(good[: len(good) // 2])
    (tmp_path / "noise.ckpt").write_bytes(os.urandom(4096))
    torch.save({"state_dict": {"generator.model.1.weight": torch.zeros(3, 3)}}, tmp_path / "other.ckpt")
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3)}}, tmp_path / "none.ckpt")
    with pytest.raises(CheckpointError, match="half.ckpt"):
        load_lama_generator(tmp_path / "half.ckpt")
    with pytest.raises(CheckpointError, match="not a PyTorch zip archive"):
        load_lama_generator(tmp_path / "noise.ckpt")
    with pytest.raises(CheckpointError, match="not an FFC ResNet generator"):
        load_lama_generator(tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="no LaMa generator weights"):
        load_lama_generator(tmp_path / "none.ckpt")
    with pytest.raises(FileNotFoundError):
        load_lama_generator(tmp_path / "absent.ckpt")


# --- CLI: import once, then --method big_lama; bad files and devices give one line and exit 2 ---------------------

def _write_photo(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    img = (rng.random((40, 48, 3)) * 255).astype("uint8")
    mask = np.zeros((40, 48), "uint8")
    mask[10:20, 12:30] = 255
    Image.fromarray(img).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return img, mask


def test_cli_import_then_inpaint_with_big_lama(tmp_path, fake_modules, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from torchworks.cli.main import main
    from torchworks.inpainting import inpaint

    monkeypatch.setenv("TORCHWORKS_CACHE", str(tmp_path / "cache"))
    g = _generator(3)
    jit = _torchscript(tmp_path / "big-lama.pt", g)
    assert main(["weights", "import", "lama", str(jit)]) == 0
    imported = tmp_path / "cache" / "weights" / "big_lama.safetensors"
    assert capsys.readouterr().out.strip() == str(imported)
    img, mask = _write_photo(tmp_path)
    assert main(["inpaint", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"), "--method",
                 "big_lama", "--device", "cpu", "--dilate", "0", "-o", str(tmp_path / "out.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(out[mask == 0], img[mask == 0])  # bit-exact outside the hole
    # the same fill as the Python API with the original file passed directly
    ref = inpaint(img, mask, "big_lama", weights=str(jit), dilate=0, device="cpu")
    assert np.array_equal(out, ref)


@pytest.mark.parametrize("case", ["random", "evil", "wrong_arch", "device"])
def test_cli_bad_weights_or_device_is_one_line_exit_2_nothing_written(tmp_path, case, capsys):
    from torchworks.cli.main import main

    _write_photo(tmp_path)
    weights = tmp_path / "w.pt"
    if case == "random":
        weights.write_bytes(os.urandom(2048))
    elif case == "evil":
        _Evil.target = tmp_path / "pwned"
        torch.save({"x": _Evil()}, weights)
    else:
        torch.save({"state_dict": {"generator.model.1.weight": torch.zeros(3)}}, weights)
    argv = ["inpaint", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"), "--method", "big_lama",
            "--weights", str(weights), "-o", str(tmp_path / "out.png")]
    if case == "device":
        argv += ["--device", "cuda:7"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("torchworks inpaint: error:")
    assert {"random": "not a PyTorch zip", "evil": "refusing a pickle", "wrong_arch": "not an FFC ResNet",
            "device": "cuda:7"}[case] in err
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "pwned").exists()
    assert main(["weights", "import", "lama", str(weights), "-o", str(tmp_path / "x.safetensors")]) == 2
    assert not (tmp_path / "x.safetensors").exists()


sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"))
from lama_reference import find_source, reference_generator_class  # noqa: E402

REF = find_source()


@pytest.mark.skipif(REF is None, reason="no advimman/lama source: set TORCHWORKS_LAMA_REF to a checkout")
@pytest.mark.parametrize("fmt", ["ckpt", "jit"])
def test_reference_generator_weights_load_bit_for_bit(tmp_path, fmt):
    """The real reference module, saved the two ways its users have it, gives the same float32 outputs."""
    local = dict(ratio_gin=0, ratio_gout=0, enable_lfu=False)
    with reference_generator_class(REF) as Reference:
        torch.manual_seed(0)
        ref = Reference(4, 3, ngf=8, n_downsampling=3, n_blocks=2, add_out_act="sigmoid",
                        init_conv_kwargs=local, downsample_conv_kwargs=local,
                        resnet_conv_kwargs=dict(ratio_gin=0.75, ratio_gout=0.75, enable_lfu=False))
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        ref.eval()
        holder = nn.Module()
        holder.generator = ref
        path = tmp_path / ("best.ckpt" if fmt == "ckpt" else "big-lama.pt")
        if fmt == "ckpt":
            torch.save({"state_dict": {f"generator.{k}": v for k, v in ref.state_dict().items()}}, path)
        else:
            torch.jit.trace(_Wrapper(holder), (torch.rand(1, 3, 16, 16), torch.rand(1, 1, 16, 16))).save(str(path))
        x = torch.rand(2, 4, 64, 64)
        with torch.no_grad():
            assert torch.equal(load_lama_generator(path)(x), ref(x))


@pytest.mark.parametrize(("precision", "tol"), [("fp32", 0.0), ("channels_last", 1e-6), ("bf16", 0.01)])
def test_precision_options_stay_within_their_stated_tolerance(precision, tol):
    from torchworks.core.device import DeviceError
    from torchworks.inpainting.learned import LearnedInpainter

    g = _generator(4)
    inp = LearnedInpainter(g, "big_lama", pad_mod=8, working_size=None, device="cpu", precision=precision)
    image, mask = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    mask[..., 16:40, 8:50] = 1
    with torch.no_grad():
        ref = g(torch.cat([image * (1 - mask), mask], 1)).clamp(0, 1)
    out = inp.fill(image, mask)
    assert out.is_contiguous() and out.dtype == torch.float32
    assert float((out - ref).abs().max()) <= tol
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        inp.to("cpu", "fp8")
    with pytest.raises(DeviceError, match="no CUDA GPU" if not torch.cuda.is_available() else "only cuda"):
        inp.to("cuda:99")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        inp.to("tpu")
