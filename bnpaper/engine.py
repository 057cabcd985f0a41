"""Many training runs as one computation: R runs of one network, batched with torch.func.

The networks in `bnpaper.models` are written once, for one run. This module stacks R copies of
a network's parameters and buffers (`torch.func.stack_module_state`) and runs the forward pass of
all R at once with `torch.func.vmap(functional_call(...))`: a Linear becomes a batched matmul, a
Conv2d a grouped convolution, and bnpaper's BN normalizes each run's channels over that run's
mini-batch only (its autograd Functions carry a vmap rule). The runs stay independent:

* initialization: run r builds its model after ``torch.manual_seed(seed_r)``, as `train.train` does;
* batch order: run r draws its mini-batches from its own generator seeded with seed_r;
* dropout masks: each run draws them from its own generator (`models.Dropout`);
* hyperparameters: lr, momentum, weight decay, lr decay factor, init std and dropout rate may
  differ per run (`BATCHABLE`); everything else must agree (`group_key`);
* divergence: a run whose loss turns NaN or inf is frozen at that step (its weights and BN
  statistics kept as they were; its momentum is dropped, it never trains again) and recorded as
  diverged there; the others go on.

SGD with momentum and weight decay is applied to the stacked parameters with the same update as
torch.optim.SGD (dampening 0, no Nesterov), with a learning rate per run. The loop does not
synchronize with the host per step: losses and accuracies stay on the device, divergence is
checked on the device, and the host looks only every `check_every` steps (to stop when every run
has diverged) and at the end.

`tests/test_engine.py` holds run r of a batched training to a separate `train.train` with the same
config to 1e-9 in float64: losses, weights and running statistics.

TrainConfig.step = "compiled" runs the same step through torch.compile (`batched_loss`,
`_compiled_update`): BN in plain operations (impl="traced") so that AOTAutograd derives and fuses
the backward, and the SGD update as one loop. It equals the eager step to 1e-9 in float64 and to
float32 rounding for the MLP (tests/test_engine.py); the eager step stays the default, the reference
and the fallback. `bnpaper bench --train` gives its speed and compile cost (BENCHMARKS.md).
"""

from __future__ import annotations

import concurrent.futures
import copy
import ctypes
import dataclasses
import functools
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as TF
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from bnpaper import cache, cpus
from bnpaper import data as data_mod
from bnpaper.autograd import has_compiler
from bnpaper.device import resolve_device
from bnpaper.errors import ConfigError, EnvironmentProblem
from bnpaper.models import BNNoise, Dropout
from bnpaper.progress import progress
from bnpaper.train import (
    TrainConfig,
    autocast,
    build_model,
    dropout_generator,
    model_dtype,
    noise_generator,
    run_batches,
    train,
)

# Networks whose runs train batched. `bnpaper bench --train` on a 2-core CPU (BENCHMARKS.md): 10 MLP
# runs batched give 1.6x one run at a time per thread (1.8x that again compiled), while a conv net's
# runs batched cost more than one by one (0.3-0.5x per thread: a grouped convolution over R runs is
# no cheaper than R convolutions, and BN's passes, 38% of a conv-net step, grow with R), so their
# runs train one by one, spread over the worker processes.
BATCHED_MODELS = ("mlp",)

# TrainConfig fields that may differ between the runs of one batched computation
BATCHABLE = ("seed", "lr", "momentum", "weight_decay", "lr_decay_factor", "init_std", "dropout")


def group_key(cfg: TrainConfig) -> tuple:
    """Runs with equal keys share one network shape and one schedule: they can be batched.

    Dropout's rate may differ, but a network with dropout has a layer one without lacks.
    """
    fields = dataclasses.asdict(cfg)
    for name in BATCHABLE:
        fields.pop(name)
    fields["has_dropout"] = cfg.dropout > 0
    return tuple(sorted((k, repr(v)) for k, v in fields.items()))


def groups(cfgs: Sequence[TrainConfig]) -> list[list[int]]:
    """Indices of cfgs, grouped by `group_key`, in order of first appearance."""
    out: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        out.setdefault(group_key(cfg), []).append(i)
    return list(out.values())


