"""Autograd Functions whose backward is the hand-derived gradient of Sec. 3.1, not autograd's.

Both Functions return (y, mu_B, sigma2_B); the statistics are marked non-differentiable and
feed the layer's running averages.

* `BatchNormReference`: forward is Algorithm 1 line by line, backward the paper's six steps.
* `BatchNormFast`: in-place forward, backward as dl/dx = k1 dy + k2 x_hat + k3; saves only
  x_hat and per-channel vectors. The layer uses this one by default.
"""

from __future__ import annotations

import torch

from bnpaper import functional as F


class BatchNormReference(torch.autograd.Function):
    """Algorithm 1 and the six backward equations of Sec. 3.1, readable first."""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):  # x: (N, C, *S); gamma, beta: (C,)
        y, cache = F.forward_reference(x, gamma, beta, eps)
        ctx.save_for_backward(x, gamma, cache.mu_B, cache.sigma2_B, cache.x_hat)
        ctx.eps = eps
        ctx.mark_non_differentiable(cache.mu_B, cache.sigma2_B)
        return y, cache.mu_B, cache.sigma2_B

    @staticmethod
    def backward(ctx, dy, _dmu, _dsigma2):
        x, gamma, mu_B, sigma2_B, x_hat = ctx.saved_tensors
        cache = F.ForwardCache(x=x, mu_B=mu_B, sigma2_B=sigma2_B, x_hat=x_hat, eps=ctx.eps)
        g = F.backward_steps(dy, gamma, cache)
        return g["dl_dx"], g["dl_dgamma"], g["dl_dbeta"], None


class BatchNormFast(torch.autograd.Function):
    """The same gradient, arranged for speed and memory (see `functional.fast_backward`)."""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):  # x: (N, C, *S); gamma, beta: (C,)
        y, mu_B, sigma2_B, inv_std, x_hat = F.fast_forward(x, gamma, beta, eps)
        ctx.save_for_backward(x_hat, gamma, inv_std)  # one input-sized tensor + (C,) vectors
        ctx.mark_non_differentiable(mu_B, sigma2_B)
        return y, mu_B, sigma2_B

    @staticmethod
    def backward(ctx, dy, _dmu, _dsigma2):
        x_hat, gamma, inv_std = ctx.saved_tensors
        dl_dx, dl_dgamma, dl_dbeta = F.fast_backward(dy, x_hat, gamma, inv_std)
        return dl_dx, dl_dgamma, dl_dbeta, None


IMPLEMENTATIONS = {"fast": BatchNormFast, "reference": BatchNormReference}


def batch_norm_train(
    x: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    eps: float = F.DEFAULT_EPS,
    impl: str = "fast",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode BN with the hand-derived backward. Returns (y, mu_B, sigma2_B).

    gamma / beta may be None (affine=False): then gamma = 1, beta = 0 as constants.
    """
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {sorted(IMPLEMENTATIONS)}, got {impl!r}")
    F.check_input(x, gamma.shape[0] if gamma is not None else None, training=True)
    C = x.shape[1]
    if gamma is None:
        gamma = torch.ones(C, dtype=x.dtype, device=x.device)
    if beta is None:
        beta = torch.zeros(C, dtype=x.dtype, device=x.device)
    return IMPLEMENTATIONS[impl].apply(x, gamma, beta, eps)
