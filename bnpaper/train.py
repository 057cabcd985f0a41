"""One training loop for every experiment: SGD with momentum, seeded, divergence recorded.

A run whose loss becomes NaN or inf stops there and is recorded as diverged at that step: a
diverged run is a result, not a crash.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as TF
from torch import nn

from bnpaper import data as data_mod
from bnpaper import models
from bnpaper.device import resolve_device
from bnpaper.errors import ConfigError
from bnpaper.progress import progress


@dataclass
class TrainConfig:
    model: str = "convnet"  # "convnet" (two 3x3 conv blocks), "mlp" (Sec. 4.1's network) or "inception"
    bn: bool = True  # BN before every hidden nonlinearity (Sec. 3.2)
    activation: str = "relu"  # "relu" or "sigmoid"
    dropout: float = 0.0  # dropout after the last hidden layer (convnet) or every hidden layer (mlp)
    hidden: list[int] = field(default_factory=lambda: [100, 100, 100])  # mlp widths (Sec. 4.1)
    lr: float = 0.05  # SGD learning rate (not given by the paper for MNIST)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 0.0  # L2 penalty coefficient
    lr_decay_every: int = 0  # multiply lr by lr_decay_factor every this many steps (0 = never)
    lr_decay_factor: float = 0.5  # with lr_decay_every = 1 this is a per-step exponential decay
    batch_size: int = 64  # m, examples per mini-batch
    steps: int = 1000  # SGD steps
    eval_every: int = 100  # steps between validation-accuracy evaluations (the test set is never read then)
    seed: int = 0  # initialization, batch order and dropout
    init_std: float = 0.0  # >0: weights ~ N(0, init_std), biases 0 (Sec. 4.1 "small Gaussian"); 0: see init
    init: str = "torch"  # with init_std 0: "torch" (torch's default), "he" (He et al. normal, for ReLU
    # nets) or "glorot" (Glorot & Bengio uniform, for sigmoid / tanh nets)
    final_train_acc: bool = True  # also measure accuracy on the whole training set at the end
    read_test: bool = True  # read the test set once, at the end; tuning runs set False (validation only)
    bn_momentum: float | None = 0.1  # running-average momentum (None: cumulative average)
    bn_noise: float = 0.0  # mlp with bn: > 0 adds Santurkar et al.'s noise after every BN (models.BNNoise)
    ghost_batches: int = (
        1  # mlp / convnet with bn: BN over this many equal parts of each batch (per-replica BN)
    )
    norm: str = ""  # "" = by `bn`; else one of models.NORMS in BN's place (batch, none, layer, group, ...)
    data_dir: str = ""  # "" = embedded 5k MNIST; else a folder with the four IDX files
    device: str = "cpu"  # resolved device ("cpu" or "cuda")
    dtype: str = "float32"  # "float32", or "float64" for exactness tests
    step: str = "eager"  # the engine's batched step: "eager" (the reference) or "compiled" (torch.compile)
    # "bf16": each training step's forward under torch.autocast (bfloat16 matmuls and convolutions, BN's
    # statistics in float32, as torch); evaluation stays float32. An option: the book is float32.
    precision: str = "float32"


STEPS = ("eager", "compiled")  # TrainConfig.step: how bnpaper.engine runs a batched step
PRECISIONS = ("float32", "bf16")  # TrainConfig.precision


def dropout_generator(seed: int) -> torch.Generator:
    """The generator of a run's dropout masks: seeded from the run's seed, apart from its batch order."""
    return torch.Generator().manual_seed(seed + 1_000_003)


def noise_generator(seed: int) -> torch.Generator:
    """The generator of a run's noisy-BN draws (models.BNNoise), apart from its other streams."""
    return torch.Generator().manual_seed(seed + 2_000_029)


