"""Data-parallel training across processes, with per-replica or synchronized BN.

Two ways in:

* `torchrun --nproc-per-node N -m bnpaper.distributed --bn sync ...` trains one of the book's networks
  with DistributedDataParallel on N processes (gloo on CPU, NCCL on GPU), on one machine or many
  (`--nnodes`, `--rdzv-endpoint`, see the README). Rank 0 alone writes the result and the checkpoint,
  each atomically (a temporary file renamed into place).
* `launch(fn, nprocs, *args)` starts N local processes with a gloo group and returns what `fn(*args)`
  returned on each rank; the tests, the benchmark and the chapter use it.

Every wait is bounded: the rendezvous and every collective time out after `timeout_s`, and `launch`
kills the replicas after its own deadline, so a dead replica gives an error that names it, not a hang.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bnpaper.errors import DistributedError
from bnpaper.sync import SyncBatchNorm

DEFAULT_TIMEOUT_S = 60.0
BN_MODES = ("sync", "local", "none")
ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# ----------------------------------------------------------------------------- process groups


def backend_for(device: str) -> str:
    """gloo for CPU tensors, NCCL for CUDA ones (NCCL needs a GPU; gloo serves both)."""
    return "nccl" if device == "cuda" else "gloo"


def init(backend: str = "gloo", timeout_s: float = DEFAULT_TIMEOUT_S, init_method: str = "env://") -> None:
    """Join the process group; a rendezvous that does not complete within timeout_s raises."""
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' (CPU) or 'nccl' (GPU), got {backend!r}")
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError("backend 'nccl' needs CUDA GPUs, and torch sees none: use --device cpu (gloo)")
    if init_method == "env://":
        missing = [k for k in ENV if k not in os.environ]
        if missing:
            raise DistributedError(
                f"no process group to join: {', '.join(missing)} not set. Start the replicas with torchrun, "
                "e.g. `torchrun --nproc-per-node 2 -m bnpaper.distributed --bn sync`"
            )
    try:
        dist.init_process_group(backend, init_method=init_method, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as e:  # DistStoreError / DistNetworkError are RuntimeErrors
        where = (
            init_method
            if init_method != "env://"
            else (f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}")
        )
        raise DistributedError(
            f"the rendezvous at {where} did not complete within {timeout_s:g} s "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Every one of the "
            f"{os.environ.get('WORLD_SIZE', '?')} processes must start and reach the same endpoint; "
            "check --nproc-per-node / --nnodes and --rdzv-endpoint."
        ) from e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica(rank: int, world: int, port: int, timeout_s: float, out_dir: str, fn, args) -> None:
    """One spawned replica: join the group, run fn, save its result (or its error) for the parent."""
    torch.set_num_threads(1)  # N replicas on N cores
    out = Path(out_dir) / f"rank{rank}.pt"
    try:
        init("gloo", timeout_s, init_method=f"tcp://127.0.0.1:{port}?rank={rank}&world_size={world}")
        result = fn(*args)
        torch.save({"ok": True, "result": result}, out)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises
        torch.save({"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}, out)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(fn, nprocs: int = 2, *args, timeout_s: float = 120.0, group_timeout_s: float = 30.0) -> list:
    """Run fn(*args) on nprocs fresh local processes joined in one gloo group; returns the list of
    per-rank results. fn must be importable (a module-level function). A replica that raises, dies
    or outlives timeout_s stops the others, and DistributedError names it."""
    if not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"nprocs must be a positive int, got {nprocs!r}")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bnpaper-launch-") as tmp:
        ctx = mp.start_processes(
            _replica,
            args=(nprocs, port, group_timeout_s, tmp, fn, args),
            nprocs=nprocs,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + timeout_s
        try:
            while not ctx.join(timeout=0.2):
                if time.monotonic() > deadline:
                    raise DistributedError(
                        f"{nprocs} replicas of {fn.__name__} did not finish within {timeout_s:g} s; "
                        "they were stopped"
                    )
        except mp.ProcessExitedException as e:
            raise DistributedError(
                f"replica {e.error_index} of {fn.__name__} died (exit code {e.exit_code}) before reporting; "
                "the others were stopped"
            ) from None
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
                    p.join(5)
        results = []
        for r in range(nprocs):
            path = Path(tmp) / f"rank{r}.pt"
            if not path.exists():
                raise DistributedError(f"replica {r} of {fn.__name__} exited without a result")
            rec = torch.load(path, weights_only=False)
            if not rec["ok"]:
                raise DistributedError(f"replica {r} of {fn.__name__} failed: {rec['error']}")
            results.append(rec["result"])
        return results


# ----------------------------------------------------------------------------- training entry point


@dataclass
class DistConfig:
    model: str = "mlp"  # "mlp" (Sec. 4.1's network, ReLU) or "convnet"
    bn: str = "sync"  # "sync" (statistics over the global batch), "local" (per replica) or "none"
    global_batch: int = 64  # examples per step over all replicas, split as evenly as possible
    steps: int = 200
    lr: float = 0.1
    momentum: float = 0.9
    seed: int = 0
    eval_every: int = 50
    device: str = "cpu"
    data_dir: str = ""
    out: str = "_build/distributed"
    timeout_s: float = DEFAULT_TIMEOUT_S

    def check(self) -> None:
        if self.bn not in BN_MODES:
            raise ValueError(f"bn must be one of {', '.join(BN_MODES)}, got {self.bn!r}")
        if self.model not in ("mlp", "convnet"):
            raise ValueError(f"model must be 'mlp' or 'convnet', got {self.model!r}")
        for name in ("global_batch", "steps", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout must be > 0 s, got {self.timeout_s}")


def local_rows(idx: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This replica's share of one global batch: contiguous, sizes differing by at most one."""
    return torch.tensor_split(idx, world)[rank]


