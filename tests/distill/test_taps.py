"""Feature taps on arbitrary modules: path validation, capture order, dry-run shapes feeding a regressor."""

import pytest
import torch
from torch import nn

from torchworks.core.registry import MODELS
from torchworks.distill.losses import FitNetLoss
from torchworks.distill.taps import FeatureTaps, feature_shapes, resolve_module, zoo_feature_shapes


class Plain(nn.Module):
    """A model that knows nothing about distillation."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1))
        self.head = nn.Linear(6, 5)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def test_wrong_path_fails_at_construction_with_close_names():
    model = Plain()
    with pytest.raises(ValueError, match=r"'features\.3'.*close names: .*features\.2"):
        FeatureTaps(model, ["features.0", "features.3"])
    with pytest.raises(ValueError, match="close names: head"):
        resolve_module(model, "haed")
    # nothing stays hooked after a failed construction
    assert not model.features[0]._forward_hooks


def test_captures_in_given_order_and_refreshes_each_forward():
    model = Plain()
    x = torch.randn(2, 3, 8, 8)
    with FeatureTaps(model, ["features.2", "features.0"]) as taps:
        model(x)
        f2, f0 = taps.outputs()
        assert f2.shape == (2, 6, 4, 4) and f0.shape == (2, 4, 8, 8)
        torch.testing.assert_close(f0, model.features[0](x))
        model(x * 2)
        assert not torch.equal(taps.outputs()[1], f0)
        assert f2.requires_grad  # graph kept for student taps
    assert not model.features[0]._forward_hooks  # removed on exit


def test_input_capture_gives_pre_relu_values():
    model = Plain()
    with FeatureTaps(model, ["features.1"], capture="input") as taps:
        model(torch.randn(2, 3, 8, 8))
        (pre,) = taps.outputs()
        assert (pre < 0).any()


def test_missing_run_is_reported():
    model = Plain()
    taps = FeatureTaps(model, ["head"])
    with pytest.raises(RuntimeError, match="did not run"):
        taps.outputs()


def test_feature_shapes_dry_run_restores_mode_and_statistics():
    model = MODELS.build("resnet8").train()
    stats = model.bn1.running_mean.clone()
    shapes = feature_shapes(model, ["layer2", "layer3.0.conv1"], torch.zeros(1, 3, 32, 32))
    assert shapes == {"layer2": (32, 16, 16), "layer3.0.conv1": (64, 8, 8)}
    assert model.training and torch.equal(model.bn1.running_mean, stats)
    assert zoo_feature_shapes(model, torch.zeros(1, 3, 32, 32))[-1] == (64,)


def test_regressor_built_from_inferred_shapes_trains_on_foreign_models():
    student, teacher = Plain(), MODELS.build("resnet8", num_classes=5)
    x = torch.randn(2, 3, 32, 32)
    s_shape = feature_shapes(student, ["features.2"], x[:1])["features.2"]
    t_shape = feature_shapes(teacher, ["layer2"], x[:1])["layer2"]
    loss_fn = FitNetLoss(s_shape, t_shape)
    opt = torch.optim.SGD([*student.parameters(), *loss_fn.parameters()], lr=0.05)
    with FeatureTaps(student, ["features.2"]) as ts, FeatureTaps(teacher, ["layer2"]) as tt:
        teacher.eval()
        with torch.no_grad():
            teacher(x)
        (f_t,) = tt.outputs()
        losses = []
        for _ in range(5):
            student(x)
            loss = loss_fn(ts.outputs()[0], f_t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in teacher.parameters())


class SharedRelu(nn.Module):
    """One ``nn.ReLU`` used twice in forward, as torchvision's BasicBlock does."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv2(self.act(self.conv1(x))))


def test_module_run_twice_in_one_forward_is_an_error_naming_it():
    model = SharedRelu()
    with FeatureTaps(model, ["act"]) as taps:
        with pytest.raises(ValueError, match=r"'act' ran twice in one forward pass of SharedRelu"):
            model(torch.randn(1, 3, 8, 8))
        with pytest.raises(ValueError, match="ran twice"):  # every forward, not only the first
            model(torch.randn(1, 3, 8, 8))
    with FeatureTaps(model, ["conv2"]) as taps:  # a module that runs once is fine in the same model
        model(torch.randn(1, 3, 8, 8))
        assert taps.outputs()[0].shape == (1, 4, 8, 8)


def test_only_calls_inside_a_forward_of_the_model_count():
    from torch.utils.checkpoint import checkpoint

    class Checkpointed(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh())

        def forward(self, x):
            return checkpoint(self.body, x, use_reentrant=False).sum()

    model = Checkpointed()
    x = torch.randn(1, 3, 6, 6)
    with FeatureTaps(model, ["body.1"]) as taps:
        loss = model(x)
        (kept,) = taps.outputs()
        loss.backward()  # recomputes body under backward: neither an error nor a replaced output
        assert taps.outputs()[0] is kept
        model.body(x * 3)  # a direct call of the submodule leaves the stored output alone too
        assert taps.outputs()[0] is kept
        torch.testing.assert_close(kept, model.body(x))
