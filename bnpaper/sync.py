"""Synchronized batch normalization: Algorithm 1 over the union of the replicas' mini-batches.

In data-parallel training each of W replicas holds n_r examples of one global mini-batch. Per-replica
BN normalizes each replica's part on its own ("ghost" batches); synchronized BN takes the statistics
of the whole global batch, as one process would (Ioffe & Szegedy 2015, Alg. 1 and Sec. 3.1):

* forward: each replica computes its count, mean and sum of squared deviations per channel; one
  all-gather shares them, and every replica combines them with Chan et al.'s parallel formula
  (`combine_moments`), never E[x^2] - E[x]^2. Uneven local batches (an empty one included) are fine.
* backward: the paper's collapsed gradient needs two per-channel sums over the mini-batch,
  sum(dl/dy) and sum(dl/dy * x_hat); one all-reduce of both makes them global
  (`functional.input_gradient`). dl/dgamma and dl/dbeta stay local: DistributedDataParallel
  averages parameter gradients over the replicas, as it does for every other parameter.
* inference: the running averages take the global mean and unbiased global variance, so they are
  identical on every replica.

Communication goes through torch.distributed (gloo on CPU, NCCL on GPU); nothing here opens a socket.
Unlike torch.nn.SyncBatchNorm, which raises on CPU tensors, this runs on any device its process
group's backend serves. The double backward (create_graph=True) through synchronized BN is not
implemented and says so; single-process BN (`bnpaper.layers.BatchNorm`) has it.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from bnpaper import functional as F
from bnpaper.autograd import affine_parameters, compute_dtype
from bnpaper.errors import DistributedError
from bnpaper.layers import BatchNorm


class ReplicaError(DistributedError):
    """A collective of synchronized BN failed: another replica died or stopped answering."""


# ----------------------------------------------------------------------------- pure math


def local_moments(x: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """This replica's (count, mean, sum of squared deviations) per channel, two passes (Alg. 1, l. 1-2).

    x: (N, C, *S) -> (n, (C,), (C,)) with n = N * prod(S) values per channel; an empty batch
    gives n = 0 and zeros (it adds nothing to the combination)."""
    n = F.values_per_channel(x)
    if n == 0:
        zero = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        return 0, zero, zero.clone()
    dims = F.reduce_dims(x)
    mean = x.mean(dims)  # (C,)
    m2 = (x - F.per_channel(mean, x)).square().sum(dims)  # (C,)
    return n, mean, m2


def combine_moments(
    counts: torch.Tensor, means: torch.Tensor, m2s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chan, Golub & LeVeque's parallel combination of W groups' moments (stable: deviations only).

    counts: (W,), means: (W, C), m2s: (W, C) -> n, mean (C,), M2 (C,) of the union, with
      mean = sum_r n_r mean_r / n,   M2 = sum_r M2_r + sum_r n_r (mean_r - mean)^2.
    The pairwise form M2_a + M2_b + delta^2 n_a n_b / n is this formula for W = 2."""
    n = counts.sum()
    w = counts.unsqueeze(1)  # (W, 1)
    mean = (w * means).sum(0) / n  # (C,)
    m2 = m2s.sum(0) + (w * (means - mean).square()).sum(0)  # (C,)
    return n, mean, m2


# ----------------------------------------------------------------------------- communication


def _describe_failure(op: str, group, err: Exception) -> ReplicaError:
    rank = dist.get_rank(group) if dist.is_initialized() else "?"
    return ReplicaError(
        f"synchronized BN on rank {rank}: the {op} across replicas failed ({type(err).__name__}: "
        f"{str(err).splitlines()[0] if str(err) else ''}). Another replica has died or has not answered "
        "within the process group's timeout. Restart the job (torchrun --max-restarts N restarts every "
        "replica), or train with per-replica BN (bn='local')."
    )


