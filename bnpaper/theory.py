"""Theory helpers for Sec. 3.3 (the source text's 4.1): scale invariance and the BN Jacobian.

* `scale_identity_gaps`: for x = W u followed by BN, compare the three identities
    BN(W u) = BN((aW) u),   dBN((aW)u)/du = dBN(Wu)/du,   dBN((aW)u)/d(aW) = (1/a) dBN(Wu)/dW,
  which are exact for eps = 0 and hold up to eps-sized terms for eps > 0.
* `bn_jacobian`: the closed-form Jacobian of the training-mode BN transform of an (m, C) batch,
  dy_i/dx_j = gamma / (m sqrt(sigma2_B + eps)) (m delta_ij - 1 - x_hat_i x_hat_j) per channel.
"""

from __future__ import annotations

import torch

from bnpaper import functional as F


def _bn(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Alg. 1 with gamma = 1, beta = 0 (the identities do not involve gamma, beta)."""
    ones = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    y, _ = F.forward_reference(x, ones, torch.zeros_like(ones), eps)
    return y


def scale_identity_gaps(
    W: torch.Tensor, u: torch.Tensor, a: float, eps: float, r: torch.Tensor | None = None
) -> dict[str, float]:
    """Max abs deviations from the three scale identities of Sec. 3.3.

    W: (C_out, C_in) weights, u: (m, C_in) layer inputs, a: the scalar, r: (m, C_out) weights of
    the scalar loss l = sum(r * BN(W u)) whose gradients are compared (random if None).
    Returns {"output", "grad_u", "grad_W"}: max |BN((aW)u) - BN(Wu)|,
    max |dl/du at aW - dl/du at W|, max |dl/d(aW) - (1/a) dl/dW|.
    """
    if r is None:
        r = torch.randn(u.shape[0], W.shape[0], dtype=W.dtype, generator=torch.Generator().manual_seed(0))

    def grads(Wx: torch.Tensor):
        Wx = Wx.detach().requires_grad_()
        ux = u.detach().clone().requires_grad_()
        y = _bn(ux @ Wx.T, eps)  # (m, C_in) @ (C_in, C_out) -> (m, C_out)
        (y * r).sum().backward()
        return y.detach(), ux.grad, Wx.grad

    y1, du1, dW1 = grads(W)
    ya, dua, dWa = grads(a * W)
    return {
        "output": (ya - y1).abs().max().item(),
        "grad_u": (dua - du1).abs().max().item(),
        "grad_W": (dWa - dW1 / a).abs().max().item(),
    }


def scale_output_bound(W: torch.Tensor, u: torch.Tensor, a: float, eps: float) -> float:
    """Upper bound on max |BN((aW)u) - BN(Wu)| for eps > 0.

    BN((aW)u) normalizes by sqrt(sigma2 + eps/a^2) where BN(Wu) uses sqrt(sigma2 + eps), so
    |difference| = |x_hat| |sqrt((s + eps) / (s + eps/a^2)) - 1|
                <= |x_hat| |eps - eps/a^2| / (2 (s + min eps)).
    """
    x = u @ W.T  # (m, C_out)
    _, sigma2_B = F.batch_statistics(x)
    x_hat_max = (x - x.mean(0)).abs().max(0).values / torch.sqrt(sigma2_B + min(eps, eps / a**2))
    bound = x_hat_max * abs(eps - eps / a**2) / (2 * (sigma2_B + min(eps, eps / a**2)))
    return bound.max().item()


def bn_jacobian(x: torch.Tensor, gamma: torch.Tensor, eps: float = F.DEFAULT_EPS) -> torch.Tensor:
    """Closed-form Jacobian of training-mode BN for x: (m, C). Returns J: (m, C, m, C).

    Channels do not interact, so J[:, c, :, d] = 0 for c != d, and per channel
    J_c[i, j] = gamma_c / (m sqrt(sigma2_c + eps)) (m delta_ij - 1 - x_hat_ic x_hat_jc).
    """
    if x.dim() != 2:
        raise ValueError(f"bn_jacobian expects (m, C) input, got {x.dim()}D input of shape {tuple(x.shape)}")
    m, C = x.shape
    mu_B, sigma2_B = F.batch_statistics(x)  # (C,), (C,)
    inv_std = torch.rsqrt(sigma2_B + eps)  # (C,)
    x_hat = (x - mu_B) * inv_std  # (m, C)
    eye = torch.eye(m, dtype=x.dtype, device=x.device)
    blocks = m * eye[None] - 1 - x_hat.T[:, :, None] * x_hat.T[:, None, :]  # (C, m, m)
    blocks = blocks * (gamma * inv_std / m)[:, None, None]
    J = torch.zeros(m, C, m, C, dtype=x.dtype, device=x.device)
    for c in range(C):
        J[:, c, :, c] = blocks[c]
    return J


def bn_jacobian_singular_values(
    x: torch.Tensor, gamma: torch.Tensor, eps: float = F.DEFAULT_EPS
) -> torch.Tensor:
    """Singular values of each channel's (m, m) Jacobian block: (C, m), descending.

    Each block is gamma / sqrt(sigma2 + eps) times (nearly) a projection removing the mean and the
    x_hat direction: m - 2 singular values gamma / sqrt(sigma2 + eps), one 0, one ~eps-sized.
    """
    m, C = x.shape
    J = bn_jacobian(x, gamma, eps)
    blocks = torch.stack([J[:, c, :, c] for c in range(C)])  # (C, m, m)
    return torch.linalg.svdvals(blocks)