class Runs:
    """R models of one architecture as stacked parameters and buffers.

    The parameters live in one leaf tensor `flat` (R, P) and the floating-point buffers in one
    tensor `flat_buffers` (R, B); `params` and `buffers` are views (R, ...) into them by name. One
    gradient, one SGD update and one divergence mask then act on all parameters of all runs at
    once, instead of a few tensor operations per parameter tensor per step.

    `forward(x)` runs every model on its own input x[r] (or all on the same x with shared_input);
    `prefix(x, k)` runs only the first k modules of a Sequential (e.g. up to a layer whose input
    a chapter tracks). Train / eval mode is the template module's, set by `train(mode)`.
    """

    def __init__(self, models: Sequence[nn.Module]):
        self.R = len(models)
        params, buffers = stack_module_state(list(models))  # {name: (R, ...)}
        self.layout = _layout(params)
        self.flat = torch.cat([params[n].detach().reshape(self.R, -1) for n, *_ in self.layout], 1)  # (R, P)
        floats = {k: v for k, v in buffers.items() if v.is_floating_point()}
        self.buffer_layout = _layout(floats)
        pieces = [floats[n].reshape(self.R, -1) for n, *_ in self.buffer_layout]
        self.flat_buffers = torch.cat(pieces, 1) if pieces else self.flat.new_zeros(self.R, 0).detach()
        self.buffers = {**_views(self.flat_buffers, self.buffer_layout)}  # in-place updates land in flat
        self.buffers.update({k: v for k, v in buffers.items() if not v.is_floating_point()})
        self.template = copy.deepcopy(models[0]).to("meta")
        self.dropouts = [name for name, m in self.template.named_modules() if isinstance(m, Dropout)]
        self.noises = {
            n: (m.scale.numel(), m.level) for n, m in self.template.named_modules() if isinstance(m, BNNoise)
        }
        self.masks: dict[str, torch.Tensor] = {}  # per step: {"<dropout>.mask": (R, ...)}

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """{name: (R, ...)} views of `flat`."""
        return _views(self.flat, self.layout)

    def leaf_params(self) -> dict[str, torch.Tensor]:
        """Views of `flat` as leaves that require grad: a step's gradient, per name, then `flat_grad`."""
        return {k: v.requires_grad_() for k, v in self.params.items()}

    def flat_grad(self, grads: Sequence[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
        """Per-name gradients (R, ...) laid out like `flat`: (R, P), one copy (into out if given)."""
        return torch.cat([g.reshape(self.R, -1) for g in grads], 1, out=out)

    def train(self, mode: bool = True) -> Runs:
        self.template.train(mode)
        return self

    def forward(self, x: torch.Tensor, shared_input: bool = False) -> torch.Tensor:
        """(R, N, ...) -> (R, N, out), or (N, ...) -> (R, N, out) with shared_input."""
        return self._vmapped(self.template, "", x, shared_input)

    def prefix(self, x: torch.Tensor, k: int, shared_input: bool = False) -> torch.Tensor:
        """Output of the first k modules of the (Sequential) template, per run."""
        out = x
        for i, module in enumerate(list(self.template)[:k]):
            out = self._vmapped(module, f"{i}.", out, shared_input and i == 0)
        return out

    def _vmapped(self, module: nn.Module, prefix: str, x: torch.Tensor, shared_input: bool) -> torch.Tensor:
        n = len(prefix)
        params = {k[n:]: v for k, v in self.params.items() if k.startswith(prefix)}
        buffers = {k[n:]: v for k, v in {**self.buffers, **self.masks}.items() if k.startswith(prefix)}
        if shared_input and not params and not buffers:  # a stateless module (Flatten): same for every run
            out = module(x)
            return out.unsqueeze(0).expand(self.R, *out.shape)
        fn = lambda p, b, x: functional_call(module, (p, b), (x,))  # noqa: E731
        return vmap(fn, in_dims=(0, 0, None if shared_input else 0), randomness="error")(params, buffers, x)

    def unstack(self, models: Sequence[nn.Module]) -> list[nn.Module]:
        """Copy run r's parameters and buffers into models[r]."""
        with torch.no_grad():
            for r, model in enumerate(models):
                keys = model.state_dict().keys()  # non-persistent buffers (BNNoise's draw) stay out
                state = {k: v[r] for k, v in {**self.params, **self.buffers}.items() if k in keys}
                model.load_state_dict(state)
        return list(models)


def _layout(tensors: dict[str, torch.Tensor]) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """(name, start, stop, per-run shape) of each (R, ...) tensor laid end to end in a (R, total) one."""
    out, start = [], 0
    for name, t in tensors.items():
        size = t[0].numel()
        out.append((name, start, start + size, tuple(t.shape[1:])))
        start += size
    return out


def _views(flat: torch.Tensor, layout) -> dict[str, torch.Tensor]:
    return {name: flat[:, a:b].view(flat.shape[0], *shape) for name, a, b, shape in layout}


@torch.no_grad()
def accuracy(runs: Runs, x: torch.Tensor, y: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Eval-mode accuracy of every run on the same (x, y): (R,) on the device, no host sync."""
    was = runs.template.training
    runs.train(False)
    correct = torch.zeros(runs.R, dtype=torch.float64, device=x.device)
    saved, runs.masks = runs.masks, {}
    for i in range(0, len(y), chunk):
        logits = runs.forward(x[i : i + chunk], shared_input=True)  # (R, n, 10)
        correct += (logits.argmax(-1) == y[i : i + chunk]).sum(-1)
    runs.masks = saved
    runs.train(was)
    return correct / len(y)


def _per_run(cfgs: Sequence[TrainConfig], name: str, device) -> torch.Tensor:
    return torch.tensor([float(getattr(c, name)) for c in cfgs], dtype=torch.float64, device=device)


def train_many(
    cfgs: Sequence[TrainConfig],
    on_step: Callable[[int, Runs], None] | None = None,
    desc: str = "train",
    check_every: int = 50,
    workers: int | None = None,
    batch: bool | None = None,
) -> list[tuple[nn.Module, dict]]:
    """Train every config; returns [(model, history)] in the order given, as `train.train` would.

    Configs are grouped by `group_key`. A group of a network in BATCHED_MODELS (or any group with
    batch=True, on a GPU, or with on_step) trains as one batched computation, cut into as many
    chunks as there are workers (default: `pool_size()`, the CPUs free now); the other networks'
    runs train one per task with the plain loop. Tasks run in worker processes of one torch
    thread each; runs are independent, so the chunking changes no result.
    on_step(step, runs) is called after every step with the group's `Runs` (all runs, alive or
    not); it needs the runs in this process, so it trains here, and takes one group only.
    batch: None batches the networks in BATCHED_MODELS only; True batches every group.
    """
    if not cfgs:
        return []
    if on_step is not None and len(groups(cfgs)) > 1:
        raise ConfigError(
            "train_many: on_step sees one group's runs (indices 0..R-1 of that group); got configs that "
            f"form {len(groups(cfgs))} groups. Call train_many once per group (see engine.group_key)."
        )
    on_gpu = resolve_device(cfgs[0].device).type == "cuda"  # a GPU: every group batched, in this process
    n_workers = 1 if on_step is not None or on_gpu else (workers or pool_size())
    tasks = []
    for idx in groups(cfgs):
        batched = batch or on_step is not None or on_gpu or cfgs[idx[0]].model in BATCHED_MODELS
        tasks += _chunks(idx, n_workers) if batched else [[i] for i in idx]
    out: list[tuple[nn.Module, dict] | None] = [None] * len(cfgs)
    if n_workers == 1 or len(tasks) == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(min(threads, n_workers) if on_step is None else threads)
        try:
            for idx in tasks:
                chunk = [cfgs[i] for i in idx]
                for i, res in zip(idx, _train_chunk(chunk, on_step, desc, check_every, batch)):
                    out[i] = res
        finally:
            torch.set_num_threads(threads)
        return out  # type: ignore[return-value]
    args = [([cfgs[i] for i in idx], desc, check_every, batch) for idx in tasks]
    for idx, results in zip(tasks, _run_in_pool(_worker, args, n_workers)):
        for i, (state, hist) in zip(idx, results):
            model = build_model(cfgs[i]).to(resolve_device(cfgs[i].device))
            model.load_state_dict(state)
            out[i] = (model, hist)
    return out  # type: ignore[return-value]


def _chunks(idx: list[int], n: int) -> list[list[int]]:
    """idx cut into at most n contiguous chunks of nearly equal size."""
    n = max(1, min(n, len(idx)))
    size, extra = divmod(len(idx), n)
    out, start = [], 0
    for k in range(n):
        stop = start + size + (k < extra)
        out.append(idx[start:stop])
        start = stop
    return out


def _train_chunk(cfgs: list[TrainConfig], on_step, desc: str, check_every: int, batch: bool | None = None):
    """One run alone of a network that is not batched trains with the plain loop (on the CPU, where
    its per-step host synchronisation costs nothing); the rest batched."""
    if not batch and on_step is None and len(cfgs) == 1 and cfgs[0].model not in BATCHED_MODELS:
        model, hist = train(cfgs[0], desc=desc)
        return [(model, {**hist, "batched_runs": 1})]
    return _train_group(cfgs, on_step, desc, check_every)


def _worker(
    cfgs: list[TrainConfig], desc: str, check_every: int, batch: bool | None
) -> list[tuple[dict, dict]]:
    """In a worker process: one torch thread, one chunk of runs; weights go back as state dicts."""
    torch.set_num_threads(1)
    return [(m.cpu().state_dict(), h) for m, h in _train_chunk(cfgs, None, desc, check_every, batch)]


_POOL: dict[int, concurrent.futures.ProcessPoolExecutor] = {}


def _pool(n: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of n spawned worker processes, kept for the life of this process (spawn, not fork:
    a forked child of a process whose OpenMP threads have run can hang)."""
    if n not in _POOL:
        for old in _POOL.values():
            old.shutdown(cancel_futures=True)
        _POOL.clear()
        ctx = multiprocessing.get_context("spawn")
        _POOL[n] = concurrent.futures.ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker)
    return _POOL[n]


def _die_with_parent() -> None:
    """On Linux, ask the kernel to kill this worker when the process that started it dies: a killed
    `bnpaper tune` or kernel must not leave its workers training on, orphaned, for the next job."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request: nothing to work for
        os._exit(1)


def _init_worker() -> None:
    _die_with_parent()
    # Ctrl-C, or the SIGINT a Jupyter kernel's process group gets when papermill stops it, is for
    # the parent: it cancels the tasks and shuts the pool down. A worker that took it too would
    # print a KeyboardInterrupt traceback per process into the build's log.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["BNPAPER_WORKERS"] = "1"  # a task in a worker trains in that worker: no pool in a pool
    torch.set_num_threads(1)


def map_tasks(fn: Callable, args_list: Sequence[tuple], workers: int | None = None) -> list:
    """[fn(*args) for args in args_list], the independent tasks spread over the worker processes
    (one torch thread each) when more than one CPU is free. fn must be a module-level function
    (it is pickled by name), e.g. one arm of a chapter's experiment."""
    n = min(workers or pool_size(), len(args_list))
    if n <= 1:
        return [fn(*args) for args in args_list]
    return _run_in_pool(fn, list(args_list), n)


def _run_in_pool(fn: Callable, args_list: list[tuple], n: int) -> list:
    """fn(*args) for each args in the worker pool, at most n in flight (a wider pool kept from
    earlier work must not run more tasks at once than there are free CPUs now), results in order.
    A task that fails cancels the rest; a pool whose worker died is dropped, so the next call
    starts a fresh one."""
    width = max([n, *_POOL])  # reuse a running pool (starting processes costs seconds each)
    pool = _pool(width)
    results: list = [None] * len(args_list)
    pending: dict[concurrent.futures.Future, int] = {}
    todo = iter(enumerate(args_list))
    try:
        while True:
            while len(pending) < n and (item := next(todo, None)) is not None:
                pending[pool.submit(fn, *item[1])] = item[0]
            if not pending:
                return results
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                results[pending.pop(fut)] = fut.result()
    except concurrent.futures.process.BrokenProcessPool as e:
        _POOL.pop(width, None)
        raise EnvironmentProblem(
            f"a bnpaper worker process died while running {fn.__name__} (out of memory, or killed): {e}. "
            "Run again; BNPAPER_WORKERS=1 trains in this process instead."
        ) from e
    finally:
        for fut in pending:
            fut.cancel()


def pool_size() -> int:
    """Worker processes to use: the CPUs free now (`bnpaper.cpus.free_cpus`)."""
    return cpus.free_cpus()


def trained(cfg: TrainConfig, desc: str = "train") -> tuple[nn.Module, dict]:
    """train(cfg), stored: one run through `trained_many` (the store keeps the weights and the
    history, so every chapter that needs the same network reuses one run)."""
    return trained_many([cfg], desc=desc)[0]


def trained_many(cfgs: Sequence[TrainConfig], desc: str = "train") -> list[tuple[nn.Module, dict]]:
    """train_many, through the store: a run already trained with the same config and the same
    source of the modules it uses is loaded (weights and history); only the others train."""
    keys = [cache.config_key("trained", c, __name__) for c in cfgs]
    hits = [cache.load("trained", k, tensors=True) for k in keys]
    todo = [i for i, h in enumerate(hits) if h is None]
    t0 = time.perf_counter()
    fresh = dict(zip(todo, train_many([cfgs[i] for i in todo], desc=desc)))
    wall = (time.perf_counter() - t0) / max(len(todo), 1)
    out = []
    for i, (cfg, key) in enumerate(zip(cfgs, keys)):
        if i in fresh:
            model, hist = fresh[i]
            record = {**cache.provenance("trained", cfg, __name__, wall), "result": hist}
            cache.save("trained", key, record, {k: v.cpu() for k, v in model.state_dict().items()})
            hist = {**hist, "_cache": {"hit": False, "key": key}}
        else:
            record, state = hits[i]
            model = build_model(cfg).to(resolve_device(cfg.device))
            model.load_state_dict(state)
            hist = {**record["result"], "_cache": {"hit": True, "key": key}}
        out.append((model, hist))
    return out


def _train_group(
    cfgs: list[TrainConfig], on_step, desc: str, check_every: int
) -> list[tuple[nn.Module, dict]]:
    cfg0 = cfgs[0]
    device = resolve_device(cfg0.device)
    ds = data_mod.load(cfg0.data_dir)
    models = []
    for cfg in cfgs:
        torch.manual_seed(cfg.seed)  # each run's own initialization, as train.train
        models.append(build_model(cfg).to(device))
    runs = Runs(models).train(True)
    R = runs.R
    dtype = model_dtype(cfg0)
    x_tr, y_tr = ds.x_train.to(device, dtype), ds.y_train.to(device)  # the data go to the device once
    x_va, y_va = ds.x_val.to(device, dtype), ds.y_val.to(device)  # evaluations read validation only
    its = run_batches(len(y_tr), cfg0.batch_size, [torch.Generator().manual_seed(c.seed) for c in cfgs])
    drop_gens = [dropout_generator(c.seed) for c in cfgs]
    noise_gens = [noise_generator(c.seed) for c in cfgs]
    mask_shapes = _dropout_shapes(models[0], x_tr[: cfg0.batch_size]) if runs.dropouts else {}

    col = lambda v: v.view(R, 1).to(runs.flat.dtype)  # noqa: E731 (R,) -> (R, 1) against (R, P)
    f64 = lambda v: v.view(R, 1)  # noqa: E731 lr and its decay stay float64, as StepLR's Python floats
    lr = f64(_per_run(cfgs, "lr", device))
    momentum = col(_per_run(cfgs, "momentum", device))
    wd = col(_per_run(cfgs, "weight_decay", device))
    decay = f64(_per_run(cfgs, "lr_decay_factor", device))
    p_drop = [c.dropout for c in cfgs]
    buf = torch.zeros_like(runs.flat)  # momentum buffer (R, P): 0 * momentum + d_p at the first step
    grad = torch.empty_like(runs.flat)  # (R, P), reused every step

    alive = torch.ones(R, dtype=torch.bool, device=device)
    diverged_at = torch.zeros(R, dtype=torch.long, device=device)
    loss_sum = torch.zeros(R, dtype=torch.float64, device=device)
    n_sum = torch.zeros(R, dtype=torch.float64, device=device)
    eval_steps, val_acc, losses = [], [], []

    loss_of = batched_loss(runs, cfg0.step)  # (params, buffers, x, y) -> (R,)
    update = _compiled_update() if _compiles(cfg0.step) else _sgd_update

    t0 = time.perf_counter()
    for step in progress(range(1, cfg0.steps + 1), desc=f"{desc} ({R} runs)"):
        idx = next(its).to(device)  # (R, m): each run's own batch order
        xb, yb = x_tr[idx], y_tr[idx]  # (R, m, ...), (R, m)
        if runs.dropouts:
            runs.masks = {
                f"{name}.mask": torch.stack(
                    [Dropout.draw_mask(mask_shapes[name], p, g, xb.dtype) for p, g in zip(p_drop, drop_gens)]
                ).to(device)
                for name in runs.dropouts
            }
        for name, (features, level) in runs.noises.items():  # noisy BN: each run's own new draw, passed
            draws = [BNNoise.draw(features, level, g) for g in noise_gens]  # like dropout's masks
            runs.masks[f"{name}.scale"] = torch.stack([d[0] for d in draws]).to(device, xb.dtype)
            runs.masks[f"{name}.shift"] = torch.stack([d[1] for d in draws]).to(device, xb.dtype)
        old_buffers = {k: v.clone() for k, v in runs.buffers.items() if not v.is_floating_point()}
        old_flat_buffers = runs.flat_buffers.clone()
        params = runs.leaf_params()
        with autocast(cfg0):  # precision 'bf16': the forward in bfloat16 (BN's statistics in float32)
            loss = loss_of(params, {**runs.buffers, **runs.masks}, xb, yb)  # (R,), float32 under autocast too
        finite = torch.isfinite(loss)
        diverged_at = torch.where(alive & ~finite, step, diverged_at)
        was_alive, alive = alive, alive & finite
        grads = torch.autograd.grad(loss.where(alive, 0.0).sum(), list(params.values()))
        with torch.no_grad():
            # SGD as torch.optim.SGD (d_p = g + wd p; buf = momentum buf + d_p; p -= lr buf), in place on
            # (R, P); a diverged run's step is zeroed, so it stays where it was (it never trains again)
            grad = runs.flat_grad(grads, out=grad)
            update(runs.flat, buf, grad, wd, momentum, lr, ~alive.view(R, 1))
            runs.flat_buffers.copy_(torch.where(was_alive.view(R, 1), runs.flat_buffers, old_flat_buffers))
            for name, old in old_buffers.items():
                runs.buffers[name].copy_(torch.where(was_alive, runs.buffers[name], old))
            if cfg0.lr_decay_every and step % cfg0.lr_decay_every == 0:  # as StepLR: lr *= factor
                lr = lr * decay
            loss_sum += torch.where(alive, loss.detach().double(), 0.0)
            n_sum += alive.double()
        if on_step is not None:
            on_step(step, runs)
        if step % cfg0.eval_every == 0 or step == cfg0.steps:
            eval_steps.append(step)
            val_acc.append(accuracy(runs, x_va, y_va))
            losses.append(loss_sum / n_sum.clamp(min=1))
            loss_sum, n_sum = torch.zeros_like(loss_sum), torch.zeros_like(n_sum)
        if step % check_every == 0 and not bool(alive.any()):  # the host looks every check_every steps
            break
    seconds = time.perf_counter() - t0
    runs.masks = {}
    final_val = accuracy(runs, x_va, y_va).tolist()
    final_test = (  # the test set, read once per final run, at its end
        accuracy(runs, ds.x_test.to(device, dtype), ds.y_test.to(device)).tolist()
        if cfg0.read_test
        else [None] * R
    )
    final_train = accuracy(runs, x_tr, y_tr).tolist() if cfg0.final_train_acc else [None] * R
    models = runs.unstack([build_model(c).to(device) for c in cfgs])
    alive_l, div_l = alive.tolist(), diverged_at.tolist()
    acc_rows = torch.stack(val_acc).T.tolist() if val_acc else [[] for _ in range(R)]
    loss_rows = torch.stack(losses).T.tolist() if losses else [[] for _ in range(R)]
    out = []
    for r, cfg in enumerate(cfgs):
        stop = len(eval_steps) if alive_l[r] else sum(s < div_l[r] for s in eval_steps)
        hist = {
            "eval_steps": eval_steps[:stop],
            "val_acc": acc_rows[r][:stop],
            "loss_steps": eval_steps[:stop],
            "loss": loss_rows[r][:stop],
            "diverged": not alive_l[r],
            "diverged_at": None if alive_l[r] else div_l[r],
            "train_seconds": seconds / R,
            "final_val_acc": final_val[r] if alive_l[r] else None,
            "final_test_acc": final_test[r] if alive_l[r] else None,
            "final_train_acc": final_train[r] if alive_l[r] else None,
            "data": ds.describe(),
            "config": dataclasses.asdict(cfg),
            "batched_runs": R,
        }
        out.append((models[r], hist))
    return out


STEP_NOTICE = "TrainConfig.step = 'compiled'"


def _compiles(step: str) -> bool:
    """Whether a batched step runs compiled: asked for, and a C++ compiler there (else one notice)."""
    return step == "compiled" and has_compiler(STEP_NOTICE)


def _vmapped_loss(template: nn.Module) -> Callable:
    def loss_fn(p, b, x, y):  # one run: its parameters, buffers, mini-batch -> its mean loss
        return TF.cross_entropy(functional_call(template, (p, b), (x,)), y)

    return lambda params, buffers, x, y: vmap(loss_fn, randomness="error")(params, buffers, x, y)


def batched_loss(runs: Runs, step: str = "eager") -> Callable:
    """The R runs' losses (R,) as a function of (params, buffers, x, y), each {name: (R, ...)}.

    "eager" (the reference): vmap over functional_call of the template, whose BN layers carry the
    hand-derived backward. "compiled": the same network with its BN written in plain operations
    (impl="traced": the hand-written autograd Functions update tensors in place, which a compiled
    graph cannot contain) through torch.compile, whose AOTAutograd derives the backward and fuses
    it with the forward's elementwise work. Compiled once per network shape and number of runs
    (dynamic=False), in each process; where there is no C++ compiler the reference runs, with a
    notice. tests/test_engine.py holds the compiled step to the reference."""
    if not _compiles(step):
        return _vmapped_loss(runs.template)
    traced = copy.deepcopy(runs.template)
    for m in traced.modules():
        if hasattr(m, "impl"):
            m.impl = "traced"
    return torch.compile(_vmapped_loss(traced), dynamic=False)


def _sgd_update(flat, buf, grad, wd, momentum, lr, dead) -> None:
    """torch.optim.SGD's step (d_p = g + wd p; buf = momentum buf + d_p; p -= lr buf; dampening 0,
    no Nesterov), in place on (R, P); a diverged run's step is zeroed, so it stays where it was."""
    grad.addcmul_(flat, wd)
    buf.mul_(momentum).add_(grad).masked_fill_(dead, 0.0)
    flat.addcmul_(buf, torch.where(dead, 0.0, -lr).to(flat.dtype))


@functools.cache
def _compiled_update() -> Callable:
    """_sgd_update as one fused loop over (R, P) (torch.compile; compiled once per process)."""
    return torch.compile(_sgd_update, dynamic=False)


def _dropout_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The input shape each Dropout layer sees for one run's mini-batch x (one probe forward pass)."""
    shapes: dict[str, tuple[int, ...]] = {}
    probe = copy.deepcopy(model).train()
    hooks = [
        m.register_forward_pre_hook(lambda mod, inp, name=name: shapes.__setitem__(name, tuple(inp[0].shape)))
        for name, m in probe.named_modules()
        if isinstance(m, Dropout)
    ]
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, Dropout):
                m.generator = torch.Generator().manual_seed(0)
        probe(x)
    for h in hooks:
        h.remove()
    return shapes
