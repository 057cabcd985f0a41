"""`BatchNorm`: a thin module holding gamma, beta, running statistics and `self.training`.

The math lives in `bnpaper.functional` (pure functions) and `bnpaper.autograd` (the
hand-derived backward). Argument names follow torch.nn.BatchNorm so models can swap one for
the other.
"""

from __future__ import annotations

import torch
from torch import nn

from bnpaper import functional as F
from bnpaper.autograd import (
    IMPLEMENTATIONS,
    BatchRenormFunction,
    affine_parameters,
    batch_norm_train,
    compute_dtype,
)


class BatchNorm(nn.Module):
    r"""Batch normalization (Ioffe & Szegedy 2015, Alg. 1 for training, Alg. 2 for inference).

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta

    In training the statistics are the mini-batch's, taken per channel over the batch and all
    spatial locations (Sec. 3.2), with the biased variance. In eval mode the running
    statistics are used, as one fixed affine map per channel (Alg. 2, line 11).

    Running statistics follow torch.nn.BatchNorm: ``new = (1 - momentum) old + momentum batch``
    with the *unbiased* batch variance stored in ``running_var``. With ``momentum=None`` they
    are a cumulative average over all batches seen, which for a fixed batch size equals
    Algorithm 2's estimate.

    Args:
        num_features: C, the number of channels (features) of an (N, C) or (N, C, *spatial) input.
        eps: added to the variance for numerical stability. Default: 1e-5.
        momentum: weight of the newest batch in the running averages, or None for a cumulative
            average. Default: 0.1.
        affine: learn gamma (init 1) and beta (init 0). Default: True.
        bias: with affine, also learn beta; ``bias=False`` keeps gamma only (as torch 2.13).
            Default: True.
        track_running_stats: keep running_mean / running_var; if False, eval mode also uses
            batch statistics. Default: True.
        impl: "fast" (default), "reference" (Alg. 1 and the six backward steps as written),
            "compiled" (torch.compile of the fast path, eager where no C++ compiler exists) or
            "traced" (Alg. 1 in plain operations with autograd's backward: the engine compiles it).

    Shape:
        Input (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W); output the same shape and memory
        format. N = 0 gives an empty output and leaves the running statistics as they are.
        float16 / bfloat16 input is normalized in float32 and returned in its own dtype.

    Second order: gradients of gradients (gradient penalties, Hessian-vector products) are exact
    for every impl, see `bnpaper.autograd`. The module runs under torch.compile and under
    torch.func.functional_call + vmap with stacked parameters and buffers (running statistics
    included).

    Example:
        >>> bn = BatchNorm(64)
        >>> y = bn(torch.randn(8, 64, 14, 14))
    """

    def __init__(
        self,
        num_features: int,
        eps: float = F.DEFAULT_EPS,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        impl: str = "fast",
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ):
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"impl must be one of {sorted(IMPLEMENTATIONS)}, got {impl!r}")
        kw = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats, self.impl = affine, track_running_stats, impl
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **kw))  # gamma
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = nn.Parameter(torch.zeros(num_features, **kw))  # beta
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def extra_repr(self) -> str:
        bias = "" if self.bias is not None or not self.affine else ", bias=False"
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}{bias}, "
            f"track_running_stats={self.track_running_stats}, impl={self.impl!r}"
        )

    def _check_input_dim(self, x: torch.Tensor) -> None:
        """Any rank >= 2 here; BatchNorm1d/2d/3d narrow it as torch does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, *S) -> (N, C, *S)
        self._check_input_dim(x)
        use_batch_stats = self.training or not self.track_running_stats
        F.check_input(x, self.num_features, training=use_batch_stats)
        if not use_batch_stats:  # Alg. 2, line 11: a fixed affine map per channel
            return self._inference(x)
        y, mu_B, sigma2_B = batch_norm_train(x, self.weight, self.bias, self.eps, self.impl)
        if self.training and self.track_running_stats:
            self._update_running_stats(mu_B, sigma2_B, F.values_per_channel(x))
        return y

    def _inference(self, x: torch.Tensor) -> torch.Tensor:
        cd = compute_dtype(x.dtype)  # float16 / bfloat16: the affine map in float32, as torch
        ones = torch.ones(self.num_features, dtype=cd, device=x.device)
        gamma = self.weight.to(cd) if self.weight is not None else ones
        beta = self.bias.to(cd) if self.bias is not None else torch.zeros_like(ones)
        mean, var = self.running_mean.to(cd), self.running_var.to(cd)
        return F.inference_affine(x.to(cd), mean, var, gamma, beta, self.eps).to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mu_B: torch.Tensor, sigma2_B: torch.Tensor, m: int) -> None:
        self.num_batches_tracked.add_(1)
        if m == 0:  # an empty batch has no statistics: the averages stay, as in torch
            return
        if self.momentum is None:  # cumulative average over all batches seen
            factor = 1.0 / self.num_batches_tracked.to(self.running_mean.dtype)  # a tensor: fine under vmap
        else:  # exponential moving average, as torch
            factor = self.momentum
        unbiased = sigma2_B * (m / (m - 1))  # stored unbiased, as torch does (Alg. 2, line 10)
        # new = (1 - factor) old + factor batch, written with mul_/add_ (vmap has no rule for lerp_)
        self.running_mean.mul_(1 - factor).add_(mu_B.to(self.running_mean.dtype) * factor)
        self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype) * factor)


class BatchNorm1d(BatchNorm):
    """`BatchNorm` for (N, C) or (N, C, L) input, rejecting other ranks as torch.nn.BatchNorm1d does."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.dim()}D input)")


