"""Folding eval-mode BN into the layer before it, against the unfolded model in eval mode (float64).

The reference is the model itself before folding: Alg. 2, line 11 applied by the BN layer, so a
folded weight laid out wrongly (e.g. ConvTranspose scaled along dim 0) cannot match it.
"""

import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

from bnpaper import BatchNorm, fold_batchnorm
from bnpaper.inference import FoldReport, fold_layer, plan_fold

TORCH_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


@torch.no_grad()
def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial E[x], Var[x], gamma (some negative) and beta in every BN of the model."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, (BatchNorm, nn.modules.batchnorm._BatchNorm)) and mod.running_mean is not None:
            C = mod.num_features
            mod.running_mean.copy_(torch.randn(C, generator=g, dtype=torch.float64) * 2)
            mod.running_var.copy_(torch.rand(C, generator=g, dtype=torch.float64) * 3 + 0.1)
            if mod.weight is not None:
                mod.weight.copy_(torch.randn(C, generator=g, dtype=torch.float64))
            if mod.bias is not None:
                mod.bias.copy_(torch.randn(C, generator=g, dtype=torch.float64))
    return model


def max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, (BatchNorm, nn.modules.batchnorm._BatchNorm)) for m in model.modules())


def fold_quietly(model: nn.Module, **kw):
    """fold_batchnorm that fails the test if it warns (every BN is expected to fold)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fold_batchnorm(model, **kw)


# ------------------------------------------------------------------------------- correctness


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose_folds_per_output_channel_within_groups(dim, groups, bias):
    # weight (C_in=4, C_out/g, *k): C_out = 6 != C_in, so scaling the wrong dim cannot match
    torch.manual_seed(dim * 10 + groups)
    layer = CONV_T[dim](4, 6, 3, stride=2, groups=groups, bias=bias)
    bn = BatchNorm(6) if dim < 3 else TORCH_BN[dim](6)
    model = randomize_bn(nn.Sequential(layer, bn).double(), seed=dim + groups).eval()
    folded, report = fold_quietly(model, return_report=True)
    assert report == FoldReport(folded=[("0", "1")], skipped={})
    assert isinstance(folded[1], nn.Identity) and count_bn(folded) == 0
    x = torch.randn(5, 4, *(4,) * dim, dtype=torch.float64)
    assert max_diff(model, folded, x) < 1e-10


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2, 4])  # 4: depthwise (one input channel per group)
def test_grouped_conv_folds(dim, groups):
    torch.manual_seed(dim + groups)
    model = nn.Sequential(CONV[dim](4, 8, 3, groups=groups), TORCH_BN[dim](8), nn.ReLU()).double()
    model = randomize_bn(model, seed=groups).eval()
    folded = fold_quietly(model)
    assert count_bn(folded) == 0
    x = torch.randn(3, 4, *(6,) * dim, dtype=torch.float64)
    assert max_diff(model, folded, x) < 1e-10


@pytest.mark.parametrize("bias", [True, False])
def test_linear_folds_after_training_batches(bias):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7, bias=bias), BatchNorm(7), nn.Tanh(), nn.Linear(7, 3)).double()
    for _ in range(5):  # running statistics from real training batches
        model(torch.randn(16, 5, dtype=torch.float64) * 2 + 1)
    model.eval()
    assert model[1].running_mean.abs().max() > 0.1  # non-trivial statistics were tracked
    folded = fold_quietly(model)
    assert max_diff(model, folded, torch.randn(9, 5, dtype=torch.float64)) < 1e-10


@pytest.mark.parametrize("missing", ["weight", "bias", "both"])
def test_bn_weight_and_bias_may_be_missing_independently(missing):
    torch.manual_seed(5)
    bn = nn.BatchNorm1d(4)
    model = randomize_bn(nn.Sequential(nn.Linear(3, 4), bn).double()).eval()
    if missing in ("weight", "both"):
        bn.weight = None  # gamma = 1
    if missing in ("bias", "both"):
        bn.bias = None  # beta = 0
    folded = fold_quietly(model)
    assert max_diff(model, folded, torch.randn(6, 3, dtype=torch.float64)) < 1e-10


def test_fold_leaves_the_input_model_unchanged():
    model = randomize_bn(nn.Sequential(nn.Conv2d(2, 3, 3), BatchNorm(3)).double()).eval()
    w = model[0].weight.clone()
    fold_quietly(model)
    assert torch.equal(model[0].weight, w) and isinstance(model[1], BatchNorm)


# ------------------------------------------------------------------------------- the report


def nested_model() -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(1, 4, 3), BatchNorm(4), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    )
    head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.BatchNorm1d(5))
    return nn.Sequential(OrderedDict(features=features, head=head)).double()


def test_nested_sequentials_report_nested_paths():
    torch.manual_seed(6)
    model = nested_model()
    for _ in range(3):
        model(torch.randn(8, 1, 8, 8, dtype=torch.float64) * 2 + 1)
    model.eval()
    folded, report = fold_quietly(model, return_report=True)
    assert report.folded == [
        ("features.0", "features.1"),
        ("features.3.0", "features.3.1"),
        ("head.1", "head.2"),
    ]
    assert report.skipped == {}
    assert count_bn(folded) == 0
    assert max_diff(model, folded, torch.randn(4, 1, 8, 8, dtype=torch.float64)) < 1e-10


def relu_then_bn_model() -> nn.Module:
    features = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.BatchNorm2d(3))
    return randomize_bn(nn.Sequential(OrderedDict(features=features)).double()).eval()


def test_bn_after_relu_is_kept_and_named_in_one_warning():
    model = relu_then_bn_model()
    with pytest.warns(UserWarning, match=r"'features\.3': follows ReLU 'features\.2'") as record:
        folded, report = fold_batchnorm(model, return_report=True)
    assert len(record) == 1
    assert report.folded == [("features.0", "features.1")]
    assert list(report.skipped) == ["features.3"]
    assert isinstance(folded.features[3], nn.BatchNorm2d)  # kept as it was
    assert max_diff(model, folded, torch.randn(4, 1, 7, 7, dtype=torch.float64)) < 1e-10


def test_strict_raises_naming_every_skipped_path():
    with pytest.raises(ValueError, match=r"cannot fold 1 BN layer\(s\):\n  'features\.3': follows ReLU"):
        fold_batchnorm(relu_then_bn_model(), strict=True)


class ConvBlock(nn.Module):  # BN called from a custom forward(): the order is not known from structure
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv1d(2, 3, 1), BatchNorm(3)

    def forward(self, x):
        return self.bn(self.conv(x))


def test_plan_gives_each_reason_in_model_order():
    model = nn.Sequential(
        OrderedDict(
            first=nn.Sequential(nn.BatchNorm1d(2), nn.Conv1d(2, 3, 1)),
            block=ConvBlock(),
            no_stats=nn.Sequential(nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3, track_running_stats=False)),
            mismatch=nn.Sequential(nn.Conv1d(3, 4, 1), BatchNorm(5)),
            ok=nn.Sequential(nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3)),
        )
    )
    report = plan_fold(model)
    assert report.folded == [("ok.0", "ok.1")]
    assert list(report.skipped) == ["first.0", "block.bn", "no_stats.1", "mismatch.1"]
    assert report.skipped["first.0"] == "first module of its nn.Sequential 'first'"
    assert report.skipped["block.bn"].startswith(
        "not inside an nn.Sequential (its parent 'block' is a ConvBlock"
    )
    assert report.skipped["no_stats.1"].startswith("track_running_stats=False")
    assert "BN has 5 features but Conv1d 'mismatch.0' has 4 output channels" in report.skipped["mismatch.1"]
    assert plan_fold(BatchNorm(3)).skipped == {
        "": "the model itself is the BN: no layer before it to fold into"
    }


# ------------------------------------------------------------------------------- refusals


def test_training_mode_model_is_refused():
    model = nn.Sequential(nn.Linear(2, 3), BatchNorm(3)).double()  # training mode, as constructed
    with pytest.raises(ValueError, match=r"needs the model in eval mode.*Call model\.eval\(\) first"):
        fold_batchnorm(model)
    assert model.training  # not switched to eval behind the user's back


def test_a_bn_left_in_training_mode_is_refused_by_path():
    model = nested_model().eval()
    model.head[2].train()
    with pytest.raises(ValueError, match=r"got training mode for 'head\.2'.*model\.eval\(\)"):
        fold_batchnorm(model)


def test_fold_layer_refuses_training_bn_and_folds_conv_transpose_only_with_matching_channels():
    with pytest.raises(ValueError, match="training mode"):
        fold_layer(nn.Linear(2, 3), BatchNorm(3))
    with pytest.raises(ValueError, match="3 features but the layer before it has 6"):
        fold_layer(nn.ConvTranspose2d(4, 6, 3), BatchNorm(3).eval())