def write_atomic(path: Path, data: bytes) -> None:
    """Rank 0's results: written beside the target, then renamed into place (`cache.write_bytes_atomic`)."""
    from bnpaper.cache import write_bytes_atomic

    write_bytes_atomic(path, data)


def train_ddp(tc, bn: str = "sync", local_rank: int = 0) -> dict:
    """Train `tc` (a bnpaper.train.TrainConfig, its batch_size the global batch) with DDP under an
    initialized process group, in the order `bnpaper.train.train` takes its steps: the same initial
    weights, the same global batches, each replica keeping its share (`local_rows`). bn: "sync"
    converts every BN to SyncBatchNorm, "local" keeps per-replica statistics, "none" needs tc.bn off.
    Returns the history and the trained state (on every replica; DDP keeps the weights equal)."""
    import torch.nn.functional as TF
    from torch.nn.parallel import DistributedDataParallel as DDP

    from bnpaper import data as data_mod
    from bnpaper import train as train_mod

    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
    if (bn == "none") == tc.bn:
        raise ValueError(f"bn={bn!r} and the network's bn={tc.bn} disagree")
    rank, world = dist.get_rank(), dist.get_world_size()
    if world > tc.batch_size:
        raise ValueError(
            f"global batch {tc.batch_size} is smaller than the {world} replicas: each needs an example"
        )
    device = torch.device("cuda", local_rank) if tc.device == "cuda" else torch.device("cpu")
    dtype = train_mod.model_dtype(tc)
    ds = data_mod.load(tc.data_dir)
    torch.manual_seed(tc.seed)  # the same initial weights on every replica (DDP also broadcasts rank 0's)
    model = train_mod.build_model(tc)
    if bn == "sync":
        model = SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    x_tr, y_tr = ds.x_train.to(device, dtype), ds.y_train.to(device)
    x_va, y_va = ds.x_val.to(device, dtype), ds.y_val.to(device)
    g = torch.Generator().manual_seed(tc.seed)  # the same global batches on every replica
    it = train_mod.batches(len(y_tr), tc.batch_size, g)
    hist = {"steps": [], "loss": [], "val_acc": [], "diverged": False, "diverged_at": None}
    t0 = time.perf_counter()
    for step in range(1, tc.steps + 1):
        rows = local_rows(next(it), rank, world).to(device)
        # this replica's sum / the global batch, times W: DDP's average of the replicas' gradients
        # is then the gradient of the global batch's mean loss, even for uneven shares
        loss_sum = TF.cross_entropy(ddp(x_tr[rows]), y_tr[rows], reduction="sum")
        opt.zero_grad(set_to_none=True)
        (loss_sum * (world / tc.batch_size)).backward()
        opt.step()
        total = loss_sum.detach().clone()
        dist.all_reduce(total)  # the global batch's loss, the same on every replica
        value = total.item() / tc.batch_size
        if not math.isfinite(value):
            hist["diverged"], hist["diverged_at"] = True, step
            break
        if step % tc.eval_every == 0 or step == tc.steps:
            hist["steps"].append(step)
            hist["loss"].append(value)
            hist["val_acc"].append(train_mod.accuracy(model, x_va, y_va))
    hist["train_seconds"] = time.perf_counter() - t0
    hist["final_val_acc"] = hist["val_acc"][-1] if hist["val_acc"] and not hist["diverged"] else None
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"history": hist, "state": state, "data": ds.describe()}


