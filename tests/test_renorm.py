"""Batch Renormalization (Ioffe 2017): the hand-derived backward against autograd on the same
forward in float64, the reduction to BN at rmax = 1, dmax = 0, the clips on both sides of their
bounds, gradcheck, and many runs at once under vmap."""

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from bnpaper import functional as F
from bnpaper.autograd import BatchRenormFunction
from bnpaper.layers import BatchNorm, BatchRenorm

D = torch.float64


def reference(x, gamma, beta, mean, std, rmax, dmax, eps=1e-5):
    """Ioffe 2017, Alg. 1 in plain torch, r and d detached (autograd derives the gradient)."""
    dims = F.reduce_dims(x)
    mu = x.mean(dims)
    sigma = (x.var(dims, unbiased=False) + eps).sqrt()
    r = (sigma / std).clamp(1 / rmax, rmax).detach()
    d = ((mu - mean) / std).clamp(-dmax, dmax).detach()
    x_hat = (x - F.per_channel(mu, x)) / F.per_channel(sigma, x) * F.per_channel(r, x) + F.per_channel(d, x)
    return F.per_channel(gamma, x) * x_hat + F.per_channel(beta, x)


def _inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    C = shape[1]
    x = torch.randn(shape, dtype=D, generator=g) * 2 + 0.5
    gamma = torch.rand(C, dtype=D, generator=g) + 0.5
    beta = torch.randn(C, dtype=D, generator=g)
    mean = torch.randn(C, dtype=D, generator=g)  # moving averages away from the batch's
    std = torch.rand(C, dtype=D, generator=g) * 3 + 0.2
    dy = torch.randn(shape, dtype=D, generator=g)
    return x, gamma, beta, mean, std, dy


@pytest.mark.parametrize("shape", [(16, 5), (6, 3, 4, 4)])
@pytest.mark.parametrize("rmax,dmax", [(3.0, 5.0), (1.5, 0.5), (1.0, 0.0)])
def test_hand_derived_backward_equals_autograd(shape, rmax, dmax):
    x, gamma, beta, mean, std, dy = _inputs(shape)
    ins = [t.clone().requires_grad_() for t in (x, gamma, beta)]
    y, _, _ = BatchRenormFunction.apply(*ins, mean, std, rmax, dmax, 1e-5)
    y.backward(dy)
    ref = [t.clone().requires_grad_() for t in (x, gamma, beta)]
    y_ref = reference(*ref, mean, std, rmax, dmax)
    y_ref.backward(dy)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    for a, b in zip(ins, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-11)


def test_rmax_one_dmax_zero_is_batch_norm():
    x, gamma, beta, *_ = _inputs((12, 4))
    rn, bn = BatchRenorm(4, rmax=1.0, dmax=0.0, dtype=D), BatchNorm(4, dtype=D)
    with torch.no_grad():
        for m in (rn, bn):
            m.weight.copy_(gamma)
            m.bias.copy_(beta)
            m.running_mean.fill_(3.0)  # far from the batch: only the clips keep r = 1, d = 0
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = rn(xa), bn(xb)
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(ya, yb, rtol=0, atol=1e-12)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(rn.running_var, bn.running_var, rtol=0, atol=0)


def test_r_and_d_clip_on_both_sides_of_their_bounds():
    one = torch.ones(1, dtype=D)
    r, d = F.renorm_correction(one * 0, one * 2.9, one * 0, one, 3.0, 5.0)
    assert r.item() == pytest.approx(2.9) and d.item() == 0
    r, d = F.renorm_correction(one * 6, one * 3.1, one * 0, one, 3.0, 5.0)
    assert r.item() == 3.0 and d.item() == 5.0
    r, d = F.renorm_correction(one * -4.9, one / 3.1, one * 0, one, 3.0, 5.0)
    assert r.item() == pytest.approx(1 / 3) and d.item() == pytest.approx(-4.9)
    r, d = F.renorm_correction(one * -5.1, one / 2.9, one * 0, one, 3.0, 5.0)
    assert r.item() == pytest.approx(1 / 2.9) and d.item() == -5.0


def test_gradcheck_where_the_clips_bind():
    """r and d are functions of the batch that the gradient treats as constants (stop-gradient), so
    finite differences agree with the derived backward only where both clips bind (there r and d
    are locally constant). Moving averages far from the batch make them bind."""
    x, gamma, beta, *_ = _inputs((8, 3))
    mean, std = torch.full((3,), 1000.0, dtype=D), torch.full((3,), 1000.0, dtype=D)  # r = 1/2, d = -1/2
    ins = tuple(t.requires_grad_() for t in (x, gamma, beta))
    assert torch.autograd.gradcheck(
        lambda a, b, c: BatchRenormFunction.apply(a, b, c, mean, std, 2.0, 0.5, 1e-5)[0], ins
    )


def test_layer_trains_many_runs_at_once_under_vmap():
    """Stacked parameters and running statistics of 3 layers: vmap(functional_call) = each alone."""
    layers = [BatchRenorm(4, dtype=D) for _ in range(3)]
    for i, m in enumerate(layers):
        with torch.no_grad():
            m.running_mean.fill_(0.3 * i)
            m.weight.mul_(1 + i)
    params, buffers = stack_module_state(layers)
    x = torch.randn(3, 10, 4, dtype=D)

    def one(p, b, xi):
        return functional_call(layers[0], (p, b), (xi,))

    y = vmap(one)(params, buffers, x)
    for i, m in enumerate(layers):
        torch.testing.assert_close(y[i], m(x[i]), rtol=0, atol=1e-12)
        torch.testing.assert_close(buffers["running_mean"][i], m.running_mean, rtol=0, atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="rmax >= 1"):
        BatchRenorm(3, rmax=0.5)
    with pytest.raises(ValueError, match="track_running_stats"):
        BatchRenorm(3, track_running_stats=False)
    m = BatchRenorm(3).eval()
    x = torch.randn(4, 3)
    torch.testing.assert_close(m(x), BatchNorm(3).eval()(x))  # inference: Algorithm 2
