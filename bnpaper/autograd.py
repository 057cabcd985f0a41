"""Autograd Functions whose backward is the hand-derived gradient of Sec. 3.1, not autograd's.

Both Functions return (y, mu_B, sigma2_B); the statistics are marked non-differentiable and
feed the layer's running averages.

* `BatchNormReference`: forward is Algorithm 1 line by line, backward the paper's six steps.
* `BatchNormFast`: in-place forward, backward as dl/dx = k1 dy + k2 x_hat + k3. It saves the
  input x and two per-channel vectors (as torch's native kernel does) and rebuilds x_hat in the
  backward.

Second order. Both backward passes are written in differentiable tensor operations. When
autograd runs them with create_graph=True (a gradient penalty, a Hessian-vector product), the
statistics mu_B and sigma2_B are recomputed from the saved input inside the backward, so the
recorded graph reaches x through x_hat, mu_B and sigma2_B. Saved statistics would be
constants to that graph, and the double backward would silently miss their terms.

Both Functions use the `setup_context` form and carry a vmap rule, so they run under
`torch.func.vmap` / `functional_call` (many runs as one computation) and `torch.compile`. The rule
is exact because BN is per channel: R runs of C channels are one BN over R*C channels
(`_vmap_as_channels`), one call instead of R.

Half precision: float16 / bfloat16 input is normalized in float32 (statistics, x_hat, the
backward sums) and y is returned in the input's dtype, as torch's CPU and cuDNN kernels do.
"""

from __future__ import annotations

import functools
import shutil
import warnings

import torch

from bnpaper import functional as F

