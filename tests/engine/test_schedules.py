"""The engine's one warm-up + cosine (and warm-up + steps) LR schedule: hand values, torch's cosine, the formula the
GPT and ViT tasks used before it moved here, LambdaLR state, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from torchworks.engine.schedules import WarmupCosine, WarmupMultiStep


def _nanogpt_reference(step: int, warmup: int, decay: int, floor: float) -> float:
    """The transformer tasks' former ``WarmupCosine`` (nanoGPT ``get_lr``), written out as it was."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if step > decay:
        return floor
    ratio = (step - warmup) / max(1, decay - warmup)
    return floor + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1.0 - floor)


def test_warmup_cosine_hand_values():
    """W = 10: steps 0..9 get (k + 1) / 11; the cosine runs from step 10 (1.0) to step 110 (the floor 0.2)."""
    f = WarmupCosine(10, 110, 0.2)
    assert [f(s) for s in (0, 9, 10, 60, 110, 111, 500)] == pytest.approx([1 / 11, 10 / 11, 1.0, 0.6, 0.2, 0.2, 0.2])
    assert [WarmupCosine(10, 0)(s) for s in (0, 10, 10_000)] == pytest.approx([1 / 11, 1.0, 1.0])  # no decay
    assert [WarmupCosine(0, 0)(s) for s in (0, 5)] == [1.0, 1.0]


@pytest.mark.parametrize(("warmup", "total", "floor"), [(0, 50, 0.0), (7, 50, 0.0), (100, 5000, 0.1), (3, 4, 0.5)])
def test_warmup_cosine_is_bit_identical_to_the_former_transformer_schedule(warmup, total, floor):
    f = WarmupCosine(warmup, total, floor)
    for step in range(0, total + 20, max(1, total // 97)):
        assert f(step) == _nanogpt_reference(step, warmup, total, floor), step


def test_cosine_without_warmup_matches_torch_cosine_annealing():
    """LambdaLR with the multiplier follows torch's CosineAnnealingLR (to eta_min = 0) step by step."""
    lrs = []
    for make in (lambda o: torch.optim.lr_scheduler.LambdaLR(o, WarmupCosine(0, 40)),
                 lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
        sched, seen = make(opt), []
        for _ in range(41):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        lrs.append(seen)
    assert lrs[0] == pytest.approx(lrs[1], abs=1e-12)
    assert lrs[0][0] == 0.3 and lrs[0][20] == pytest.approx(0.15) and lrs[0][40] == pytest.approx(0.0, abs=1e-15)


def test_delay_holds_step_zero_through_an_init_phase():
    f, g = WarmupCosine(4, 20, delay=6), WarmupCosine(4, 20)
    assert [f(s) for s in range(6)] == [g(0)] * 6
    assert [f(s + 6) for s in range(30)] == [g(s) for s in range(30)]


def test_multistep_hand_values():
    f = WarmupMultiStep(0, 240, [0.625, 0.75, 0.875])  # RepDistiller: x0.1 at epochs 150, 180, 210 of 240
    assert [f(s) for s in (0, 149, 150, 179, 180, 210, 239)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.001, 0.001])
    g = WarmupMultiStep(3, 100, [0.5], gamma=0.5, delay=2)
    assert [g(s) for s in (0, 2, 3, 4, 5, 51, 52)] == pytest.approx([0.25, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5])
    assert WarmupMultiStep(0, 0, [0.5])(10**6) == 1.0  # no total_steps: no steps


def test_lambdalr_state_carries_the_numbers():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(5, 50, 0.1))
    for _ in range(7):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert state["lr_lambdas"][0] == {"warmup_steps": 5, "total_steps": 50, "min_lr_ratio": 0.1, "delay": 0}
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    other = torch.optim.lr_scheduler.LambdaLR(opt2, WarmupCosine(0, 0))
    other.load_state_dict(state)
    opt2.step()
    other.step()
    opt.step()
    sched.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(_nanogpt_reference(8, 5, 50, 0.1))


@pytest.mark.parametrize(("make", "match"), [
    (lambda: WarmupCosine(-1, 10), "warmup_steps"),
    (lambda: WarmupCosine(0, 10, min_lr_ratio=1.5), "min_lr_ratio"),
    (lambda: WarmupCosine(0, 10, delay=-2), "delay"),
    (lambda: WarmupMultiStep(0, 10, [150]), "milestones"),
])
def test_bad_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()