def gather_moments(x: torch.Tensor, group=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One all-gather of every replica's (count, mean, M2), combined: the global batch's moments."""
    n, mean, m2 = local_moments(x)
    C = x.shape[1]
    packed = torch.cat([mean.new_tensor([float(n)]), mean, m2])  # (1 + 2C,): exact counts below 2^24 (f32)
    world = dist.get_world_size(group)
    parts = [torch.empty_like(packed) for _ in range(world)]
    try:
        dist.all_gather(parts, packed, group=group)
    except RuntimeError as e:  # DistBackendError (a peer closed its connection, or the timeout)
        raise _describe_failure("all-gather of the batch statistics", group, e) from e
    table = torch.stack(parts)  # (W, 1 + 2C)
    return combine_moments(table[:, 0], table[:, 1 : 1 + C], table[:, 1 + C :])


def _all_reduce(t: torch.Tensor, group, what: str) -> torch.Tensor:
    try:
        dist.all_reduce(t, group=group)
    except RuntimeError as e:
        raise _describe_failure(f"all-reduce of {what}", group, e) from e
    return t


# ----------------------------------------------------------------------------- autograd


class SyncBatchNormFunction(torch.autograd.Function):
    """Training-mode BN over the process group's global mini-batch, with the hand-derived backward."""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps, group):  # x: (N_r, C, *S) this replica's part; gamma, beta: (C,)
        cd = compute_dtype(x.dtype)
        xc = x.to(cd)
        n, mu, m2 = gather_moments(xc, group)  # the global batch: n values per channel
        if n.item() < 2:
            raise ValueError(
                "synchronized BN needs more than one value per channel over all replicas, got "
                f"{int(n.item())}: the batch variance is undefined. Use larger local batches or .eval()."
            )
        sigma2 = m2 / n  # Alg. 1, line 2: biased, over the global batch
        inv_std = (sigma2 + eps).rsqrt()  # (C,)
        x_hat = (xc - F.per_channel(mu, xc)).mul_(F.per_channel(inv_std, xc))  # line 3
        y = torch.addcmul(F.per_channel(beta.to(cd), xc), x_hat, F.per_channel(gamma.to(cd), xc))  # line 4
        ctx.save_for_backward(x, gamma, mu, inv_std)
        ctx.n, ctx.group = n, group
        ctx.mark_non_differentiable(mu, sigma2, n)
        return y.to(x.dtype), mu, sigma2, n

    @staticmethod
    def backward(ctx, dy, _dmu, _dsigma2, _dn):
        if torch.is_grad_enabled():
            raise NotImplementedError(
                "the double backward (create_graph=True) through synchronized BN is not implemented; "
                "use bnpaper.layers.BatchNorm (single process), whose second order is exact"
            )
        x, gamma, mu, inv_std = ctx.saved_tensors
        cd = compute_dtype(x.dtype)
        xc, dyc, g = x.to(cd), dy.to(cd), gamma.to(cd)
        x_hat = (xc - F.per_channel(mu, xc)).mul_(F.per_channel(inv_std, xc))  # Alg. 1, line 3, rebuilt
        dims = F.reduce_dims(xc)
        local = torch.stack([dyc.sum(dims), (dyc * x_hat).sum(dims)])  # (2, C): eq. 6 and eq. 5, local
        sums = _all_reduce(local.clone(), ctx.group, "the gradient sums")  # (2, C) over the global batch
        dl_dx = F.input_gradient(dyc, x_hat, g, inv_std, sums[0], sums[1], ctx.n)
        # parameters: this replica's share; DDP averages them over the replicas like any other gradient
        return dl_dx.to(x.dtype), local[1].to(gamma.dtype), local[0].to(gamma.dtype), None, None


def sync_batch_norm_train(
    x: torch.Tensor,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    eps: float = F.DEFAULT_EPS,
    group=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode BN over every replica of `group` (default: the world). Returns (y, mu, sigma2, n):
    the output of this replica's part, and the global batch's mean, biased variance and values per
    channel. gamma / beta may be None (then 1 and 0, constants)."""
    F.check_input(x, gamma.shape[0] if gamma is not None else None, training=False)
    gamma, beta = affine_parameters(x, gamma, beta)
    return SyncBatchNormFunction.apply(x, gamma, beta, eps, group)


# ----------------------------------------------------------------------------- module


def synchronizing(group=None) -> bool:
    """True when a process group of more than one replica is up (else BN runs per process)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


class SyncBatchNorm(BatchNorm):
    """`bnpaper.layers.BatchNorm` whose training statistics span every replica of `process_group`.

    Outside a process group (or in a group of one) it is plain BatchNorm. Eval mode uses the running
    statistics, which are the same on every replica because every replica folds in the same global
    mean and variance. Convert a model with `SyncBatchNorm.convert_sync_batchnorm(model)`, as torch's.

    Example (under torchrun, after dist.init_process_group("gloo")):
        >>> model = SyncBatchNorm.convert_sync_batchnorm(models.mlp(bn=True))
        >>> ddp = torch.nn.parallel.DistributedDataParallel(model)
    """

    def __init__(self, num_features: int, *args, process_group=None, **kwargs):
        super().__init__(num_features, *args, **kwargs)
        self.process_group = process_group

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N_r, C, *S) -> (N_r, C, *S)
        use_batch_stats = self.training or not self.track_running_stats
        if not (use_batch_stats and synchronizing(self.process_group)):
            return super().forward(x)
        self._check_input_dim(x)
        y, mu, sigma2, n = sync_batch_norm_train(x, self.weight, self.bias, self.eps, self.process_group)
        if self.training and self.track_running_stats:  # the global statistics: equal on every replica
            self._update_running_stats(mu, sigma2, int(n.item()))
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module: nn.Module, process_group=None) -> nn.Module:
        """Replace every bnpaper BatchNorm and torch BatchNorm*d of `module` by SyncBatchNorm, keeping
        parameters, running statistics and mode (as torch.nn.SyncBatchNorm.convert_sync_batchnorm)."""
        out = module
        if isinstance(module, (BatchNorm, nn.modules.batchnorm._BatchNorm)) and not isinstance(module, cls):
            impl = getattr(module, "impl", "fast")
            out = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                impl,
                bias=module.affine and module.bias is not None,
                process_group=process_group,
            )
            with torch.no_grad():
                if module.affine:
                    out.weight = module.weight
                    if module.bias is not None:
                        out.bias = module.bias
                if module.track_running_stats:
                    out.running_mean, out.running_var = module.running_mean, module.running_var
                    out.num_batches_tracked = module.num_batches_tracked
            out.train(module.training)
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out
