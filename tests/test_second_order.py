"""Second order through bnpaper's BN: gradgradcheck and Hessian-vector products, float64.

The reference for the Hessian-vector products is autograd of the plain forward (Alg. 1 written
as ordinary tensor operations, `functional.forward_reference`), which never sees our backward.
"""

import pytest
import torch
from torch import nn

from bnpaper import functional as F
from bnpaper.autograd import batch_norm_train
from bnpaper.layers import BatchNorm

SHAPES = {"fc": (7, 3), "conv": (3, 2, 3, 3)}


@pytest.mark.parametrize("impl", ["fast", "reference", "traced"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("affine", [True, False])
def test_gradgradcheck(impl, shape, affine):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 1).requires_grad_()
    C = shape[1]
    params = ()
    if affine:
        gamma = (torch.rand(C, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
        beta = torch.randn(C, generator=g, dtype=torch.float64).requires_grad_()
        params = (gamma, beta)

    def fn(x, *p):
        gamma, beta = p if p else (None, None)
        return batch_norm_train(x, gamma, beta, 1e-3, impl)[0]

    assert torch.autograd.gradcheck(fn, (x, *params))
    assert torch.autograd.gradgradcheck(fn, (x, *params))


def _net(bn, conv: bool) -> nn.Sequential:
    torch.manual_seed(3)
    if conv:
        layers = [nn.Conv2d(2, 3, 3, bias=False), bn(3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)]
    else:
        layers = [nn.Linear(5, 6, bias=False), bn(6), nn.Tanh(), nn.Linear(6, 4, bias=False), bn(4)]
    return nn.Sequential(*layers).double()


class PlainBN(BatchNorm):
    """The same layer with autograd's own derivative of Alg. 1 (no custom backward): the reference."""

    def forward(self, x):
        return F.forward_reference(x, self.weight, self.bias, self.eps)[0]


def _hvp(model: nn.Module, x: torch.Tensor, target: torch.Tensor, v: list[torch.Tensor], wrt_input: bool):
    params = list(model.parameters())
    inputs = [x] if wrt_input else params
    loss = nn.functional.cross_entropy(model(x), target)
    grads = torch.autograd.grad(loss, inputs, create_graph=True)
    dot = sum((gr * vi).sum() for gr, vi in zip(grads, v))
    return torch.autograd.grad(dot, inputs)


@pytest.mark.parametrize("impl", ["fast", "reference", "traced"])
@pytest.mark.parametrize("conv", [False, True], ids=["fc", "conv"])
@pytest.mark.parametrize("wrt_input", [False, True], ids=["params", "input"])
def test_hessian_vector_products_match_plain_autograd(impl, conv, wrt_input):
    ours = _net(lambda c: BatchNorm(c, impl=impl), conv)
    ref = _net(PlainBN, conv)
    ref.load_state_dict(ours.state_dict())
    with torch.no_grad():  # non-trivial gamma and beta
        for a, b in zip(ours.parameters(), ref.parameters()):
            a.add_(torch.randn_like(a) * 0.3)
            b.copy_(a)
    g = torch.Generator().manual_seed(5)
    x = torch.randn((6, 2, 6, 6) if conv else (8, 5), generator=g, dtype=torch.float64).requires_grad_()
    target = torch.randint(0, 4, (x.shape[0],), generator=g)
    shapes = [x.shape] if wrt_input else [p.shape for p in ours.parameters()]
    v = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    h_ours = _hvp(ours, x, target, v, wrt_input)
    h_ref = _hvp(ref, x, target, v, wrt_input)
    scale = max(h.abs().max().item() for h in h_ref)
    assert scale > 1e-3  # the product is not trivially zero
    for a, b in zip(h_ours, h_ref):
        assert (a - b).abs().max().item() <= 1e-10


def test_double_backward_of_statistics_matters():
    """Treating mu_B and sigma2_B as constants in the double backward gives a different answer:
    the test above can fail for the right reason."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64).requires_grad_()
    dy = torch.randn(6, 3, generator=g, dtype=torch.float64)
    gamma, beta = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    (dx,) = torch.autograd.grad((batch_norm_train(x, gamma, beta)[0] * dy).sum(), x, create_graph=True)
    (full,) = torch.autograd.grad(dx.square().sum(), x)
    mu, var = F.batch_statistics(x.detach())
    x_hat = (x - mu) / torch.sqrt(var + F.DEFAULT_EPS)  # statistics frozen: only x's direct path
    frozen_dx = F.backward_collapsed(dy, gamma, x_hat, var, F.DEFAULT_EPS)
    (frozen,) = torch.autograd.grad(frozen_dx.square().sum(), x)
    assert (full - frozen).abs().max().item() > 1e-3
