"""FID Inception-v3: the pytorch-fid key set and shapes (from a layout written out here, independently of the
module), strict loading of a synthetic weights file, TF-style pooling, 2048-d features, resizing, error paths, and
the harness/CLI wiring of LPIPS and Inception-FID."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from torchworks.core.errors import CheckpointError
from torchworks.inpainting import inception as I
from torchworks.inpainting.lpips import WeightsNotFoundError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def expected_layout() -> dict[str, tuple[int, int, int, int]]:
    """``{conv module: (out, in, kh, kw)}`` of torchvision's Inception3 with pytorch-fid's blocks (read from
    torchvision ``models/inception.py`` and pytorch-fid ``inception.py``; no aux head, 1008-way fc)."""
    convs = {"Conv2d_1a_3x3": (32, 3, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3), "Conv2d_2b_3x3": (64, 32, 3, 3),
             "Conv2d_3b_1x1": (80, 64, 1, 1), "Conv2d_4a_3x3": (192, 80, 3, 3)}

    def block_a(name, cin, pool):
        convs.update({f"{name}.branch1x1": (64, cin, 1, 1), f"{name}.branch5x5_1": (48, cin, 1, 1),
                      f"{name}.branch5x5_2": (64, 48, 5, 5), f"{name}.branch3x3dbl_1": (64, cin, 1, 1),
                      f"{name}.branch3x3dbl_2": (96, 64, 3, 3), f"{name}.branch3x3dbl_3": (96, 96, 3, 3),
                      f"{name}.branch_pool": (pool, cin, 1, 1)})

    def block_c(name, c7):
        convs.update({f"{name}.branch1x1": (192, 768, 1, 1), f"{name}.branch7x7_1": (c7, 768, 1, 1),
                      f"{name}.branch7x7_2": (c7, c7, 1, 7), f"{name}.branch7x7_3": (192, c7, 7, 1),
                      f"{name}.branch7x7dbl_1": (c7, 768, 1, 1), f"{name}.branch7x7dbl_2": (c7, c7, 7, 1),
                      f"{name}.branch7x7dbl_3": (c7, c7, 1, 7), f"{name}.branch7x7dbl_4": (c7, c7, 7, 1),
                      f"{name}.branch7x7dbl_5": (192, c7, 1, 7), f"{name}.branch_pool": (192, 768, 1, 1)})

    def block_e(name, cin):
        convs.update({f"{name}.branch1x1": (320, cin, 1, 1), f"{name}.branch3x3_1": (384, cin, 1, 1),
                      f"{name}.branch3x3_2a": (384, 384, 1, 3), f"{name}.branch3x3_2b": (384, 384, 3, 1),
                      f"{name}.branch3x3dbl_1": (448, cin, 1, 1), f"{name}.branch3x3dbl_2": (384, 448, 3, 3),
                      f"{name}.branch3x3dbl_3a": (384, 384, 1, 3), f"{name}.branch3x3dbl_3b": (384, 384, 3, 1),
                      f"{name}.branch_pool": (192, cin, 1, 1)})

    block_a("Mixed_5b", 192, 32)
    block_a("Mixed_5c", 256, 64)
    block_a("Mixed_5d", 288, 64)
    convs.update({"Mixed_6a.branch3x3": (384, 288, 3, 3), "Mixed_6a.branch3x3dbl_1": (64, 288, 1, 1),
                  "Mixed_6a.branch3x3dbl_2": (96, 64, 3, 3), "Mixed_6a.branch3x3dbl_3": (96, 96, 3, 3)})
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        block_c(name, c7)
    convs.update({"Mixed_7a.branch3x3_1": (192, 768, 1, 1), "Mixed_7a.branch3x3_2": (320, 192, 3, 3),
                  "Mixed_7a.branch7x7x3_1": (192, 768, 1, 1), "Mixed_7a.branch7x7x3_2": (192, 192, 1, 7),
                  "Mixed_7a.branch7x7x3_3": (192, 192, 7, 1), "Mixed_7a.branch7x7x3_4": (192, 192, 3, 3)})
    block_e("Mixed_7b", 1280)
    block_e("Mixed_7c", 2048)
    return convs


def expected_shapes(with_counters: bool = True) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name, (cout, cin, kh, kw) in expected_layout().items():
        shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{p}"] = (cout,)
        if with_counters:
            shapes[f"{name}.bn.num_batches_tracked"] = ()
    shapes["fc.weight"], shapes["fc.bias"] = (1008, 2048), (1008,)
    return shapes


def synthetic_state(with_counters: bool = True) -> dict[str, torch.Tensor]:
    """Random tensors with the expected keys and shapes; all views of two shared storages, so the file is ~8 MB
    instead of 95 MB (torch.save writes a storage once)."""
    g = torch.Generator().manual_seed(0)
    big, pos = torch.randn(2_100_000, generator=g) * 0.02, torch.rand(2048, generator=g) + 0.5
    state = {}
    for key, shape in expected_shapes(with_counters).items():
        n = torch.Size(shape).numel()
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = pos[:n].view(shape)
        else:
            state[key] = big[:n].view(shape)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "fid_inception_copy.pth"
    torch.save(synthetic_state(), path)
    return path


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    monkeypatch.delenv(I.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_key_set_shapes_and_parameter_count():
    model = I.FIDInceptionV3()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected_shapes()  # 94 conv+BN units x 6 entries + fc weight and bias = 566 entries
    assert len(got) == 566
    n_params = sum(torch.Size(s).numel() for k, s in expected_shapes().items()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    # torchvision publishes 27,161,264 parameters for inception_v3 (aux head, 1000 classes). Aux head:
    # conv0 768*128 + bn 2*128, conv1 128*768*5*5 + bn 2*768, fc 768*1000 + 1000 = 3,326,696. The FID network has no
    # aux head and a 1008-way fc: 27,161,264 - 3,326,696 - (2048*1000 + 1000) + (2048*1008 + 1008) = 23,850,960.
    assert n_params == 27_161_264 - 3_326_696 - 2_049_000 + 2_065_392 == 23_850_960 == I.NUM_PARAMS
    assert sum(p.numel() for p in model.parameters()) == n_params


@pytest.mark.parametrize("counters", [True, False])
def test_strict_load_of_a_synthetic_file(tmp_path, no_hub, weights_file, counters):
    path = weights_file
    if not counters:  # files written before BatchNorm had num_batches_tracked must load too
        path = tmp_path / "old.pth"
        torch.save(synthetic_state(with_counters=False), path)
    model = I.load_fid_inception(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    want = synthetic_state()
    for key, val in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(val, want[key]), key


def test_features_are_2048_d_at_299_px(no_hub, weights_file):
    model = I.load_fid_inception(weights_file)
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    feats = I.extract_inception_features(model, x)  # the one full-size forward of the suite (resized to 299)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float64 and bool(torch.isfinite(feats).all())
    assert bool((feats >= 0).all())  # mean of ReLU outputs
    with torch.no_grad():
        small = model.features(torch.rand(1, 3, 75, 75), resize=False)  # 75 px: the smallest valid input
        assert small.shape == (1, 2048) and model.fc(small).shape == (1, 1008)  # the graph's 1008 logits


def test_resizing_and_input_scaling():
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    got = I.FIDInceptionV3.preprocess(x)
    want = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1  # pytorch-fid's order
    assert got.shape == (2, 3, 299, 299)
    torch.testing.assert_close(got, want)
    assert float(got.min()) >= -1 and float(got.max()) <= 1
    torch.testing.assert_close(I.FIDInceptionV3.preprocess(x, resize=False), 2 * x - 1)
    same = torch.rand(1, 3, 299, 299)
    torch.testing.assert_close(I.FIDInceptionV3.preprocess(same), 2 * same - 1)  # 299 in: no resampling
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        I.FIDInceptionV3.preprocess(torch.rand(1, 1, 64, 64))


def test_tf_average_pool_ignores_padding():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    # by hand: corner (0, 0) averages its 4 real neighbours 0, 1, 3, 4 -> 2; edge (0, 1) averages 0..5 -> 2.5;
    # the centre sees all nine -> 4. Counting the zero padding would give 8/9 and 15/9 instead.
    want = torch.tensor([[2.0, 2.5, 3.0], [3.5, 4.0, 4.5], [5.0, 5.5, 6.0]])
    torch.testing.assert_close(I.tf_avg_pool3(x)[0, 0], want)
    assert float(F.avg_pool2d(x, 3, 1, 1)[0, 0, 0, 0]) == pytest.approx(8 / 9)  # torchvision's (non-FID) pooling


@pytest.mark.parametrize("block,pooled", [
    (lambda: I.BlockA(1, pool_features=1), "avg"), (lambda: I.BlockC(1, c7=1), "avg"),
    (lambda: I.BlockE(1, pool="avg"), "avg"), (lambda: I.BlockE(1, pool="max"), "max")])
def test_blocks_pool_their_last_branch_as_the_fid_graph(block, pooled):
    """With identity convs and BN, the last output channel is the pooled input: TF-style average in the A, C and
    first E blocks, max in the last E block (Mixed_7c)."""
    b = block().eval()
    with torch.no_grad():
        for mod in b.modules():
            if isinstance(mod, I.ConvBN):
                mod.conv.weight.fill_(1.0)
                mod.bn.running_var.fill_(1 - mod.bn.eps)  # (x - 0) / sqrt(var + eps) * 1 + 0 = x
        x = torch.arange(9.0).view(1, 1, 3, 3)
        last = b(x)[0, -1]
    want = torch.tensor([[2.0, 2.5, 3.0], [3.5, 4.0, 4.5], [5.0, 5.5, 6.0]]) if pooled == "avg" else \
        torch.tensor([[4.0, 5.0, 5.0], [7.0, 8.0, 8.0], [7.0, 8.0, 8.0]])
    torch.testing.assert_close(last, want)


def test_error_paths(tmp_path, no_hub):
    with pytest.raises(WeightsNotFoundError) as err:
        I.load_fid_inception()
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for part in (I.FID_INCEPTION.url, I.FID_INCEPTION.sha256, "--inception-weights", "$TORCHWORKS_INCEPTION_WEIGHTS"):
        assert part in msg
    with pytest.raises(FileNotFoundError, match="no Inception-FID file"):
        I.load_fid_inception(tmp_path / "missing.pth")
    no_hub.mkdir(parents=True)
    (no_hub / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="does not match the published 6726825d0af5"):
        I.load_fid_inception()  # found in the hub cache under the published name, refused by its hash
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        I.load_fid_inception(tmp_path / "junk.pth")
    tv = {"AuxLogits.fc.weight": torch.zeros(1000, 768), "fc.weight": torch.zeros(1000, 2048)}
    torch.save(tv, tmp_path / "inception_v3_google.pth")
    with pytest.raises(CheckpointError, match="torchvision's ImageNet Inception-v3"):
        I.load_fid_inception(tmp_path / "inception_v3_google.pth")
    state = synthetic_state()
    del state["Mixed_6e.branch_pool.conv.weight"]
    state["Mixed_7c.branch_pool.bn.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"missing 1 \(e.g. Mixed_6e.branch_pool.conv.weight\).*wrong shape"):
        I.load_fid_inception(tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="pool must be"):
        I.BlockE(8, pool="min")


def test_harness_and_cli_wiring(tmp_path, monkeypatch, weights_file, no_hub, capsys):
    """Both optional metrics through ``inpaint-eval``: LPIPS per row, Inception-FID per set (299 px patched to 75
    and FID to 16 feature dims to keep it fast; the network is the same)."""
    pytest.importorskip("cv2")
    from test_inpaint_lpips import random_lin, torchvision_alexnet_state

    from torchworks.cli import inpaint_cmd
    from torchworks.inpainting.evaluate import summary_tables

    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(FIXTURES / "chelsea_96x64.png", images / name)
    torch.save(torchvision_alexnet_state(), tmp_path / "alex.pth")
    torch.save(random_lin(), tmp_path / "lin.pth")
    monkeypatch.setenv("TORCHWORKS_LPIPS_LIN", str(tmp_path / "lin.pth"))
    monkeypatch.setattr(I, "INPUT_SIZE", 75)
    parser = argparse.ArgumentParser()
    inpaint_cmd.add_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["inpaint-eval", "--images", str(images), "--methods", "mean", "--masks", "center",
                              "--size", "64", "--out", str(tmp_path / "ev"), "--lpips-backbone",
                              str(tmp_path / "alex.pth"), "--inception-weights", str(weights_file)])
    assert inpaint_cmd.run(args) == 0
    out = capsys.readouterr().out
    assert "LPIPS |" in out and "FID-Inception" in out and "FID-Lite0" not in out
    header = (tmp_path / "ev" / "metrics.csv").read_text().splitlines()[0]
    assert header.endswith(",lpips")
    from torchworks.inpainting.evaluate import Row
    assert "LPIPS" not in summary_tables([Row("x", "center", "mean", 0.25, 20, 10, 0.1, 0.2, 0.9, 0.9, 0.01)])
    monkeypatch.setenv(I.ENV_WEIGHTS, str(tmp_path / "nope.pth"))  # the env var alone switches the metric on
    args = parser.parse_args(["inpaint-eval", "--images", str(images), "--methods", "mean", "--masks", "center",
                              "--size", "64", "--out", str(tmp_path / "ev2")])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        inpaint_cmd.run(args)
