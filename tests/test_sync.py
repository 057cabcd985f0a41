"""Synchronized BN across real processes (gloo on CPU), against single-process BN in float64.

Each test starts its own replicas with `bnpaper.distributed.launch`; the replica functions below are
module-level so the spawned processes can import them. Every replica draws the same global batch
from one seed and keeps its own rows, so the single-process reference sees exactly the union."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from bnpaper import functional as F
from bnpaper.distributed import DistributedError, launch, local_rows, write_atomic
from bnpaper.layers import BatchNorm
from bnpaper.sync import SyncBatchNorm, combine_moments, local_moments

ROOT = Path(__file__).resolve().parents[1]
D = torch.float64


# ----------------------------------------------------------------------------- pure math (no processes)


@pytest.mark.parametrize("sizes", [(3, 5), (1, 7, 2), (0, 4), (6,)])
def test_combine_moments_is_the_union(sizes):
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, 3, 2, dtype=D, generator=g) * 5 + 1e4 for n in sizes]  # |mean| >> std
    moments = [local_moments(p) for p in parts]
    counts = torch.tensor([float(n) for n, _, _ in moments], dtype=D)
    n, mean, m2 = combine_moments(
        counts, torch.stack([m for _, m, _ in moments]), torch.stack([v for *_, v in moments])
    )
    full = torch.cat(parts)
    mu, var = F.batch_statistics(full)
    assert int(n) == F.values_per_channel(full)
    torch.testing.assert_close(mean, mu, rtol=0, atol=1e-10)
    torch.testing.assert_close(m2 / n, var, rtol=1e-12, atol=1e-12)


def test_combine_moments_is_stable_where_the_naive_formula_cancels():
    """float32, mean 1e4, std 1: E[x^2] - E[x]^2 loses every digit; the combination keeps the variance."""
    g = torch.Generator().manual_seed(1)
    parts = [torch.randn(500, 1, generator=g) + 1e4 for _ in range(2)]
    ms = [local_moments(p) for p in parts]
    n, _, m2 = combine_moments(
        torch.tensor([500.0, 500.0]), torch.stack([m for _, m, _ in ms]), torch.stack([v for *_, v in ms])
    )
    exact = torch.cat(parts).double().var(unbiased=False)
    naive = torch.cat(parts).square().mean() - torch.cat(parts).mean().square()
    assert abs((m2 / n).item() - exact.item()) < 1e-3 * exact.item()
    assert abs(naive.item() - exact.item()) > 0.05 * exact.item()  # the formula we do not use


def test_local_rows_split_the_batch_evenly():
    idx = torch.arange(10)
    parts = [local_rows(idx, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [4, 3, 3] and torch.equal(torch.cat(parts), idx)


def test_outside_a_process_group_it_is_plain_bn():
    x = torch.randn(8, 4, dtype=D)
    a, b = BatchNorm(4, dtype=D), SyncBatchNorm(4, dtype=D)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    torch.testing.assert_close(a.running_var, b.running_var, rtol=0, atol=0)


def test_convert_keeps_parameters_and_buffers():
    from bnpaper import models

    m = models.convnet(bn=True)
    torch.nn.init.normal_(m[1].weight)
    m[1].running_mean.fill_(0.5)
    c = SyncBatchNorm.convert_sync_batchnorm(m)
    bns = [mod for mod in c.modules() if isinstance(mod, SyncBatchNorm)]
    assert len(bns) == len([mod for mod in m.modules() if isinstance(mod, BatchNorm)]) > 0
    torch.testing.assert_close(bns[0].weight, m[1].weight)
    assert bns[0].running_mean.eq(0.5).all()
    t = SyncBatchNorm.convert_sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))
    assert isinstance(t[0], SyncBatchNorm)


def test_write_atomic_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    write_atomic(target, b"old")

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


# ----------------------------------------------------------------------------- replicas (module-level)


def _global_batch(sizes, C, spatial, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), C, *spatial, dtype=D, generator=g) * 3 + 2
    dy = torch.randn(x.shape, dtype=D, generator=g)
    gamma = torch.rand(C, dtype=D, generator=g) + 0.5
    beta = torch.randn(C, dtype=D, generator=g)
    return x, dy, gamma, beta


def _mine(t, sizes):
    r = dist.get_rank()
    start = sum(sizes[:r])
    return t[start : start + sizes[r]]


def _layer(cls, gamma, beta):
    """A BN layer of either kind with the given gamma and beta (momentum 0.1, float64)."""
    bn = cls(len(gamma), momentum=0.1, dtype=D)
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    return bn


def replica_equality(sizes, C, spatial, seed):
    """One training step of SyncBatchNorm on this rank's rows: output, gradients, running statistics."""
    x, dy, gamma, beta = _global_batch(sizes, C, spatial, seed)
    bn = _layer(SyncBatchNorm, gamma, beta)
    xr = _mine(x, sizes).clone().requires_grad_(True)
    y = bn(xr)
    y.backward(_mine(dy, sizes))
    gw, gb = bn.weight.grad.clone(), bn.bias.grad.clone()
    dist.all_reduce(gw)  # the gradient of the sum of every replica's loss
    dist.all_reduce(gb)
    bn.eval()
    y_eval = bn(_mine(x, sizes))
    return {
        "y": y.detach(),
        "dx": xr.grad,
        "dgamma": gw,
        "dbeta": gb,
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
        "y_eval": y_eval.detach(),
    }


