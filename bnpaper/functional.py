"""The batch-normalizing transform as pure functions (Ioffe & Szegedy 2015, Sec. 3 and 3.1).

Everything here is stateless: tensors in, tensors out. The layer in `bnpaper.layers` and the
autograd Functions in `bnpaper.autograd` only call these.

One code path serves fully-connected input (N, C) and convolutional input (N, C, *spatial):
statistics are taken per feature map (channel) over the mini-batch *and* every spatial
location, so a mini-batch of m images with p x q maps gives m' = m * p * q values per
channel (Sec. 3.2). For (N, C) input, m' = m.

Two backward passes are given:

* `backward_steps` follows the paper's six equations one by one (Sec. 3.1) and returns every
  intermediate, so each step can be checked on its own.
* `backward_collapsed` is the same gradient collapsed into one expression:
  dl/dx = gamma / (m sqrt(sigma2_B + eps)) * (m dy - sum dy - x_hat * sum(dy * x_hat)).

`fast_forward` / `fast_backward` are the same math arranged for speed: x_hat normalized in
place, the backward as one per-channel linear combination of dy and x_hat, and only x_hat plus
per-channel vectors saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_EPS = 1e-5  # the value torch.nn.BatchNorm uses; the paper leaves eps unspecified


# ----------------------------------------------------------------------------- input checks


def check_input(x: torch.Tensor, num_features: int | None = None, *, training: bool = True) -> None:
    """Raise a clear error for input BN cannot normalize.

    TypeError for a non-floating dtype; ValueError for rank < 2, a wrong channel count, or (in
    training) a single value per channel, where the batch variance is undefined.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"batch norm expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"batch norm expects a floating-point tensor (float32 or float64), got dtype {x.dtype}; "
            "convert with x.float() or x.double()"
        )
    if x.dim() < 2:
        raise ValueError(
            f"expected input of shape (N, C) or (N, C, *spatial) (2D or more), got {x.dim()}D input "
            f"of shape {tuple(x.shape)}"
        )
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(
            f"expected {num_features} channels (dimension 1 of the input), got {x.shape[1]} "
            f"in input of shape {tuple(x.shape)}"
        )
    if training and values_per_channel(x) == 1:
        raise ValueError(
            f"BN needs more than one value per channel when training, got input of shape "
            f"{tuple(x.shape)} (1 value per channel): the batch variance is undefined. "
            "Use a mini-batch of at least 2 examples, or call .eval() to use population statistics."
        )


def reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions BN reduces over: batch and every spatial dimension (Sec. 3.2)."""
    return (0,) + tuple(range(2, x.dim()))


def values_per_channel(x: torch.Tensor) -> int:
    """m' = m * p * q: how many values each channel's statistics are taken over (Sec. 3.2)."""
    return x.numel() // x.shape[1] if x.shape[1] else 0


def per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a per-channel vector (C,) so it broadcasts against x: (C,) -> (1, C, 1, ..., 1)."""
    return v.view((1, -1) + (1,) * (x.dim() - 2))


# ----------------------------------------------------------------------------- Algorithm 1