def train(cfg: DistConfig) -> dict | None:
    """The command line's run: rank 0 writes result.json and model.pt (atomically) and returns the
    result; the other replicas return None."""
    import io

    from bnpaper.train import TrainConfig

    tc = TrainConfig(
        model=cfg.model,
        bn=cfg.bn != "none",
        activation="relu",
        batch_size=cfg.global_batch,
        steps=cfg.steps,
        lr=cfg.lr,
        momentum=cfg.momentum,
        seed=cfg.seed,
        eval_every=cfg.eval_every,
        data_dir=cfg.data_dir,
        device=cfg.device,
    )
    out = train_ddp(tc, cfg.bn, int(os.environ.get("LOCAL_RANK", 0)))
    dist.barrier()
    if dist.get_rank() != 0:
        return None
    world = dist.get_world_size()
    hist = out["history"]
    result = {
        "config": asdict(cfg),
        "world_size": world,
        "backend": dist.get_backend(),
        "local_batches": [len(local_rows(torch.arange(cfg.global_batch), r, world)) for r in range(world)],
        "train_seconds": hist.pop("train_seconds"),
        "final_val_acc": hist.pop("final_val_acc"),
        "history": hist,
        "data": out["data"],
    }
    buf = io.BytesIO()
    torch.save(out["state"], buf)
    write_atomic(Path(cfg.out) / "model.pt", buf.getvalue())
    write_atomic(Path(cfg.out) / "result.json", json.dumps(result, indent=1).encode())
    return result


def parse_args(argv: list[str] | None = None) -> DistConfig:
    d = DistConfig()
    p = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m bnpaper.distributed",
        description="Train one of the book's networks with DDP and per-replica or synchronized BN.",
    )
    p.add_argument("--model", choices=("mlp", "convnet"), default=d.model)
    p.add_argument(
        "--bn", choices=BN_MODES, default=d.bn, help="sync: global-batch statistics; local: per replica"
    )
    p.add_argument("--global-batch", type=int, default=d.global_batch)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--device", choices=("cpu", "cuda"), default=d.device)
    p.add_argument("--data-dir", default=d.data_dir, help="MNIST IDX folder (default: embedded 5k digits)")
    p.add_argument("--out", default=d.out, help="rank 0 writes result.json and model.pt here")
    p.add_argument(
        "--timeout", type=float, default=d.timeout_s, help="seconds a rendezvous or collective may wait"
    )
    a = p.parse_args(argv)
    cfg = DistConfig(
        model=a.model,
        bn=a.bn,
        global_batch=a.global_batch,
        steps=a.steps,
        lr=a.lr,
        seed=a.seed,
        eval_every=a.eval_every,
        device=a.device,
        data_dir=a.data_dir,
        out=a.out,
        timeout_s=a.timeout,
    )
    try:
        cfg.check()
    except ValueError as e:
        p.error(str(e))
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        init(backend_for(cfg.device), cfg.timeout_s)
        if cfg.device == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.get_world_size()))
        else:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        result = train(cfg)
    except (DistributedError, ValueError) as e:
        print(f"bnpaper.distributed (rank {os.environ.get('RANK', '?')}): {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if result is not None:
        acc = result["final_val_acc"]
        print(
            f"{cfg.bn} BN, {result['world_size']} replicas ({result['backend']}), local batches "
            f"{result['local_batches']}: validation accuracy {acc if acc is None else round(acc, 4)} after "
            f"{cfg.steps} steps in {result['train_seconds']:.1f} s; wrote {Path(cfg.out) / 'result.json'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
