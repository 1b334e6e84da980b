"""Learned inpainters from shipped (or given) weights: loading, the inpaint() contract, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchworks.inpainting.nets  # noqa: F401  (registers the generators)
from torchworks.core.checkpoint import build_model, save_model
from torchworks.core.registry import INPAINTERS
from torchworks.inpainting import inpaint, learned


@pytest.fixture
def random_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    gen = build_model("lama_tiny")
    save_model(tmp_path / learned.SHIPPED["lama_faces64"]["file"], gen, spec={"name": "lama_tiny", "kwargs": {}})
    monkeypatch.setenv("TORCHWORKS_PRETRAINED_DIR", str(tmp_path))
    return gen


def test_learned_inpainter_matches_its_generator(random_weights):
    method = learned.load_learned("lama_faces64")
    assert method.pad_mod == 8 and method.working_size == 64 and method.default_feather  # its training size
    image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    mask[..., 8:16, 8:24] = 1
    expected = random_weights.eval()(torch.cat([image * (1 - mask), mask], 1)).clamp(0, 1)
    torch.testing.assert_close(method.run(image, mask), expected)


def test_inpaint_keeps_known_pixels_exact(random_weights, photo, hole):
    out = inpaint(photo, hole, method=learned.load_learned("lama_faces64"))
    assert out.shape == photo.shape and out.dtype == np.uint8
    far = np.ones_like(hole, bool)
    far[max(0, np.nonzero(hole)[0].min() - 8):, :] = False  # rows above the hole's dilation/feather ring
    np.testing.assert_array_equal(out[far], photo[far])


def test_a_shipped_entry_sets_its_own_dilation_and_working_size(random_weights, monkeypatch, photo, hole):
    entry = {**learned.SHIPPED["lama_faces64"], "dilate": 0, "working_size": 128}
    monkeypatch.setitem(learned.SHIPPED, "lama_faces64", entry)
    method = learned.load_learned("lama_faces64")
    assert (method.default_dilate, method.default_feather, method.working_size) == (0, False, 128)
    out = inpaint(photo, hole, method=method)
    np.testing.assert_array_equal(out[hole == 0], photo[hole == 0])  # no dilation: every known pixel is kept


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHWORKS_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="lama_tiny_faces64"):
        learned.load_learned("lama_faces64")


@pytest.mark.parametrize("name,model", [("lama_faces64", "lama_tiny"), ("relama_faces64", "relama_tiny")])
def test_shipped_weights_are_registered_under_names_that_say_their_domain(photo, hole, name, model):
    assert (learned.PRETRAINED_DIR / learned.SHIPPED[name]["file"]).is_file()  # both ship inside the package
    assert (learned.PRETRAINED_DIR / learned.SHIPPED[name]["file"]).with_suffix(".md").is_file()  # model card
    assert INPAINTERS.meta(name)["kind"] == "learned" and learned.SHIPPED[name]["model"] == model
    out = inpaint(photo, hole, method=name)
    assert out.shape == photo.shape and (out != photo).any()
    # the listing states domain, size, parameter count and the score against Telea
    doc = INPAINTERS.get(name).__doc__
    assert "faces at 64 px" in doc and "0.18 M" in doc and "Telea" in doc


def test_face_models_are_not_offered_under_plain_names():
    # they lose to Telea on scene photos (13.7/14.3 vs 21.8 dB), so no alias promises a general LaMa
    assert not {"lama", "relama", "lama_tiny", "relama_tiny"} & set(INPAINTERS.names())
    with pytest.raises(KeyError, match="lama_faces64"):  # the unknown-name message suggests the real one
        INPAINTERS.build("lama_face")


def test_relama_alias_loads_the_cbam_generator_and_rejects_a_lama_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHWORKS_PRETRAINED_DIR", str(tmp_path))
    torch.manual_seed(1)
    gen = build_model("relama_tiny").eval()
    save_model(tmp_path / learned.SHIPPED["relama_faces64"]["file"], gen, spec={"name": "relama_tiny", "kwargs": {}})
    method = learned.load_learned("relama_faces64")
    assert type(method.model).__name__ == type(gen).__name__
    assert any("cbam" in n.lower() or "attention" in type(m).__name__.lower() for n, m in method.model.named_modules())
    image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    mask[..., 4:20, 10:14] = 1
    torch.testing.assert_close(method.run(image, mask), gen(torch.cat([image * (1 - mask), mask], 1)).clamp(0, 1))
    # a LaMa file saved under ReLaMa's name is refused, naming both architectures
    save_model(tmp_path / learned.SHIPPED["relama_faces64"]["file"], build_model("lama_tiny"),
               spec={"name": "lama_tiny", "kwargs": {}})
    with pytest.raises(Exception, match="relama_tiny") as err:
        learned.load_learned("relama_faces64")
    assert "lama_tiny" in str(err.value).replace("relama_tiny", "")