def batch_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mini-batch mean and *biased* variance per channel (Alg. 1, lines 1-2).

    Two passes (mean first, then squared deviations), not E[x^2] - E[x]^2, which cancels
    catastrophically when |mean| >> std.
    """
    dims = reduce_dims(x)
    mu_B = x.mean(dims)  # (N, C, *S) -> (C,)
    sigma2_B = (x - per_channel(mu_B, x)).square().mean(dims)  # (N, C, *S) -> (C,)
    return mu_B, sigma2_B


@dataclass
class ForwardCache:
    """What the step-by-step backward needs from the forward pass."""

    x: torch.Tensor  # (N, C, *S) the input
    mu_B: torch.Tensor  # (C,)
    sigma2_B: torch.Tensor  # (C,) biased
    x_hat: torch.Tensor  # (N, C, *S)
    eps: float


def forward_reference(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = DEFAULT_EPS
) -> tuple[torch.Tensor, ForwardCache]:
    """Algorithm 1, line by line. Returns y and the cache for `backward_steps`."""
    mu_B, sigma2_B = batch_statistics(x)  # Alg. 1, lines 1-2: (C,), (C,)
    x_hat = (x - per_channel(mu_B, x)) / per_channel(torch.sqrt(sigma2_B + eps), x)  # line 3
    y = per_channel(gamma, x) * x_hat + per_channel(beta, x)  # line 4: scale and shift
    return y, ForwardCache(x=x, mu_B=mu_B, sigma2_B=sigma2_B, x_hat=x_hat, eps=eps)


# ----------------------------------------------------------------------------- backward, Sec. 3.1


def backward_steps(dy: torch.Tensor, gamma: torch.Tensor, cache: ForwardCache) -> dict[str, torch.Tensor]:
    """The paper's six backward equations (Sec. 3.1), each as a named step.

    Returns a dict with keys dl_dx_hat, dl_dsigma2_B, dl_dmu_B, dl_dx, dl_dgamma, dl_dbeta.
    """
    x, mu_B, sigma2_B, x_hat, eps = cache.x, cache.mu_B, cache.sigma2_B, cache.x_hat, cache.eps
    dims = reduce_dims(x)
    m = values_per_channel(x)
    xc = x - per_channel(mu_B, x)  # (N, C, *S): x_i - mu_B
    var_eps = per_channel(sigma2_B + eps, x)  # (1, C, 1..)

    dl_dx_hat = dy * per_channel(gamma, x)  # eq. 1: (N, C, *S)
    dl_dsigma2_B = (dl_dx_hat * xc * -0.5 * var_eps.pow(-1.5)).sum(dims)  # eq. 2: -> (C,)
    dl_dmu_B = (dl_dx_hat * -var_eps.rsqrt()).sum(dims) + dl_dsigma2_B * (-2.0 * xc).sum(dims) / m  # eq. 3
    dl_dx = (  # eq. 4
        dl_dx_hat * var_eps.rsqrt()
        + per_channel(dl_dsigma2_B, x) * 2.0 * xc / m
        + per_channel(dl_dmu_B, x) / m
    )
    dl_dgamma = (dy * x_hat).sum(dims)  # eq. 5: (C,)
    dl_dbeta = dy.sum(dims)  # eq. 6: (C,)
    return {
        "dl_dx_hat": dl_dx_hat,
        "dl_dsigma2_B": dl_dsigma2_B,
        "dl_dmu_B": dl_dmu_B,
        "dl_dx": dl_dx,
        "dl_dgamma": dl_dgamma,
        "dl_dbeta": dl_dbeta,
    }


def backward_collapsed(
    dy: torch.Tensor, gamma: torch.Tensor, x_hat: torch.Tensor, sigma2_B: torch.Tensor, eps: float
) -> torch.Tensor:
    """dl/dx in one expression: gamma / (m sqrt(sigma2_B+eps)) * (m dy - sum dy - x_hat sum(dy x_hat))."""
    dims = reduce_dims(dy)
    m = values_per_channel(dy)
    sum_dy = per_channel(dy.sum(dims), dy)  # (C,) -> (1, C, 1..)
    sum_dy_xhat = per_channel((dy * x_hat).sum(dims), dy)  # (C,) -> (1, C, 1..)
    coef = per_channel(gamma * torch.rsqrt(sigma2_B + eps) / m, dy)
    return coef * (m * dy - sum_dy - x_hat * sum_dy_xhat)


# ----------------------------------------------------------------------------- fast path


def fast_forward(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = DEFAULT_EPS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 1 arranged for speed: x_hat normalized in place, y written once (by addcmul).

    Returns y, mu_B, sigma2_B (biased), inv_std = 1 / sqrt(sigma2_B + eps) and x_hat.
    Normalizing (x - mu_B) rather than folding into y = x s + (beta - mu_B s) avoids
    cancellation when |mu_B| >> sqrt(sigma2_B). Only out-of-place operations and in-place ones
    on fresh buffers, so the same code runs under torch.func.vmap and torch.compile.
    """
    dims = reduce_dims(x)
    mu_B = x.mean(dims)  # Alg. 1, line 1: (N, C, *S) -> (C,)
    x_hat = x - per_channel(mu_B, x)  # (N, C, *S), normalized in place below
    sigma2_B = (x_hat * x_hat).mean(dims)  # line 2, biased: (C,)
    inv_std = (sigma2_B + eps).rsqrt()  # (C,)
    x_hat.mul_(per_channel(inv_std, x))  # line 3
    y = torch.addcmul(per_channel(beta, x), x_hat, per_channel(gamma, x))  # line 4
    return y, mu_B, sigma2_B, inv_std, x_hat


