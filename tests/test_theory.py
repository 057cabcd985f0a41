"""Sec. 3.3 scale identities and the closed-form BN Jacobian, float64."""

import pytest
import torch

from bnpaper import functional as F
from bnpaper.theory import bn_jacobian, bn_jacobian_singular_values, scale_identity_gaps, scale_output_bound


def data(seed=0, m=32, c_in=10, c_out=6):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(c_out, c_in, generator=g, dtype=torch.float64) * 0.3
    u = torch.randn(m, c_in, generator=g, dtype=torch.float64)
    return W, u


@pytest.mark.parametrize("a", [0.01, 0.5, 3.0, 100.0])
def test_scale_identities_exact_without_eps(a):
    W, u = data()
    gaps = scale_identity_gaps(W, u, a, eps=0.0)
    assert gaps["output"] < 1e-10
    assert gaps["grad_u"] < 1e-10
    assert gaps["grad_W"] < 1e-10 * max(1.0, 1 / a)


@pytest.mark.parametrize("a", [0.01, 0.5, 3.0, 100.0])
def test_scale_identities_with_eps_within_bound(a):
    W, u = data(1)
    eps = 1e-3
    gaps = scale_identity_gaps(W, u, a, eps=eps)
    bound = scale_output_bound(W, u, a, eps)
    assert gaps["output"] <= bound + 1e-12
    assert gaps["output"] > 1e-8  # eps really breaks exactness: the bound is not vacuous


def test_scale_identity_would_fail_without_bn():
    """Sanity: the identity is a property of BN: without BN, scaling W scales the output."""
    W, u = data(2)
    assert ((u @ (3 * W).T) - (u @ W.T)).abs().max().item() > 0.1


def test_closed_form_jacobian_matches_autograd():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64) * 2 + 1
    gamma = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    beta = torch.zeros(3, dtype=torch.float64)
    J = bn_jacobian(x, gamma, 1e-5)
    J_auto = torch.autograd.functional.jacobian(lambda t: F.forward_reference(t, gamma, beta, 1e-5)[0], x)
    assert J.shape == (7, 3, 7, 3)
    assert (J - J_auto).abs().max().item() < 1e-12


def test_jacobian_singular_values_structure():
    """Each channel's block is gamma/sigma times a rank m-2 projection (mean and x_hat removed)."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(16, 2, generator=g, dtype=torch.float64) * 4
    gamma = torch.tensor([1.0, 2.0], dtype=torch.float64)
    sv = bn_jacobian_singular_values(x, gamma, 0.0)  # (C, m)
    sigma = x.std(0, unbiased=False)
    for c in range(2):
        assert torch.allclose(sv[c, :-2], (gamma[c] / sigma[c]).expand(14), atol=1e-10)
        assert sv[c, -2:].abs().max().item() < 1e-10
    with pytest.raises(ValueError, match="expects \\(m, C\\) input"):
        bn_jacobian(torch.randn(2, 3, 4), gamma)