def redraw_noise(model: nn.Module, generator: torch.Generator) -> None:
    """New scale and shift for every BNNoise of one model (before each training step)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, models.BNNoise):
                scale, shift = models.BNNoise.draw(mod.scale.numel(), mod.level, generator)
                mod.scale.copy_(scale)  # dtype and device of the model's buffers
                mod.shift.copy_(shift)


def check_numbers(cfg: TrainConfig) -> None:
    """Refuse a config whose numbers cannot describe a training run (before anything trains)."""
    rules = (
        ("lr", cfg.lr > 0, "a learning rate > 0"),
        ("momentum", 0 <= cfg.momentum < 1, "a momentum in [0, 1)"),
        ("weight_decay", cfg.weight_decay >= 0, "a weight decay >= 0"),
        ("steps", cfg.steps >= 1, "at least 1 step"),
        ("batch_size", cfg.batch_size >= 1, "a batch size >= 1"),
        ("eval_every", cfg.eval_every >= 1, "eval_every >= 1"),
        ("init_std", cfg.init_std >= 0, "an initial std >= 0 (0: the init rule)"),
        ("lr_decay_factor", cfg.lr_decay_factor > 0, "a decay factor > 0"),
        ("lr_decay_every", cfg.lr_decay_every >= 0, "lr_decay_every >= 0 (0: never)"),
        ("bn_noise", cfg.bn_noise >= 0, "a noise level >= 0"),
        ("ghost_batches", cfg.ghost_batches >= 1, "ghost_batches >= 1"),
    )
    for name, ok, expected in rules:
        if not ok:
            raise ConfigError(f"{name} = {getattr(cfg, name)!r}: expected {expected}")
    if cfg.step not in STEPS:
        raise ConfigError(f"step = {cfg.step!r}: expected one of {', '.join(STEPS)}")
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"precision = {cfg.precision!r}: expected one of {', '.join(PRECISIONS)}")
    if cfg.precision == "bf16" and (cfg.dtype != "float32" or cfg.step != "eager"):
        raise ConfigError(
            f"precision 'bf16' autocasts a float32 model's eager step, got dtype {cfg.dtype!r} and step "
            f"{cfg.step!r}: set dtype float32 and step eager"
        )


def autocast(cfg: TrainConfig):
    """The context a training step's forward runs in: torch.autocast to bfloat16 for precision
    'bf16' (on the config's device type), else nothing."""
    if cfg.precision != "bf16":
        return contextlib.nullcontext()
    kind = "cuda" if str(cfg.device).startswith("cuda") else "cpu"
    return torch.autocast(device_type=kind, dtype=torch.bfloat16)


def build_model(cfg: TrainConfig) -> nn.Module:
    check_numbers(cfg)
    if cfg.model == "convnet":
        model = models.convnet(
            bn=cfg.bn,
            dropout=cfg.dropout,
            activation=cfg.activation,
            bn_momentum=cfg.bn_momentum,
            norm=cfg.norm or None,
            ghost_batches=cfg.ghost_batches,
        )
    elif cfg.model == "inception":
        model = models.inception_net(
            bn=cfg.norm or cfg.bn, activation=cfg.activation, dropout=cfg.dropout, bn_momentum=cfg.bn_momentum
        )
    elif cfg.model == "mlp":
        model = models.mlp(
            tuple(cfg.hidden),
            bn=cfg.bn,
            activation=cfg.activation,
            dropout=cfg.dropout,
            bn_momentum=cfg.bn_momentum,
            bn_noise=cfg.bn_noise,
            ghost_batches=cfg.ghost_batches,
            norm=cfg.norm or None,
        )
    else:
        raise ConfigError(f"model must be 'convnet', 'mlp' or 'inception', got {cfg.model!r}")
    kind = models.norm_kind(cfg.norm or cfg.bn)
    if cfg.ghost_batches != 1 and not (cfg.model in ("mlp", "convnet") and kind in ("batch", "ghost_batch")):
        raise ConfigError(
            f"ghost_batches = {cfg.ghost_batches} needs model 'mlp' or 'convnet' with bn, got {cfg.model!r}, "
            f"norm={kind!r}"
        )
    if cfg.batch_size % cfg.ghost_batches:
        raise ConfigError(
            f"batch_size {cfg.batch_size} does not split into {cfg.ghost_batches} equal ghost batches"
        )
    if cfg.init not in ("torch", "he", "glorot"):
        raise ConfigError(f"init must be 'torch', 'he' or 'glorot', got {cfg.init!r}")
    if cfg.init_std > 0 or cfg.init in ("he", "glorot"):
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, (nn.Linear, nn.Conv2d)):
                    if cfg.init_std > 0:
                        mod.weight.normal_(0.0, cfg.init_std)
                    elif cfg.init == "glorot":
                        nn.init.xavier_uniform_(mod.weight)
                    else:
                        nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                    if mod.bias is not None:
                        mod.bias.zero_()
    return model.to(model_dtype(cfg))


def memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    """channels_last for the conv nets on the CPU: torch's CPU pooling and small convolutions run
    2-5x faster in it (bnpaper's BN reduces over (N, H, W) in any layout); the values are the
    same computation, in another memory order."""
    conv = cfg.model in ("convnet", "inception")
    return torch.channels_last if conv and device.type == "cpu" else torch.contiguous_format


def model_dtype(cfg: TrainConfig) -> torch.dtype:
    if cfg.dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {cfg.dtype!r}")
    return getattr(torch, cfg.dtype)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 1000) -> float:
    """Eval-mode accuracy (BN with its running / population statistics, dropout off)."""
    was = model.training
    model.eval()
    correct = sum(
        (model(x[i : i + chunk]).argmax(1) == y[i : i + chunk]).sum().item() for i in range(0, len(y), chunk)
    )
    model.train(was)
    return correct / len(y)


def batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless shuffled index batches of exactly batch_size (the incomplete last one dropped)."""
    for rows in run_batches(n, batch_size, [generator]):
        yield rows[0]


def run_batches(n: int, batch_size: int, generators: list[torch.Generator]):
    """`batches` for R runs at once, each from its own generator: (R, batch_size) index rows, one
    fresh permutation per run and epoch (the multi-run engine draws its runs' batches here)."""
    if batch_size > n:
        raise ConfigError(f"batch_size {batch_size} is larger than the training set ({n} examples)")
    while True:
        perms = torch.stack([torch.randperm(n, generator=g) for g in generators])  # (R, n)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perms[:, i : i + batch_size]


def train(cfg: TrainConfig, on_step: Callable[[int, nn.Module], None] | None = None, desc: str = "train"):
    """Train a model; returns (model, history). history holds steps, the training loss and the
    validation accuracy per evaluation, final train / validation accuracy, the test accuracy (read
    once, at the end, and only if cfg.read_test), and diverged / diverged_at.

    On the CPU an MLP trains on one thread (faster for such small matrices: device.py); conv
    nets use torch's default. The thread count is restored afterwards."""
    threads = torch.get_num_threads()
    if cfg.model == "mlp" and resolve_device(cfg.device).type == "cpu":
        torch.set_num_threads(1)
    try:
        return _train(cfg, on_step, desc)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, on_step, desc: str):
    device = resolve_device(cfg.device)
    dtype = model_dtype(cfg)
    ds = data_mod.load(cfg.data_dir)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    fmt = memory_format(cfg, device)
    model = model.to(memory_format=fmt)
    drop_gen = dropout_generator(cfg.seed)
    for mod in model.modules():
        if isinstance(mod, models.Dropout):
            mod.generator = drop_gen
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = (
        torch.optim.lr_scheduler.StepLR(opt, cfg.lr_decay_every, cfg.lr_decay_factor)
        if cfg.lr_decay_every
        else None
    )
    x_tr, y_tr = ds.x_train.to(device, dtype).contiguous(memory_format=fmt), ds.y_train.to(device)
    x_va, y_va = ds.x_val.to(device, dtype).contiguous(memory_format=fmt), ds.y_val.to(device)
    g = torch.Generator().manual_seed(cfg.seed)
    hist = {
        "eval_steps": [],
        "val_acc": [],
        "loss_steps": [],
        "loss": [],
        "diverged": False,
        "diverged_at": None,
    }
    t0 = time.perf_counter()
    it = batches(len(y_tr), cfg.batch_size, g)
    running, n_run = 0.0, 0
    noise_gen = noise_generator(cfg.seed)
    for step in progress(range(1, cfg.steps + 1), desc=desc):
        idx = next(it).to(device)
        redraw_noise(model, noise_gen)
        with autocast(cfg):
            loss = TF.cross_entropy(model(x_tr[idx].contiguous(memory_format=fmt)), y_tr[idx])
        loss_value = loss.item()  # the one host synchronisation per step (bnpaper.engine has none)
        if not math.isfinite(loss_value):
            hist["diverged"], hist["diverged_at"] = True, step
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        running, n_run = running + loss_value, n_run + 1
        if on_step is not None:
            on_step(step, model)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            hist["eval_steps"].append(step)
            hist["val_acc"].append(accuracy(model, x_va, y_va))
            hist["loss_steps"].append(step)
            hist["loss"].append(running / max(n_run, 1))
            running, n_run = 0.0, 0
    hist["train_seconds"] = time.perf_counter() - t0
    if hist["diverged"]:
        hist["final_test_acc"] = hist["final_train_acc"] = hist["final_val_acc"] = None
    else:
        hist["final_val_acc"] = hist["val_acc"][-1]  # evaluated at the last step just above
        hist["final_test_acc"] = read_test(model, ds, cfg)
        hist["final_train_acc"] = accuracy(model, x_tr, y_tr) if cfg.final_train_acc else None
    hist["data"] = ds.describe()
    hist["config"] = asdict(cfg)
    return model.to(memory_format=torch.contiguous_format), hist  # callers get the usual layout


def read_test(model: nn.Module, ds: data_mod.Dataset, cfg: TrainConfig) -> float | None:
    """The one read of the test set a final run makes, at its end (None for a tuning run)."""
    if not cfg.read_test:
        return None
    dev = next(model.parameters()).device
    return accuracy(model, ds.x_test.to(dev, model_dtype(cfg)), ds.y_test.to(dev))
