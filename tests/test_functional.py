"""Algorithm 1 and its backward pass against independent references (torch's own BN, autograd), float64."""

import pytest
import torch
import torch.nn.functional as TF

from bnpaper import functional as F
from bnpaper.autograd import BatchNormFast, BatchNormReference, batch_norm_train

SHAPES = [(60, 100), (16, 5, 7), (8, 3, 5, 6), (4, 2, 3, 3, 3)]  # FC, 1D, 2D and 3D conv


def make(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 2.5 + 3.0  # off-centre, not unit scale
    C = shape[1]
    gamma = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    beta = torch.randn(C, generator=g, dtype=torch.float64)
    dy = torch.randn(shape, generator=g, dtype=torch.float64)
    return x, gamma, beta, dy


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_forward_matches_torch(shape, impl):
    x, gamma, beta, _ = make(shape)
    y, mu, var = batch_norm_train(x, gamma, beta, eps=1e-5, impl=impl)
    expected = TF.batch_norm(x, None, None, gamma, beta, training=True, momentum=0.0, eps=1e-5)
    assert (y - expected).abs().max().item() <= 1e-12
    dims = F.reduce_dims(x)
    assert torch.allclose(mu, x.mean(dims), atol=1e-12, rtol=0)
    assert torch.allclose(var, x.var(dims, unbiased=False), atol=1e-12, rtol=0)  # biased in training


@pytest.mark.parametrize("shape", SHAPES)
def test_effective_batch_is_m_times_spatial(shape):
    x, *_ = make(shape)
    m_prime = shape[0]
    for s in shape[2:]:
        m_prime *= s
    assert F.values_per_channel(x) == m_prime
    # statistics of channel 1 are those of all its values pooled (Sec. 3.2)
    mu, var = F.batch_statistics(x)
    pooled = x[:, 1].reshape(-1)
    assert pooled.numel() == m_prime
    assert abs(mu[1].item() - pooled.mean().item()) < 1e-12
    assert abs(var[1].item() - pooled.var(unbiased=False).item()) < 1e-12


@pytest.mark.parametrize("shape", SHAPES)
def test_eval_output_matches_torch(shape):
    x, gamma, beta, _ = make(shape)
    C = shape[1]
    rm, rv = torch.randn(C, dtype=torch.float64), torch.rand(C, dtype=torch.float64) + 0.1
    y = F.inference_affine(x, rm, rv, gamma, beta, 1e-5)
    expected = TF.batch_norm(x, rm, rv, gamma, beta, training=False, eps=1e-5)
    assert (y - expected).abs().max().item() <= 1e-12


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_three_ways_agree(shape):
    """Hand backward (six steps), collapsed form, fast path, autograd of the forward and torch's backward."""
    x, gamma, beta, dy = make(shape)
    # autograd through Alg. 1 written with plain differentiable ops (independent of our backward)
    xa, ga, ba = (t.clone().requires_grad_() for t in (x, gamma, beta))
    y_auto, _ = F.forward_reference(xa, ga, ba, 1e-5)
    dx_auto, dg_auto, db_auto = torch.autograd.grad(y_auto, (xa, ga, ba), dy)
    # torch's native backward
    xt, gt, bt = (t.clone().requires_grad_() for t in (x, gamma, beta))
    yt = TF.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    dx_torch, dg_torch, db_torch = torch.autograd.grad(yt, (xt, gt, bt), dy)

    y, cache = F.forward_reference(x, gamma, beta, 1e-5)
    steps = F.backward_steps(dy, gamma, cache)
    collapsed = F.backward_collapsed(dy, gamma, cache.x_hat, cache.sigma2_B, 1e-5)
    *_, inv_std, x_hat = F.fast_forward(x, gamma, beta, 1e-5)
    dx_fast, dg_fast, db_fast = F.fast_backward(dy, x_hat, gamma, inv_std)

    for dx in (steps["dl_dx"], collapsed, dx_fast, dx_torch):
        assert (dx - dx_auto).abs().max().item() < 1e-12
    for dg in (steps["dl_dgamma"], dg_fast, dg_torch):
        assert (dg - dg_auto).abs().max().item() < 1e-10
    for db in (steps["dl_dbeta"], db_fast, db_torch):
        assert (db - db_auto).abs().max().item() < 1e-10


def test_backward_steps_are_the_papers_intermediates():
    """Each named step equals autograd's gradient w.r.t. that intermediate."""
    x, gamma, beta, dy = make((12, 4))
    eps = 1e-5
    mu = x.mean(0).requires_grad_()
    var = x.var(0, unbiased=False).requires_grad_()
    x_hat = (x - mu) / torch.sqrt(var + eps)
    x_hat.retain_grad()
    y = gamma * x_hat + beta
    # treat mu and var as leaves: their "direct" gradients, then add the chain through var(mu)
    (y * dy).sum().backward()
    _, cache = F.forward_reference(x, gamma, beta, eps)
    steps = F.backward_steps(dy, gamma, cache)
    assert torch.allclose(steps["dl_dx_hat"], x_hat.grad, atol=1e-12, rtol=0)
    assert torch.allclose(steps["dl_dsigma2_B"], var.grad, atol=1e-10, rtol=0)
    # the paper's dl/dmu_B is the direct term plus dl/dsigma2_B * dsigma2_B/dmu_B (which is 0 at mu_B)
    assert torch.allclose(steps["dl_dmu_B"], mu.grad, atol=1e-10, rtol=0)


@pytest.mark.parametrize("fn", [BatchNormReference, BatchNormFast])
@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 2, 3)])
def test_gradcheck(fn, shape):
    x, gamma, beta, _ = make(shape)
    inputs = tuple(t.clone().requires_grad_() for t in (x, gamma, beta))
    assert torch.autograd.gradcheck(lambda a, b, c: fn.apply(a, b, c, 1e-5)[0], inputs)