def fast_backward(
    dy: torch.Tensor, x_hat: torch.Tensor, gamma: torch.Tensor, inv_std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The collapsed gradient as dl/dx = k1 dy + k2 x_hat + k3 with per-channel k's:

      k1 = gamma inv_std,  k2 = -k1 sum(dy x_hat) / m,  k3 = -k1 sum(dy) / m.
    Returns (dl_dx, dl_dgamma, dl_dbeta). Every operation is differentiable (in-place ones act on
    fresh buffers only), so with create_graph=True autograd records it for the double backward.
    """
    dims = reduce_dims(x_hat)
    dl_dbeta = dy.sum(dims)  # eq. 6: (N, C, *S) -> (C,)
    dl_dgamma = (dy * x_hat).sum(dims)  # eq. 5: (C,)
    dl_dx = input_gradient(dy, x_hat, gamma, inv_std, dl_dbeta, dl_dgamma, values_per_channel(x_hat))
    return dl_dx, dl_dgamma, dl_dbeta


def input_gradient(
    dy: torch.Tensor,
    x_hat: torch.Tensor,
    gamma: torch.Tensor,
    inv_std: torch.Tensor,
    sum_dy: torch.Tensor,
    sum_dy_xhat: torch.Tensor,
    m: int | float | torch.Tensor,
) -> torch.Tensor:
    """dl/dx = k1 dy + k2 x_hat + k3 from the two per-channel sums of the mini-batch (Sec. 3.1):

      k1 = gamma inv_std,  k2 = -k1 sum(dy x_hat) / m,  k3 = -k1 sum(dy) / m.
    dy, x_hat: (N, C, *S); the rest (C,). The sums and m cover the whole mini-batch, which for
    synchronized BN (`bnpaper.sync`) spans every replica while dy and x_hat are this replica's.
    """
    k1 = gamma * inv_std  # (C,)
    k2 = -k1 * sum_dy_xhat / m
    k3 = -k1 * sum_dy / m
    dl_dx = torch.addcmul(per_channel(k3, x_hat), x_hat, per_channel(k2, x_hat))  # k2 x_hat + k3
    return dl_dx.addcmul_(dy, per_channel(k1, dy))  # + k1 dy


# ----------------------------------------------------------------------------- Algorithm 2


def inference_affine(
    x: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Alg. 2, line 11: y = gamma / sqrt(Var[x] + eps) * x + (beta - gamma E[x] / sqrt(Var[x] + eps))."""
    scale, shift = affine_coefficients(mean, var, gamma, beta, eps)
    return torch.addcmul(per_channel(shift, x), x, per_channel(scale, x))


def affine_coefficients(
    mean: torch.Tensor, var: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = DEFAULT_EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel (scale, shift) of the inference-time BN (Alg. 2, line 11)."""
    scale = gamma * torch.rsqrt(var + eps)  # (C,)
    return scale, beta - mean * scale  # (C,), (C,)


def population_statistics(
    batch_means: torch.Tensor, batch_vars: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Alg. 2, line 10: E[x] = E_B[mu_B], Var[x] = m / (m - 1) E_B[sigma2_B].

    batch_means, batch_vars: (k, C), one row per training mini-batch, biased variances.
    m: values per channel in each mini-batch (m' = m p q for convolutions).
    """
    if batch_means.dim() != 2 or batch_means.shape != batch_vars.shape:
        raise ValueError(
            f"expected batch_means and batch_vars of the same shape (k, C), got "
            f"{tuple(batch_means.shape)} and {tuple(batch_vars.shape)}"
        )
    if m < 2:
        raise ValueError(f"Algorithm 2 needs mini-batches of m >= 2 values per channel, got m={m}")
    return batch_means.mean(0), batch_vars.mean(0) * (m / (m - 1))


# ----------------------------------------------------------------------------- Batch Renormalization


def renorm_correction(
    mu_B: torch.Tensor, sigma_B: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, rmax: float, dmax: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch Renormalization's r and d (Ioffe 2017, Alg. 1), per channel, treated as constants:

      r = clip(sigma_B / sigma, 1/rmax, rmax),   d = clip((mu_B - mu) / sigma, -dmax, dmax),
    with mu, sigma the moving averages. r = 1, d = 0 (rmax = 1, dmax = 0) is batch normalization."""
    r = (sigma_B / std).clamp(1.0 / rmax, rmax)  # (C,)
    d = ((mu_B - mean) / std).clamp(-dmax, dmax)  # (C,)
    return r, d


def renorm_forward(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    rmax: float,
    dmax: float,
    eps: float = DEFAULT_EPS,
) -> tuple[torch.Tensor, ...]:
    """Batch Renormalization in training (Ioffe 2017, Alg. 1): the mini-batch's normalization,
    x_tilde = (x - mu_B) / sigma_B, corrected towards the moving averages, x_hat = r x_tilde + d,
    then y = gamma x_hat + beta. Returns y, mu_B, sigma2_B (biased), inv_std = 1 / sigma_B,
    x_tilde, r, d."""
    dims = reduce_dims(x)
    mu_B = x.mean(dims)  # (C,)
    x_tilde = x - per_channel(mu_B, x)
    sigma2_B = (x_tilde * x_tilde).mean(dims)
    inv_std = (sigma2_B + eps).rsqrt()  # 1 / sigma_B, sigma_B = sqrt(sigma2_B + eps)
    x_tilde = x_tilde * per_channel(inv_std, x)
    r, d = renorm_correction(mu_B, 1.0 / inv_std, mean, std, rmax, dmax)
    scale, shift = gamma * r, gamma * d + beta  # y = gamma (r x_tilde + d) + beta
    y = torch.addcmul(per_channel(shift, x), x_tilde, per_channel(scale, x))
    return y, mu_B, sigma2_B, inv_std, x_tilde, r, d


def renorm_backward(
    dy: torch.Tensor,
    x_tilde: torch.Tensor,
    gamma: torch.Tensor,
    inv_std: torch.Tensor,
    r: torch.Tensor,
    d: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of Batch Renormalization with r and d held constant (Ioffe 2017, Sec. 3):
    dl/dx_tilde = gamma r dl/dy, then BN's collapsed backward through x_tilde, so
      dl/dx = gamma r / (m sigma_B) (m dy - sum dy - x_tilde sum(dy x_tilde)),
      dl/dgamma = sum dy (r x_tilde + d),   dl/dbeta = sum dy.
    Returns (dl_dx, dl_dgamma, dl_dbeta)."""
    dims = reduce_dims(x_tilde)
    sum_dy = dy.sum(dims)  # (C,)
    sum_dy_xt = (dy * x_tilde).sum(dims)  # (C,)
    dl_dx = input_gradient(dy, x_tilde, gamma * r, inv_std, sum_dy, sum_dy_xt, values_per_channel(x_tilde))
    return dl_dx, r * sum_dy_xt + d * sum_dy, sum_dy
