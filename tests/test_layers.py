"""The BatchNorm layer against torch.nn.BatchNorm*, Alg. 2 against numpy, folding, bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from bnpaper import BatchNorm, estimate_population_statistics, fold_batchnorm
from bnpaper.inference import fold_layer

TORCH_BN = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


@pytest.mark.parametrize("shape", [(20, 6), (10, 6, 9), (8, 6, 5, 5), (4, 6, 3, 3, 3)])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("impl", ["fast", "reference", "traced"])
def test_running_stats_match_torch(shape, momentum, impl):
    torch.manual_seed(0)
    ours = BatchNorm(shape[1], momentum=momentum, impl=impl).double()
    ref = TORCH_BN[len(shape)](shape[1], momentum=momentum).double()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ref.weight.copy_(ours.weight)
    for step in range(7):
        x = torch.randn(shape, dtype=torch.float64) * (step + 1) + step
        y_ours, y_ref = ours(x), ref(x)
        assert (y_ours - y_ref).abs().max().item() <= 1e-12
    assert (ours.running_mean - ref.running_mean).abs().max().item() <= 1e-12
    assert (ours.running_var - ref.running_var).abs().max().item() <= 1e-12
    assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == 7
    ours.eval(), ref.eval()
    x = torch.randn(shape, dtype=torch.float64)
    assert (ours(x) - ref(x)).abs().max().item() <= 1e-12


def test_track_running_stats_false_uses_batch_stats_in_eval():
    bn = BatchNorm(4, track_running_stats=False).double().eval()
    x = torch.randn(9, 4, dtype=torch.float64) + 5
    y = bn(x)
    assert torch.allclose(y.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)


def test_layer_backward_matches_torch():
    torch.manual_seed(1)
    x = torch.randn(16, 8, 6, 6, dtype=torch.float64)
    ours, ref = BatchNorm(8).double(), nn.BatchNorm2d(8).double()
    xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    dy = torch.randn_like(x)
    ours(xo).backward(dy), ref(xr).backward(dy)
    assert (xo.grad - xr.grad).abs().max().item() < 1e-12
    assert (ours.weight.grad - ref.weight.grad).abs().max().item() < 1e-10
    assert (ours.bias.grad - ref.bias.grad).abs().max().item() < 1e-10


def small_model(bn=BatchNorm):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        bn(4),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, bias=False),
        bn(5),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(5 * 4 * 4, 7),
        bn(7, affine=False),
        nn.Linear(7, 3),
    ).double()


def test_algorithm2_equals_pooled_unbiased_numpy():
    torch.manual_seed(2)
    model = small_model()
    batches = [torch.randn(6, 1, 8, 8, dtype=torch.float64) * 2 + 1 for _ in range(5)]
    before = model[1].running_mean.clone()
    est = estimate_population_statistics(model, batches)
    # independent reference: collect the first BN's input with plain numpy
    first_conv = model[0]
    means, variances = [], []
    for b in batches:
        a = first_conv(b).detach().numpy()  # (6, 4, 6, 6)
        a = a.transpose(1, 0, 2, 3).reshape(4, -1)  # (C, m*p*q)
        means.append(a.mean(1))
        variances.append(a.var(1))  # biased, as Alg. 1
    m = 6 * 6 * 6
    mean_ref = np.mean(means, 0)
    var_ref = m / (m - 1) * np.mean(variances, 0)
    mean, var = est["1"]
    assert np.abs(mean.numpy() - mean_ref).max() < 1e-12
    assert np.abs(var.numpy() - var_ref).max() < 1e-12
    assert torch.equal(model[1].running_mean, mean) and not torch.equal(before, mean)
    assert model[1].num_batches_tracked.item() == 0  # estimating did not count as training
    assert set(est) == {"1", "4", "8"}


def test_cumulative_average_equals_algorithm2_for_fixed_m():
    """momentum=None after k batches from reset gives Alg. 2's estimate (the mean of the k batch
    statistics)."""
    torch.manual_seed(3)
    bn = BatchNorm(3, momentum=None).double()
    batches = [torch.randn(10, 3, dtype=torch.float64) * 3 + 2 for _ in range(6)]
    for b in batches:
        bn(b)
    est = estimate_population_statistics(nn.Sequential(BatchNorm(3).double()), batches)["0"]
    assert torch.allclose(bn.running_mean, est[0], atol=1e-12, rtol=0)
    assert torch.allclose(bn.running_var, est[1], atol=1e-12, rtol=0)


def test_algorithm2_rejects_mixed_batch_sizes_and_empty_input():
    model = nn.Sequential(BatchNorm(2)).double()
    with pytest.raises(ValueError, match="one size m"):
        estimate_population_statistics(model, [torch.randn(5, 2).double(), torch.randn(4, 2).double()])
    with pytest.raises(ValueError, match="no batches"):
        estimate_population_statistics(model, [])


@pytest.mark.parametrize("bn", [BatchNorm, None])
def test_folded_model_equals_bn_model_in_eval(bn):
    torch.manual_seed(4)
    if bn is None:  # torch's own BN layers fold too
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 6 * 6, 5),
            nn.BatchNorm1d(5),
        ).double()
    else:
        model = small_model()
    for _ in range(4):
        model(torch.randn(8, 1, 8, 8, dtype=torch.float64) * 3 + 1)
    model.eval()
    folded = fold_batchnorm(model)
    n_bn = lambda mdl: sum(isinstance(m, (BatchNorm, nn.BatchNorm1d, nn.BatchNorm2d)) for m in mdl.modules())
    x = torch.randn(11, 1, 8, 8, dtype=torch.float64)
    assert (folded(x) - model(x)).abs().max().item() < 1e-12
    # every BN that follows a Linear/Conv is gone; none remain in these models
    assert n_bn(folded) == 0 and n_bn(model) > 0


def test_fold_layer_errors():
    with pytest.raises(TypeError, match="can fold BN only into"):
        fold_layer(nn.ReLU(), BatchNorm(3))
    with pytest.raises(ValueError, match="3 features but the layer before it has 4"):
        fold_layer(nn.Linear(2, 4), BatchNorm(3))


# ------------------------------------------------------------------------------------ bad input


def test_one_value_per_channel_in_training():
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(torch.randn(1, 3))
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(torch.randn(1, 3, 1, 1))
    bn.eval()
    assert bn(torch.randn(1, 3)).shape == (1, 3)  # fine at inference


def test_wrong_channels_and_rank():
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match="expected 3 channels .* got 4"):
        bn(torch.randn(5, 4))
    with pytest.raises(ValueError, match="expected input of shape .* got 1D"):
        bn(torch.randn(5))


def test_integer_dtype():
    with pytest.raises(TypeError, match="floating-point .* got dtype torch.int64"):
        BatchNorm(3)(torch.ones(4, 3, dtype=torch.long))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="momentum must be"):
        BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="impl must be one of"):
        BatchNorm(3, impl="cuda")
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        BatchNorm(0)


def test_constant_channel_layer_gives_beta():
    bn = BatchNorm(2)
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([0.3, -1.0]))
    x = torch.randn(6, 2)
    x[:, 0] = 4.0
    y = bn(x)
    assert torch.isfinite(y).all() and torch.allclose(y[:, 0], torch.full((6,), 0.3))
    y.sum().backward()
    assert torch.isfinite(bn.weight.grad).all()


@pytest.mark.parametrize("shape", [(12, 5), (6, 3, 4)])
def test_ghost_batch_norm_is_bn_per_part(shape):
    """k ghost batches = k BatchNorms, each over its own N/k examples (float64): outputs, gradients
    of the input and of the shared gamma / beta, and running statistics from the first part."""
    from bnpaper.layers import GhostBatchNorm

    k, D = 3, torch.float64
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, dtype=D, generator=g) * 2 + 1
    dy = torch.randn(shape, dtype=D, generator=g)
    ghost = GhostBatchNorm(shape[1], ghost_batches=k, dtype=D, momentum=0.3)
    with torch.no_grad():
        ghost.weight.uniform_(0.5, 1.5, generator=g)
        ghost.bias.normal_(generator=g)
    refs = [BatchNorm(shape[1], dtype=D, momentum=0.3) for _ in range(k)]
    for r in refs:
        r.load_state_dict(ghost.state_dict())
    xg = x.clone().requires_grad_()
    ghost(xg).backward(dy)
    xr = x.clone().requires_grad_()
    y = torch.cat([r(part) for r, part in zip(refs, xr.chunk(k))])
    y.backward(dy)
    tol = {"rtol": 0, "atol": 1e-12}
    torch.testing.assert_close(xg.grad, xr.grad, **tol)
    torch.testing.assert_close(ghost.weight.grad, sum(r.weight.grad for r in refs), **tol)
    torch.testing.assert_close(ghost.bias.grad, sum(r.bias.grad for r in refs), **tol)
    torch.testing.assert_close(ghost.running_mean, refs[0].running_mean, **tol)
    torch.testing.assert_close(ghost.running_var, refs[0].running_var, **tol)
    assert not torch.allclose(refs[0].running_mean, refs[1].running_mean)  # the parts do differ
    ghost.eval()
    refs[0].eval()
    torch.testing.assert_close(ghost(x), refs[0](x), **tol)  # inference: Algorithm 2, no parts
    gc = GhostBatchNorm(shape[1], ghost_batches=k, dtype=D)
    assert torch.autograd.gradcheck(gc, (x.clone().requires_grad_(),))


def test_ghost_batch_norm_errors():
    from bnpaper.layers import GhostBatchNorm

    with pytest.raises(ValueError, match="ghost_batches must be a positive int"):
        GhostBatchNorm(4, ghost_batches=0)
    with pytest.raises(ValueError, match="10 % 4 = 2"):
        GhostBatchNorm(3, ghost_batches=4)(torch.randn(10, 3))
    assert "ghost_batches=2" in repr(GhostBatchNorm(3, ghost_batches=2))