def replica_gradcheck(sizes, C):
    """torch.autograd.gradcheck of the global map (x, gamma, beta) -> y across the replicas.

    Every replica evaluates the same function of the whole batch: it keeps its rows, runs synchronized
    BN, and all-gathers the outputs. The gather's backward hands each replica its rows of the output
    gradient (every replica holds the same one), the row selection's backward all-gathers the input
    gradients, and gamma / beta sum their replicas' gradients as DDP does; so the analytic Jacobian is
    synchronized BN's hand-derived backward over the process group, checked against finite differences
    of the forward, in lockstep on every replica."""

    class Rows(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return _mine(t, sizes).clone()

        @staticmethod
        def backward(ctx, g):
            parts = [torch.zeros(n, *g.shape[1:], dtype=g.dtype) for n in sizes]
            _gather_uneven(parts, g)
            return torch.cat(parts)

    class Gather(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            parts = [torch.zeros(n, *t.shape[1:], dtype=t.dtype) for n in sizes]
            _gather_uneven(parts, t)
            return torch.cat(parts)

        @staticmethod
        def backward(ctx, g):
            return _mine(g, sizes).clone()

    class Shared(torch.autograd.Function):  # a replicated parameter: gradients summed over replicas
        @staticmethod
        def forward(ctx, t):
            return t.clone()

        @staticmethod
        def backward(ctx, g):
            g = g.clone()
            dist.all_reduce(g)
            return g

    from bnpaper.sync import sync_batch_norm_train

    def fn(x, gamma, beta):
        y, *_ = sync_batch_norm_train(Rows.apply(x), Shared.apply(gamma), Shared.apply(beta), 1e-5)
        return Gather.apply(y)

    x, _, gamma, beta = _global_batch(sizes, C, (), seed=3)
    inputs = (x.requires_grad_(True), gamma.requires_grad_(True), beta.requires_grad_(True))
    return torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


def _gather_uneven(parts, t):
    """all_gather of different-sized rows: pad to the largest, gather, cut."""
    big = max(p.shape[0] for p in parts)
    pad = torch.zeros(big, *t.shape[1:], dtype=t.dtype)
    pad[: t.shape[0]] = t
    out = [torch.zeros_like(pad) for _ in parts]
    dist.all_gather(out, pad)
    for p, o in zip(parts, out):
        p.copy_(o[: p.shape[0]])


def replica_dies(rank_to_die):
    """One replica exits before the statistics' all-gather; the other must get ReplicaError."""
    if dist.get_rank() == rank_to_die:
        os._exit(3)
    bn = SyncBatchNorm(2, dtype=D)
    t0 = time.monotonic()
    try:
        bn(torch.randn(4, 2, dtype=D))
    except DistributedError as e:
        return {"error": str(e), "seconds": time.monotonic() - t0}
    return {"error": None}


def replica_double_backward():
    bn = SyncBatchNorm(2, dtype=D)
    x = torch.randn(4, 2, dtype=D, requires_grad=True)
    (g,) = torch.autograd.grad(bn(x).pow(3).sum(), x, create_graph=True)  # raises inside the backward
    return g


def reference(sizes, C, spatial, seed):
    x, dy, gamma, beta = _global_batch(sizes, C, spatial, seed)
    bn = _layer(BatchNorm, gamma, beta)
    xr = x.clone().requires_grad_(True)
    y = bn(xr)
    y.backward(dy)
    bn.eval()
    return x, y.detach(), xr.grad, bn


# ----------------------------------------------------------------------------- tests with processes


@pytest.mark.parametrize(
    "sizes,spatial",
    [((4, 4), ()), ((5, 2), (3, 2)), ((1, 6), ()), ((0, 5), (2,))],
    ids=["even", "uneven-conv", "one-example", "empty-replica"],
)
def test_two_replicas_equal_one_process(sizes, spatial):
    C, seed = 3, 7
    got = launch(replica_equality, 2, sizes, C, spatial, seed)
    x, y, dx, bn = reference(sizes, C, spatial, seed)
    tol = {"rtol": 0, "atol": 1e-12}
    torch.testing.assert_close(torch.cat([r["y"] for r in got]), y, **tol)
    torch.testing.assert_close(torch.cat([r["dx"] for r in got]), dx, **tol)
    for r in got:
        torch.testing.assert_close(r["dgamma"], bn.weight.grad, **tol)
        torch.testing.assert_close(r["dbeta"], bn.bias.grad, **tol)
        torch.testing.assert_close(r["running_mean"], bn.running_mean, **tol)
        torch.testing.assert_close(r["running_var"], bn.running_var, **tol)
    torch.testing.assert_close(torch.cat([r["y_eval"] for r in got]), bn(x).detach(), **tol)


@pytest.mark.parametrize("sizes", [(3, 3), (2, 4)], ids=["even", "uneven"])
def test_gradcheck_across_processes(sizes):
    assert launch(replica_gradcheck, 2, sizes, 2) == [True, True]


def test_a_dead_replica_gives_a_clear_error_in_bounded_time():
    t0 = time.monotonic()
    with pytest.raises(DistributedError, match="replica 1 .* died|replica 1 .*exited"):
        launch(replica_dies, 2, 1, timeout_s=60, group_timeout_s=5)
    assert time.monotonic() - t0 < 60


def test_double_backward_says_it_is_not_implemented():
    with pytest.raises(DistributedError, match="double backward .* not implemented"):
        launch(replica_double_backward, 2)


def test_a_rendezvous_that_never_completes_times_out():
    """Only one of two processes starts: init raises DistributedError after its timeout, no hang."""
    from bnpaper.distributed import free_port, init

    t0 = time.monotonic()
    with pytest.raises(DistributedError, match="did not complete within 2 s"):
        init("gloo", 2.0, init_method=f"tcp://127.0.0.1:{free_port()}?rank=0&world_size=2")
    assert time.monotonic() - t0 < 30
    assert not dist.is_initialized()


def test_without_torchrun_the_entry_point_names_the_fix():
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    }
    r = subprocess.run(
        [sys.executable, "-m", "bnpaper.distributed", "--steps", "1"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 2 and "torchrun --nproc-per-node" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "bnpaper.distributed", "--bn", "ghost"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "invalid choice: 'ghost'" in r.stderr


@pytest.mark.parametrize("bn", ["sync", "local"])
def test_torchrun_trains_two_replicas(tmp_path, bn):
    """The README's command on this machine: 2 gloo processes, DDP, rank 0 writes the results."""
    out = tmp_path / bn
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "bnpaper.distributed", "--bn", bn, "--steps", "20", "--eval-every", "10"]
    cmd += ["--global-batch", "30", "--out", str(out), "--timeout", "30"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "result.json").read_text())
    assert res["world_size"] == 2 and res["backend"] == "gloo" and res["local_batches"] == [15, 15]
    assert res["history"]["steps"] == [10, 20] and 0.1 < res["final_val_acc"] <= 1
    state = torch.load(out / "model.pt", weights_only=True)
    assert any(k.endswith("running_var") for k in state)
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "result.json"]  # no temporary left


def test_sync_benchmark_reports_ratios_measured_in_one_run():
    """The benchmark's plumbing (not its speed): both timings come from the same launch, as ratios."""
    from bnpaper.bench import format_sync_table, sync_bench

    res = sync_bench(processes=2, repeats=20, warmup=1, shapes=[(8, 4)])
    (row,) = res["rows"]
    assert row["single_ms"] > 0 and row["sync_ms"] > 0 and 0 < row["comm_share"]
    assert row["sync_over_single"] == pytest.approx(row["sync_ms"] / row["single_ms"])
    assert "x single" in format_sync_table(res)
    with pytest.raises(ValueError, match="repeats must be >= 20"):
        sync_bench(repeats=5)
