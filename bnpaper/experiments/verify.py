"""Chapter "The BN transform and its gradient": Algorithm 1 and its backward pass, checked.

For each seed: a random off-centre batch in float64, pushed through every implementation;
the differences to independent references (torch's native batch_norm, autograd through plain
tensor ops, finite differences via gradcheck) are recorded. Claim checked: the paper's six
backward equations (Sec. 3.1) give the true gradient; the collapsed form and the fast path are
the same function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as TF

from bnpaper import functional as F
from bnpaper import profiles
from bnpaper.autograd import BatchNormFast, BatchNormReference, batch_norm_train

settings = partial(profiles.settings, "verify")  # (profile, steps=0) -> this experiment's numbers


@dataclass
class VerifyConfig:
    seeds: list[int] = field(default_factory=lambda: list(range(10)))  # one random batch per seed
    shape: list[int] = field(default_factory=lambda: [64, 8, 5, 5])  # (m, C, p, q): m' = m p q per channel
    eps: float = 1e-5  # Alg. 1's epsilon (the paper leaves it unspecified; torch's default)
    loc: float = 3.0  # input mean (off-centre on purpose)
    scale: float = 2.5  # input std


def _batch(cfg: VerifyConfig, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg.shape, generator=g, dtype=torch.float64) * cfg.scale + cfg.loc
    C = cfg.shape[1]
    gamma = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    beta = torch.randn(C, generator=g, dtype=torch.float64)
    dy = torch.randn(cfg.shape, generator=g, dtype=torch.float64)
    return x, gamma, beta, dy


def _small(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A corner of the batch, (4, 2, 2, 2), and its channels' gamma, beta: finite differences
    (gradcheck, gradgradcheck) cost one forward per input value."""
    return tuple(
        t[:4, :2, :2, :2].contiguous().clone().requires_grad_()
        if t.dim() == 4
        else t[:2].clone().requires_grad_()
        for t in (x, gamma, beta)
    )


def run(cfg: VerifyConfig) -> dict:
    """Per seed, the max |difference| of each quantity to its reference. Returns lists by key."""
    out: dict[str, list] = {
        k: []
        for k in (
            "forward_vs_torch",
            "out_mean",
            "out_var",
            "steps_vs_autograd",
            "collapsed_vs_autograd",
            "fast_vs_autograd",
            "torch_vs_autograd",
            "dgamma_vs_autograd",
            "dbeta_vs_autograd",
            "gradcheck",
        )
    }
    for seed in cfg.seeds:
        x, gamma, beta, dy = _batch(cfg, seed)
        y, cache = F.forward_reference(x, gamma, beta, cfg.eps)
        y_torch = TF.batch_norm(x, None, None, gamma, beta, training=True, eps=cfg.eps)
        out["forward_vs_torch"].append((y - y_torch).abs().max().item())
        x_hat = cache.x_hat
        dims = F.reduce_dims(x)
        out["out_mean"].append(x_hat.mean(dims).abs().max().item())  # ~0: x_hat is centred
        out["out_var"].append((x_hat.var(dims, unbiased=False) - 1).abs().max().item())  # ~eps/sigma2

        xa, ga, ba = (t.clone().requires_grad_() for t in (x, gamma, beta))
        dx_auto, dg_auto, db_auto = torch.autograd.grad(
            F.forward_reference(xa, ga, ba, cfg.eps)[0], (xa, ga, ba), dy
        )
        steps = F.backward_steps(dy, gamma, cache)
        collapsed = F.backward_collapsed(dy, gamma, x_hat, cache.sigma2_B, cfg.eps)
        *_, inv_std, xh = F.fast_forward(x, gamma, beta, cfg.eps)
        dx_fast, _, _ = F.fast_backward(dy, xh, gamma, inv_std)
        xt = x.clone().requires_grad_()
        (dx_torch,) = torch.autograd.grad(
            TF.batch_norm(xt, None, None, gamma, beta, training=True, eps=cfg.eps), xt, dy
        )
        out["steps_vs_autograd"].append((steps["dl_dx"] - dx_auto).abs().max().item())
        out["collapsed_vs_autograd"].append((collapsed - dx_auto).abs().max().item())
        out["fast_vs_autograd"].append((dx_fast - dx_auto).abs().max().item())
        out["torch_vs_autograd"].append((dx_torch - dx_auto).abs().max().item())
        out["dgamma_vs_autograd"].append((steps["dl_dgamma"] - dg_auto).abs().max().item())
        out["dbeta_vs_autograd"].append((steps["dl_dbeta"] - db_auto).abs().max().item())

        small = _small(x, gamma, beta)
        ok = all(
            torch.autograd.gradcheck(lambda a, b, c, fn=fn: fn.apply(a, b, c, cfg.eps)[0], small)
            for fn in (BatchNormReference, BatchNormFast)
        )
        out["gradcheck"].append(bool(ok))
    return out


def second_order(cfg: VerifyConfig) -> dict:
    """Per seed: gradgradcheck of both Functions (finite differences of the backward itself), and
    the Hessian-vector product of a scalar loss through our BN against autograd differentiating
    Algorithm 1 written as plain tensor ops (twice). Returns lists by key."""
    out: dict[str, list] = {"gradgradcheck": [], "hvp_fast_vs_autograd": [], "hvp_reference_vs_autograd": []}
    for seed in cfg.seeds:
        x, gamma, beta, dy = _batch(cfg, seed)
        small = _small(x, gamma, beta)
        ok = all(
            torch.autograd.gradgradcheck(
                lambda a, b, c, impl=impl: batch_norm_train(a, b, c, cfg.eps, impl)[0], small
            )
            for impl in ("fast", "reference")
        )
        out["gradgradcheck"].append(bool(ok))
        v = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)

        def hvp(bn, x=x, dy=dy, v=v):  # H v for loss(x) = sum(dy * tanh(BN(x))), by double backward
            xa = x.clone().requires_grad_()
            (g,) = torch.autograd.grad((dy * torch.tanh(bn(xa))).sum(), xa, create_graph=True)
            (h,) = torch.autograd.grad((g * v).sum(), xa)
            return h

        h_auto = hvp(lambda t, gamma=gamma, beta=beta: F.forward_reference(t, gamma, beta, cfg.eps)[0])
        for impl in ("fast", "reference"):

            def ours(t, impl=impl, gamma=gamma, beta=beta):
                return batch_norm_train(t, gamma, beta, cfg.eps, impl)[0]

            h = hvp(ours)
            out[f"hvp_{impl}_vs_autograd"].append((h - h_auto).abs().max().item())
    return out


def summarize(result: dict) -> dict[str, dict]:
    """max, median over seeds for each numeric key; passes / runs for gradcheck."""
    import statistics

    s = {}
    for k, v in result.items():
        if k in ("gradcheck", "gradgradcheck"):
            s[k] = {"passed": sum(v), "runs": len(v)}
        else:
            s[k] = {"max": max(v), "median": statistics.median(v), "runs": len(v)}
    return s