class BatchNorm2d(BatchNorm):
    """`BatchNorm` for (N, C, H, W) input, as torch.nn.BatchNorm2d."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {x.dim()}D input)")


class BatchNorm3d(BatchNorm):
    """`BatchNorm` for (N, C, D, H, W) input, as torch.nn.BatchNorm3d."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"expected 5D input (got {x.dim()}D input)")


class GhostBatchNorm(BatchNorm):
    """BN over `ghost_batches` equal parts of each mini-batch, each normalized apart ("ghost" batches,
    Hoffer, Hubara & Soudry 2017).

    This is what per-replica BN computes in data-parallel training: k replicas each normalize their
    own m = N / k examples. Running statistics follow the first part, as DistributedDataParallel
    (broadcast_buffers=True) keeps rank 0's at every step; eval mode is plain Algorithm 2. With
    ghost_batches = 1 it is `BatchNorm`. The k parts run as one BN call over k * C channels (part g's
    channel c is channel g * C + c), so the hand-derived backward and the vmap rule apply unchanged.
    """

    def __init__(self, num_features: int, *args, ghost_batches: int = 1, **kwargs):
        super().__init__(num_features, *args, **kwargs)
        if not isinstance(ghost_batches, int) or ghost_batches < 1:
            raise ValueError(f"ghost_batches must be a positive int, got {ghost_batches!r}")
        self.ghost_batches = ghost_batches

    def extra_repr(self) -> str:
        return super().extra_repr() + f", ghost_batches={self.ghost_batches}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, *S) -> (N, C, *S)
        k = self.ghost_batches
        use_batch_stats = self.training or not self.track_running_stats
        if k == 1 or not use_batch_stats:
            return super().forward(x)
        self._check_input_dim(x)
        F.check_input(x, self.num_features, training=False)
        N, C, S = x.shape[0], x.shape[1], tuple(x.shape[2:])
        if N % k:
            raise ValueError(
                f"ghost BN splits each mini-batch into {k} equal parts, but got {N} examples "
                f"({N} % {k} = {N % k}); use a batch size divisible by {k}"
            )
        m = N // k
        xs = x.reshape(k, m, C, *S).transpose(0, 1).reshape(m, k * C, *S)  # (m, k*C, *S)
        gamma = self.weight.repeat(k) if self.weight is not None else None  # (k*C,)
        beta = self.bias.repeat(k) if self.bias is not None else None
        y, mu_B, sigma2_B = batch_norm_train(xs, gamma, beta, self.eps, self.impl)
        if self.training and self.track_running_stats:  # the first part's, as DDP keeps rank 0's
            self._update_running_stats(mu_B[:C], sigma2_B[:C], F.values_per_channel(xs))
        return y.reshape(m, k, C, *S).transpose(0, 1).reshape(N, C, *S)


class BatchRenorm(BatchNorm):
    """Batch Renormalization (Ioffe 2017): training normalizes by the mini-batch's statistics
    corrected towards the moving averages, x_hat = r (x - mu_B) / sigma_B + d, with
    r = clip(sigma_B / sigma, 1/rmax, rmax) and d = clip((mu_B - mu) / sigma, -dmax, dmax) held
    constant in the gradient; mu and sigma^2 are the running mean and variance (sigma includes eps).
    So training sees the same affine map as inference whenever the clips do not bind, and small or
    non-i.i.d. mini-batches matter less. rmax = 1, dmax = 0 is BatchNorm. Eval mode: Algorithm 2.
    Defaults rmax = 3, dmax = 5 are the paper's final values (it relaxes them from 1 and 0)."""

    def __init__(self, num_features: int, *args, rmax: float = 3.0, dmax: float = 5.0, **kwargs):
        super().__init__(num_features, *args, **kwargs)
        if rmax < 1 or dmax < 0:
            raise ValueError(
                f"Batch Renormalization needs rmax >= 1 and dmax >= 0, got rmax={rmax}, dmax={dmax}"
            )
        if not self.track_running_stats:
            raise ValueError(
                "Batch Renormalization corrects towards running statistics: track_running_stats=True"
            )
        self.rmax, self.dmax = rmax, dmax

    def extra_repr(self) -> str:
        return super().extra_repr() + f", rmax={self.rmax}, dmax={self.dmax}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, *S) -> (N, C, *S)
        if not self.training:
            return super().forward(x)
        self._check_input_dim(x)
        F.check_input(x, self.num_features, training=True)
        gamma, beta = affine_parameters(x, self.weight, self.bias)
        mean = self.running_mean.clone()  # a copy: the update below must not touch what backward saved
        std = (self.running_var.detach() + self.eps).sqrt()
        y, mu_B, sigma2_B = BatchRenormFunction.apply(
            x, gamma, beta, mean, std, self.rmax, self.dmax, self.eps
        )
        self._update_running_stats(mu_B, sigma2_B, F.values_per_channel(x))
        return y