def test_fast_path_equals_reference_in_float32():
    x, gamma, beta, dy = (t.float() for t in make((64, 16, 8, 8)))
    outs = {}
    for impl in ("reference", "fast"):
        xi, gi, bi = (t.clone().requires_grad_() for t in (x, gamma, beta))
        y, _, _ = batch_norm_train(xi, gi, bi, impl=impl)
        y.backward(dy)
        outs[impl] = (y, xi.grad, gi.grad, bi.grad)
    for a, b in zip(outs["reference"], outs["fast"]):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_fast_path_is_stable_with_large_mean():
    """A two-pass variance and a centred x_hat: no cancellation at |mean| >> std in float32."""
    x, gamma, beta, dy = make((128, 8))
    x = x + 1e4  # mean 1e4, std 2.5
    y64, _, _ = batch_norm_train(x, gamma, beta, impl="fast")
    y32, _, _ = batch_norm_train(x.float(), gamma.float(), beta.float(), impl="fast")
    assert (y32.double() - y64).abs().max().item() < 1e-3


def test_affine_false_and_constant_channel():
    x = torch.randn(10, 3, dtype=torch.float64)
    x[:, 1] = 7.0  # a constant channel: variance 0, x_hat = 0 / sqrt(eps) = 0
    beta = torch.tensor([0.0, 2.5, 0.0], dtype=torch.float64)
    y, _, var = batch_norm_train(x, torch.ones(3, dtype=torch.float64), beta)
    assert torch.isfinite(y).all()
    assert torch.allclose(y[:, 1], torch.full((10,), 2.5, dtype=torch.float64))
    y2, _, _ = batch_norm_train(x, None, None)
    assert torch.allclose(y2[:, 1], torch.zeros(10, dtype=torch.float64))


def test_population_statistics_needs_matching_shapes():
    with pytest.raises(ValueError, match="same shape"):
        F.population_statistics(torch.zeros(3, 2), torch.zeros(3, 4), 5)
    with pytest.raises(ValueError, match="m >= 2"):
        F.population_statistics(torch.zeros(3, 2), torch.zeros(3, 2), 1)
