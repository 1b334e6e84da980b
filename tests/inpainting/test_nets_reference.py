"""Parity with advimman/lama's generator, and the converter of its weights.

The live parity test needs the reference's source (it is not installable: its pinned 2021 dependencies do not
resolve on current Python): a checkout named by ``TORCHWORKS_LAMA_REF`` (the directory holding
``saicinpainting``) or a bare git mirror of advimman/lama, found as the speed benchmark finds it
(``benchmarks/inpainting/lama_reference.py``, which imports the generator from a temporary copy and stubs the
kornia / pytorch_lightning imports LaMa's configs never use). Without either, that test is skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from torchworks.core.registry import MODELS
from torchworks.inpainting.nets.lama import convert_reference_state_dict

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "inpainting"))
from lama_reference import find_source, reference_generator_class  # noqa: E402

REF = find_source()


def test_converter_maps_reference_keys():
    t = torch.zeros(1)
    ref = {  # lama_fourier layout: 0 pad, 1 stem, 2-4 down, 5-13 blocks, 14 concat, 15-23 up, 24 pad, 25 conv
        "generator.model.1.ffc.convl2l.weight": t,
        "generator.model.4.bn_g.running_mean": t,
        "generator.model.5.conv1.ffc.convg2g.fu.conv_layer.weight": t,
        "generator.model.13.conv2.ffc.convg2g.conv1.1.bias": t,
        "generator.model.15.weight": t,
        "generator.model.22.bias": t,
        "generator.model.25.weight": t,
        "discriminator.model0.0.weight": t,  # other networks of a training checkpoint are dropped
    }
    assert set(convert_reference_state_dict(ref, 3, 9)) == {
        "stem.1.ffc.convl2l.weight", "down.2.bn_g.running_mean", "blocks.0.conv1.ffc.convg2g.fu.conv.weight",
        "blocks.8.conv2.ffc.convg2g.conv1.1.bias", "up.0.weight", "up.7.bias", "head.1.weight"}
    with pytest.raises(ValueError, match="does not fit"):
        convert_reference_state_dict({"model.30.weight": t}, 3, 9)
    with pytest.raises(ValueError, match="not a reference"):
        convert_reference_state_dict({"weight": t})


@pytest.mark.skipif(REF is None, reason="no advimman/lama source: set TORCHWORKS_LAMA_REF to a checkout")
@pytest.mark.parametrize(("name", "ngf", "n_down", "n_blocks", "lfu"),
                         [("lama_tiny", 16, 2, 3, False), ("lama_small", 32, 3, 6, False),
                          ("lama_tiny", 16, 2, 3, True)])
def test_outputs_equal_the_reference_generator(name, ngf, n_down, n_blocks, lfu):
    with reference_generator_class(REF) as Reference:
        _compare(Reference, name, ngf, n_down, n_blocks, lfu)


def _compare(Reference, name, ngf, n_down, n_blocks, lfu):  # noqa: N803  (a class)
    local = dict(ratio_gin=0, ratio_gout=0, enable_lfu=False)
    torch.manual_seed(0)
    ref = Reference(4, 3, ngf=ngf, n_downsampling=n_down, n_blocks=n_blocks, add_out_act="sigmoid",
                    init_conv_kwargs=local, downsample_conv_kwargs=local,
                    resnet_conv_kwargs=dict(ratio_gin=0.75, ratio_gout=0.75, enable_lfu=lfu))
    for m in ref.modules():  # non-trivial running statistics, so eval-mode BN is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    ref = ref.double().eval()
    ours = MODELS.build(name, enable_lfu=lfu).double().eval()
    ours.load_state_dict(convert_reference_state_dict(ref.state_dict(), n_down, n_blocks))
    x = torch.rand(2, 4, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-12)