LOW_PRECISION = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16 / bfloat16 input (statistics kept in float32, as torch), else the dtype."""
    return torch.float32 if dtype in LOW_PRECISION else dtype


def _statistics(x: torch.Tensor, mu_B: torch.Tensor, sigma2_B: torch.Tensor):
    """The saved statistics, or, when the backward itself is being recorded (create_graph=True),
    the same statistics recomputed from x so the double backward differentiates through them."""
    if torch.is_grad_enabled():
        return F.batch_statistics(x)  # Alg. 1, lines 1-2, now part of the recorded graph
    return mu_B, sigma2_B


def _vmap_as_channels(fn):
    """vmap rule: the batch of R runs becomes R*C channels of one BN call (exact: BN is per channel)."""

    def rule(info, in_dims, x, gamma, beta, eps):
        R = info.batch_size

        def lead(t, d):  # move the run dimension first, or broadcast an unbatched input
            return t.movedim(d, 0) if d is not None else t.expand(R, *t.shape)

        x_d, g_d, b_d, _ = in_dims
        x, gamma, beta = lead(x, x_d), lead(gamma, g_d), lead(beta, b_d)  # (R, N, C, *S), (R, C), (R, C)
        N, C, S = x.shape[1], x.shape[2], x.shape[3:]
        xs = x.transpose(0, 1).reshape(N, R * C, *S)  # (N, R*C, *S): run r's channel c is channel r*C + c
        y, mu_B, sigma2_B = fn.apply(xs, gamma.reshape(R * C), beta.reshape(R * C), eps)
        y = y.reshape(N, R, C, *S).transpose(0, 1)  # (R, N, C, *S)
        return (y, mu_B.view(R, C), sigma2_B.view(R, C)), (0, 0, 0)

    return staticmethod(rule)


class BatchNormReference(torch.autograd.Function):
    """Algorithm 1 and the six backward equations of Sec. 3.1, readable first."""

    @staticmethod
    def forward(x, gamma, beta, eps):  # x: (N, C, *S); gamma, beta: (C,)
        cd = compute_dtype(x.dtype)
        y, cache = F.forward_reference(x.to(cd), gamma.to(cd), beta.to(cd), eps)
        return y.to(x.dtype), cache.mu_B, cache.sigma2_B

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma, _beta, eps = inputs
        _, mu_B, sigma2_B = output
        ctx.save_for_backward(x, gamma, mu_B, sigma2_B)
        ctx.eps = eps
        ctx.mark_non_differentiable(mu_B, sigma2_B)

    @staticmethod
    def backward(ctx, dy, _dmu, _dsigma2):
        x, gamma, mu_B, sigma2_B = ctx.saved_tensors
        cd = compute_dtype(x.dtype)
        xc, g = x.to(cd), gamma.to(cd)
        mu_B, sigma2_B = _statistics(xc, mu_B, sigma2_B)
        x_hat = (xc - F.per_channel(mu_B, xc)) / F.per_channel(
            torch.sqrt(sigma2_B + ctx.eps), xc
        )  # Alg. 1, l. 3
        cache = F.ForwardCache(x=xc, mu_B=mu_B, sigma2_B=sigma2_B, x_hat=x_hat, eps=ctx.eps)
        steps = F.backward_steps(dy.to(cd), g, cache)
        return (
            steps["dl_dx"].to(x.dtype),
            steps["dl_dgamma"].to(gamma.dtype),
            steps["dl_dbeta"].to(gamma.dtype),
            None,
        )


class BatchNormFast(torch.autograd.Function):
    """The same gradient, arranged for speed and memory (see `functional.fast_backward`)."""

    @staticmethod
    def forward(x, gamma, beta, eps):  # x: (N, C, *S); gamma, beta: (C,)
        cd = compute_dtype(x.dtype)
        y, mu_B, sigma2_B, _inv_std, _x_hat = F.fast_forward(x.to(cd), gamma.to(cd), beta.to(cd), eps)
        return y.to(x.dtype), mu_B, sigma2_B

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma, _beta, eps = inputs
        _, mu_B, sigma2_B = output
        ctx.save_for_backward(x, gamma, mu_B, sigma2_B)  # the input + (C,) vectors, like native
        ctx.eps = eps
        ctx.mark_non_differentiable(mu_B, sigma2_B)

    @staticmethod
    def backward(ctx, dy, _dmu, _dsigma2):
        x, gamma, mu_B, sigma2_B = ctx.saved_tensors
        cd = compute_dtype(x.dtype)
        xc = x.to(cd)
        mu_B, sigma2_B = _statistics(xc, mu_B, sigma2_B)
        inv_std = (sigma2_B + ctx.eps).rsqrt()  # (C,)
        x_hat = (xc - F.per_channel(mu_B, xc)).mul_(F.per_channel(inv_std, xc))  # Alg. 1, line 3, rebuilt
        dl_dx, dl_dgamma, dl_dbeta = F.fast_backward(dy.to(cd), x_hat, gamma.to(cd), inv_std)
        return dl_dx.to(x.dtype), dl_dgamma.to(gamma.dtype), dl_dbeta.to(gamma.dtype), None


class BatchRenormFunction(torch.autograd.Function):
    """Batch Renormalization (Ioffe 2017) in training, with the hand-derived backward
    (`functional.renorm_backward`: r and d are constants of the gradient). Returns (y, mu_B, sigma2_B)."""

    @staticmethod
    def forward(x, gamma, beta, mean, std, rmax, dmax, eps):  # x: (N, C, *S); the rest (C,)
        cd = compute_dtype(x.dtype)
        y, mu_B, sigma2_B, _inv, _xt, _r, _d = F.renorm_forward(
            x.to(cd), gamma.to(cd), beta.to(cd), mean.to(cd), std.to(cd), rmax, dmax, eps
        )
        return y.to(x.dtype), mu_B, sigma2_B

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma, _beta, mean, std, rmax, dmax, eps = inputs
        _, mu_B, sigma2_B = output
        ctx.save_for_backward(x, gamma, mean, std, mu_B, sigma2_B)
        ctx.rmax, ctx.dmax, ctx.eps = rmax, dmax, eps
        ctx.mark_non_differentiable(mu_B, sigma2_B)

    @staticmethod
    def backward(ctx, dy, _dmu, _dsigma2):
        if torch.is_grad_enabled():
            raise NotImplementedError(
                "the double backward through Batch Renormalization is not implemented; BatchNorm has it"
            )
        x, gamma, mean, std, mu_B, sigma2_B = ctx.saved_tensors
        cd = compute_dtype(x.dtype)
        xc = x.to(cd)
        inv_std = (sigma2_B + ctx.eps).rsqrt()
        x_tilde = (xc - F.per_channel(mu_B, xc)) * F.per_channel(inv_std, xc)
        r, d = F.renorm_correction(mu_B, 1.0 / inv_std, mean.to(cd), std.to(cd), ctx.rmax, ctx.dmax)
        dl_dx, dl_dgamma, dl_dbeta = F.renorm_backward(dy.to(cd), x_tilde, gamma.to(cd), inv_std, r, d)
        return (
            dl_dx.to(x.dtype),
            dl_dgamma.to(gamma.dtype),
            dl_dbeta.to(gamma.dtype),
            None,
            None,
            None,
            None,
            None,
        )

    @staticmethod
    def vmap(info, in_dims, x, gamma, beta, mean, std, rmax, dmax, eps):
        """R runs of C channels are one Batch Renormalization over R*C channels (exact: per channel)."""
        R = info.batch_size

        def lead(t, dim):
            return t.movedim(dim, 0) if dim is not None else t.expand(R, *t.shape)

        x, gamma, beta, mean, std = (lead(t, dim) for t, dim in zip((x, gamma, beta, mean, std), in_dims[:5]))
        N, C, S = x.shape[1], x.shape[2], x.shape[3:]
        xs = x.transpose(0, 1).reshape(N, R * C, *S)
        flat = [t.reshape(R * C) for t in (gamma, beta, mean, std)]
        y, mu_B, sigma2_B = BatchRenormFunction.apply(xs, *flat, rmax, dmax, eps)
        y = y.reshape(N, R, C, *S).transpose(0, 1)
        return (y, mu_B.view(R, C), sigma2_B.view(R, C)), (0, 0, 0)


BatchNormReference.vmap = _vmap_as_channels(BatchNormReference)
BatchNormFast.vmap = _vmap_as_channels(BatchNormFast)


def _fast_apply(x, gamma, beta, eps):
    return BatchNormFast.apply(x, gamma, beta, eps)


@functools.cache
def has_compiler(what: str = "impl='compiled'") -> bool:
    """Whether torch.compile's CPU backend (inductor) finds a C++ compiler; where it does not, one
    notice per `what` says so and how to install one, and the caller runs its eager path."""
    from torch._inductor import config as inductor_config

    cxx = [c for c in inductor_config.cpp.cxx if c]
    if any(shutil.which(c) for c in cxx):
        return True
    warnings.warn(
        f"bnpaper: {what} needs a C++ compiler for torch.compile (looked for {cxx}); "
        "using the eager path. Install g++ (Debian: apt-get install g++) to compile it.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


@functools.cache
def _compiled():
    """torch.compile of the fast path (inductor writes one fused C++ kernel per pass), or None
    with a one-line notice where no C++ compiler exists: then the eager fast path runs."""
    return torch.compile(_fast_apply, dynamic=None) if has_compiler() else None


def _compiled_apply(x, gamma, beta, eps):
    fn = _compiled()
    if fn is None or torch.compiler.is_compiling():
        return _fast_apply(x, gamma, beta, eps)
    return fn(x, gamma, beta, eps)


def _traced_apply(x, gamma, beta, eps):
    """Alg. 1 in plain differentiable operations, with no hand-written backward: torch's autograd
    (or, under torch.compile, AOTAutograd) derives it. The engine's compiled training step uses it,
    because a step is compiled whole only where every operation in it can be traced; the tests hold
    it to the hand-derived backward. (N, C, *S) -> y (N, C, *S), mu_B (C,), sigma2_B (C,).

    The statistics come from torch.var_mean, which inductor lowers to a Welford reduction. Written
    as batch_statistics' two passes, inductor fused them into one pass of sums of x and x^2, the
    E[x^2] - E[x]^2 that cancels when |mean| >> std: float32 conv-net training then drifted 1e-3
    in loss within 3 steps (measured; float64 hid it)."""
    cd = compute_dtype(x.dtype)
    xc = x.to(cd)
    sigma2_B, mu_B = torch.var_mean(xc, F.reduce_dims(xc), correction=0)  # Alg. 1, lines 1-2 (Welford)
    x_hat = (xc - F.per_channel(mu_B, xc)) * F.per_channel((sigma2_B + eps).rsqrt(), xc)  # line 3
    y = x_hat * F.per_channel(gamma.to(cd), xc) + F.per_channel(beta.to(cd), xc)  # line 4
    return y.to(x.dtype), mu_B.detach(), sigma2_B.detach()


IMPLEMENTATIONS = {
    "fast": _fast_apply,
    "reference": BatchNormReference.apply,
    "compiled": _compiled_apply,
    "traced": _traced_apply,
}


def affine_parameters(
    x: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """gamma and beta as tensors: 1 and 0 (constants, in the compute dtype) where absent
    (affine=False, or bias=False)."""
    C = x.shape[1]
    if gamma is None:
        gamma = torch.ones(C, dtype=compute_dtype(x.dtype), device=x.device)
    if beta is None:
        beta = torch.zeros(C, dtype=gamma.dtype, device=x.device)
    return gamma, beta


def batch_norm_train(
    x: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    eps: float = F.DEFAULT_EPS,
    impl: str = "fast",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode BN with the hand-derived backward. Returns (y, mu_B, sigma2_B).

    gamma / beta may be None (affine=False, or bias=False): then gamma = 1, beta = 0 as constants.
    impl: "fast" (default), "reference" (Alg. 1 and the six steps as written), "compiled"
    (torch.compile of the fast path; falls back to "fast" with a notice where there is no compiler)
    or "traced" (Alg. 1 in plain operations, autograd's own backward: what a compiled step traces).
    An empty batch (N = 0) gives an empty output and NaN statistics, which the layer does not
    fold into its running averages (torch does the same).
    """
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {sorted(IMPLEMENTATIONS)}, got {impl!r}")
    F.check_input(x, gamma.shape[0] if gamma is not None else None, training=True)
    C = x.shape[1]
    gamma, beta = affine_parameters(x, gamma, beta)
    if x.numel() == 0:  # nothing to normalize: keep the graph (gradients are empty / zero)
        nan = torch.full((C,), float("nan"), dtype=compute_dtype(x.dtype), device=x.device)
        return x * F.per_channel(gamma, x).to(x.dtype) + F.per_channel(beta, x).to(x.dtype), nan, nan
    return IMPLEMENTATIONS[impl](x, gamma, beta, eps)
