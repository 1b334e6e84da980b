"""Contract of every registered loss: finite gradients, gradients reach the student only, and shape errors
that name the method and the shapes. One spec per registry entry; a new loss without a spec fails the sweep."""

import pytest
import torch

from torchworks.core.registry import DISTILL_LOSSES


def maps(*shapes):
    return [torch.randn(*s) for s in shapes]


# name -> (constructor kwargs, student inputs, teacher inputs, extra forward kwargs); B = 4 everywhere
SPECS = {
    "kd": ({}, torch.randn(4, 5), torch.randn(4, 5), {}),
    "dkd": ({}, torch.randn(4, 5), torch.randn(4, 5), {"target": torch.tensor([0, 1, 4, 2])}),
    "dist": ({}, torch.randn(4, 5), torch.randn(4, 5), {}),
    "fitnet": ({"s_shape": (3, 8, 8), "t_shape": (6, 4, 4)}, torch.randn(4, 3, 8, 8), torch.randn(4, 6, 4, 4), {}),
    "at": ({}, maps((4, 3, 8, 8), (4, 5, 4, 4)), maps((4, 6, 4, 4), (4, 2, 4, 4)), {}),
    "sp": ({}, maps((4, 3, 4, 4)), maps((4, 8, 2, 2)), {}),
    "cc": ({"s_dim": 6, "t_dim": 10}, torch.randn(4, 6), torch.randn(4, 10), {}),
    "vid": ({"s_channels": [3, 5], "t_channels": [4, 6]}, maps((4, 3, 4, 4), (4, 5, 2, 2)),
            maps((4, 4, 4, 4), (4, 6, 2, 2)), {}),
    "rkd": ({}, torch.randn(4, 6), torch.randn(4, 9), {}),
    "pkt": ({}, torch.randn(4, 6), torch.randn(4, 9), {}),
    "ab": ({"s_shapes": [(3, 4, 4), (5, 2, 2)], "t_shapes": [(3, 4, 4), (7, 2, 2)]}, maps((4, 3, 4, 4), (4, 5, 2, 2)),
           maps((4, 3, 4, 4), (4, 7, 2, 2)), {}),
    "ft": ({"s_channels": 3, "t_channels": 6}, torch.randn(4, 3, 4, 4), torch.randn(4, 6, 4, 4), {}),
    "fsp": ({}, maps((4, 3, 4, 4), (4, 5, 2, 2)), maps((4, 3, 4, 4), (4, 5, 2, 2)), {}),
    "nst": ({}, maps((4, 3, 4, 4), (4, 2, 2, 2)), maps((4, 7, 2, 2), (4, 3, 2, 2)), {}),
    "crd": ({"s_dim": 6, "t_dim": 10, "n_data": 20, "feat_dim": 8, "k": 5}, torch.randn(4, 6), torch.randn(4, 10),
            {"idx": torch.tensor([0, 5, 7, 19])}),
    "ofd": ({"s_channels": [3, 5], "t_channels": [4, 6]}, maps((4, 3, 4, 4), (4, 5, 2, 2)),
            maps((4, 4, 4, 4), (4, 6, 2, 2)), {}),
}


def as_leaves(x):
    if isinstance(x, list):
        return [t.clone().requires_grad_(True) for t in x]
    return x.clone().requires_grad_(True)


def leaves(x):
    return x if isinstance(x, list) else [x]


def test_every_registered_loss_has_a_spec():
    assert sorted(SPECS) == DISTILL_LOSSES.names()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_finite_grads_reach_student_not_teacher(name):
    kwargs, s, t, extra = SPECS[name]
    loss_fn = DISTILL_LOSSES.build(name, **kwargs)
    s, t = as_leaves(s), as_leaves(t)
    loss = loss_fn(s, t, **extra)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for x in leaves(s):
        assert x.grad is not None and torch.isfinite(x.grad).all()
    assert any(x.grad.abs().sum() > 0 for x in leaves(s)), f"{name}: no gradient signal reaches the student"
    for x in leaves(t):
        assert x.grad is None, f"{name}: gradient leaked into the teacher"
    for pname, p in loss_fn.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite grad in {pname}"


def _wrong_batch(x):
    if isinstance(x, list):
        return [t[:3] for t in x]
    return x[:3]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_batch_mismatch_raises_value_error_naming_method(name):
    kwargs, s, t, extra = SPECS[name]
    loss_fn = DISTILL_LOSSES.build(name, **kwargs)
    with pytest.raises(ValueError, match=rf"^{name}:") as info:
        loss_fn(s, _wrong_batch(t), **extra)
    assert "3" in str(info.value) and "4" in str(info.value)


@pytest.mark.parametrize("name", ["at", "vid", "ab", "fsp", "nst", "ofd"])
def test_list_length_mismatch_raises(name):
    kwargs, s, t, extra = SPECS[name]
    with pytest.raises(ValueError, match=rf"^{name}:"):
        DISTILL_LOSSES.build(name, **kwargs)(s, t[:1], **extra)


@pytest.mark.parametrize("name", ["fitnet", "cc", "vid", "ab", "ft", "crd", "ofd"])
def test_inputs_not_matching_constructor_shapes_raise(name):
    kwargs, s, t, extra = SPECS[name]
    loss_fn = DISTILL_LOSSES.build(name, **kwargs)
    if isinstance(s, list):
        bad = [torch.randn(x.shape[0], x.shape[1] + 1, *x.shape[2:]) for x in s]
    else:
        bad = torch.randn(s.shape[0], s.shape[1] + 1, *s.shape[2:])
    with pytest.raises(ValueError, match=rf"^{name}:"):
        loss_fn(bad, t, **extra)


@pytest.mark.parametrize("name", ["fitnet", "cc", "vid", "ab", "ft", "crd", "ofd"])
def test_learnable_parts_are_parameters(name):
    kwargs, *_ = SPECS[name]
    assert sum(p.numel() for p in DISTILL_LOSSES.build(name, **kwargs).parameters()) > 0


@pytest.mark.parametrize("name", ["at", "sp", "nst", "fsp", "pkt", "rkd"])
def test_parameter_free_losses_gradcheck(name):
    _, s, t, _ = SPECS[name]
    s = [x.double().requires_grad_(True) for x in leaves(s)]
    t = [x.double() for x in leaves(t)]
    loss_fn = DISTILL_LOSSES.build(name)
    single = name in ("pkt", "rkd")
    assert torch.autograd.gradcheck(lambda *xs: loss_fn(xs[0] if single else list(xs), t[0] if single else t), s)


@pytest.mark.parametrize("name", ["fitnet", "cc", "ab", "ft"])
def test_mode_switch_validated(name):
    kwargs, *_ = SPECS[name]
    with pytest.raises(ValueError, match="mode"):
        DISTILL_LOSSES.build(name, **kwargs, mode="paperish")
