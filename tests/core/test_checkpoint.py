import random

import numpy as np
import pytest
import torch
from torch import nn

from torchworks.core.checkpoint import (
    build_model,
    load_checkpoint,
    load_model,
    load_weights,
    save_checkpoint,
    save_model,
)
from torchworks.core.errors import CheckpointError
from torchworks.core.registry import MODELS
from torchworks.core.seeding import rng_state, seed_everything, set_rng_state


class _Net(nn.Module):
    def __init__(self, width=4, tied=False):
        super().__init__()
        self.emb = nn.Embedding(10, width)
        self.out = nn.Linear(width, 10, bias=False)
        if tied:
            self.out.weight = self.emb.weight
        self.register_buffer("count", torch.tensor(3, dtype=torch.int64))

    def forward(self, x):
        return self.out(self.emb(x))


if "_test_ckpt_net" not in MODELS:
    MODELS.add("_test_ckpt_net", _Net)


def test_nested_state_round_trips_exactly(tmp_path):
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {
        "step": 7, "lr": 0.25, "name": "x", "flag": None, "pair": (1, "a"), "nums": [1.5, float("inf")],
        "bf16": torch.randn(5, dtype=torch.bfloat16), "empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5),
        "optimizer": opt.state_dict(), "np": np.arange(4, dtype=np.int32),
    }
    save_checkpoint(tmp_path / "a.ckpt", state)
    back = load_checkpoint(tmp_path / "a.ckpt")
    assert back["step"] == 7 and back["pair"] == (1, "a") and back["nums"] == [1.5, float("inf")]
    assert back["flag"] is None and back["name"] == "x"
    assert torch.equal(back["bf16"], state["bf16"]) and back["bf16"].dtype == torch.bfloat16
    assert back["empty"].shape == (0, 3) and back["scalar"].item() == 2.5
    assert torch.equal(back["np"], torch.arange(4, dtype=torch.int32))
    osd, bsd = opt.state_dict(), back["optimizer"]
    assert set(bsd["state"]) == {0, 1}  # integer keys survive
    assert bsd["param_groups"][0]["betas"] == (0.9, 0.999)
    for k in osd["state"]:
        for name, val in osd["state"][k].items():
            assert torch.equal(bsd["state"][k][name], val)
    opt2 = torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=0.1)
    opt2.load_state_dict(bsd)  # accepted by torch


def test_model_rebuilds_from_file_alone(tmp_path):
    torch.manual_seed(0)
    model = build_model("_test_ckpt_net", width=6, tied=True)
    save_model(tmp_path / "m.ckpt", model)
    again = load_model(tmp_path / "m.ckpt")
    x = torch.tensor([[1, 2, 3]])
    assert isinstance(again, _Net) and again.emb.weight.shape == (10, 6)
    assert torch.equal(again(x), model(x)) and again.count.item() == 3
    assert again.out.weight is again.emb.weight  # the factory ties them again


def test_load_model_refuses_another_model(tmp_path):
    save_model(tmp_path / "m.ckpt", build_model("_test_ckpt_net"))
    with pytest.raises(CheckpointError, match="holds model '_test_ckpt_net', not 'fashion_mlp'"):
        load_model(tmp_path / "m.ckpt", expect="fashion_mlp")
    with pytest.raises(CheckpointError, match=r"does not fit _Net: .*wrong shape 2 \(e.g. emb.weight \(10, 4\) vs"):
        load_weights(_Net(width=5), load_checkpoint(tmp_path / "m.ckpt")["model"], source="m.ckpt")
    with pytest.raises(CheckpointError, match=r"missing 1 \(e.g. count\)"):
        sd = load_checkpoint(tmp_path / "m.ckpt")["model"]
        del sd["count"]
        load_weights(_Net(), sd)
    save_checkpoint(tmp_path / "plain.ckpt", {"step": 1})
    with pytest.raises(CheckpointError, match="no model spec inside"):
        load_model(tmp_path / "plain.ckpt")


def test_corrupt_truncated_and_foreign_files_are_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "a.ckpt", {"w": torch.randn(100), "step": 1})
    blob = path.read_bytes()
    (tmp_path / "trunc.ckpt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated|truncated"):
        load_checkpoint(tmp_path / "trunc.ckpt")
    (tmp_path / "tiny.ckpt").write_bytes(blob[:5])
    with pytest.raises(CheckpointError, match=r"truncated checkpoint \(5 bytes\)"):
        load_checkpoint(tmp_path / "tiny.ckpt")
    flipped = bytearray(blob)
    flipped[-3] ^= 0xFF  # inside the tensor payload
    (tmp_path / "flip.ckpt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "flip.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="corrupt checkpoint header"):
        load_checkpoint(tmp_path / "junk.ckpt")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a torchworks checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_failed_save_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = save_checkpoint(tmp_path / "a.ckpt", {"step": 1})
    with pytest.raises(TypeError, match="cannot store object"):
        save_checkpoint(path, {"step": 2, "bad": object()})
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt"]


def test_rng_state_through_a_checkpoint_replays_every_generator(tmp_path):
    seed_everything(123)
    save_checkpoint(tmp_path / "r.ckpt", {"rng": rng_state()})
    first = (torch.rand(3), np.random.rand(3), random.random())
    seed_everything(999)
    set_rng_state(load_checkpoint(tmp_path / "r.ckpt")["rng"])
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_checkpoint_gets_ordinary_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "p.ckpt", {"step": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600: shipped files must be readable
