"""Chapter "Training and inference" (paper Sec. 3.1, Algorithm 2).

methods     test accuracy of one trained BN conv net with its population statistics taken four
            ways: Algorithm 2 (k training batches, unbiased), torch's moving average (momentum
            0.1), the cumulative average (momentum None), and the test batch's own statistics
k_sweep     how many training mini-batches k Algorithm 2 needs before accuracy stops changing
small_batches  train with m = 2 ... 64: the gap between train-mode and eval-mode outputs
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from bnpaper import data as data_mod
from bnpaper.engine import trained_many
from bnpaper.inference import bn_layers, estimate_population_statistics
from bnpaper.train import TrainConfig, accuracy, trained

PROFILES = {
    "smoke": {"ks": [1, 2, 5], "k_seeds": 2, "k_methods": 5, "ms": [2, 8, 64], "examples": 1280, "seeds": 2},
    "quick": {
        "ks": [1, 2, 3, 5, 10, 20, 50],
        "k_seeds": 5,
        "k_methods": 50,
        "ms": [2, 4, 8, 16, 64],
        "examples": 8000,
        "seeds": 3,
    },
    "paper": {
        "ks": [1, 2, 3, 5, 10, 20, 50, 100],
        "k_seeds": 10,
        "k_methods": 100,
        "ms": [2, 4, 8, 16, 64],
        "examples": 32000,
        "seeds": 3,
    },
}


def _training_batches(x: torch.Tensor, m: int, k: int, seed: int) -> list[torch.Tensor]:
    """k mini-batches of exactly m training examples (Alg. 2 averages equal-size batches), drawn
    without replacement epoch by epoch, so k * m may exceed the training set."""
    if not 2 <= m <= len(x):
        raise ValueError(f"mini-batch size m must be in [2, {len(x)}] (the training set), got {m}")
    g = torch.Generator().manual_seed(seed)
    epochs = -(-m * k // len(x))  # ceil
    perm = torch.cat([torch.randperm(len(x), generator=g)[: len(x) - len(x) % m] for _ in range(epochs + 1)])
    return list(x[perm[: m * k]].split(m))  # (k, m, ...) as a list


def _shuffled(x: torch.Tensor, y: torch.Tensor, seed: int = 0):
    """Test examples in a fixed random order, so test mini-batches are not sorted by class."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(y.device)
    return x[perm], y[perm]


@torch.no_grad()
def batch_stats_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, m: int) -> float:
    """Accuracy when every BN layer uses the statistics of the test mini-batch itself (size m)."""
    x, y = _shuffled(x, y)
    net = copy.deepcopy(model).eval()
    for bn in bn_layers(net).values():
        bn.train()  # batch statistics; the running buffers of this copy are thrown away
    n = len(y) - len(y) % m
    correct = sum((net(x[i : i + m]).argmax(1) == y[i : i + m]).sum().item() for i in range(0, n, m))
    return correct / n


@dataclass
class MethodsConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # the BN conv net (bn=True)
    k: int = 50  # training mini-batches for Algorithm 2
    seed: int = 0  # which k batches


def methods(cfg: MethodsConfig) -> dict:
    """Test accuracy of one set of trained weights under four choices of BN statistics.

    Running statistics never influence training (training-mode BN uses batch statistics), so the
    net trained with momentum 0.1 and with momentum None (cumulative) has identical weights; the
    run checks that instead of assuming it.
    """
    ema_model, hist = trained(replace(cfg.train, bn_momentum=0.1), desc="convnet bn (EMA)")
    cum_model, _ = trained(replace(cfg.train, bn_momentum=None), desc="convnet bn (cumulative)")
    same = all(torch.equal(a, b) for a, b in zip(ema_model.parameters(), cum_model.parameters()))
    ds = data_mod.load(cfg.train.data_dir)
    dev = next(ema_model.parameters()).device
    x_te, y_te = ds.x_test.to(dev), ds.y_test.to(dev)
    alg2 = copy.deepcopy(ema_model)
    estimate_population_statistics(
        alg2, [b.to(dev) for b in _training_batches(ds.x_train, cfg.train.batch_size, cfg.k, cfg.seed)]
    )
    return {
        "identical_weights": same,
        "acc": {
            "algorithm2": accuracy(alg2, x_te, y_te),
            "moving_average": accuracy(ema_model, x_te, y_te),
            "cumulative": accuracy(cum_model, x_te, y_te),
            "test_batch": batch_stats_accuracy(ema_model, x_te, y_te, cfg.train.batch_size),
        },
        "k": cfg.k,
        "m": cfg.train.batch_size,
        "train_history": {k: v for k, v in hist.items() if not k.startswith("_")},
    }


@dataclass
class KSweepConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    ks: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 20, 50])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # which training batches


def k_sweep(cfg: KSweepConfig) -> dict:
    model, _ = trained(replace(cfg.train, bn_momentum=0.1), desc="convnet bn (EMA)")
    ds = data_mod.load(cfg.train.data_dir)
    dev = next(model.parameters()).device
    x_te, y_te = ds.x_test.to(dev), ds.y_test.to(dev)
    acc = {}
    for k in cfg.ks:
        acc[str(k)] = []
        for s in cfg.seeds:
            net = copy.deepcopy(model)
            estimate_population_statistics(
                net, [b.to(dev) for b in _training_batches(ds.x_train, cfg.train.batch_size, k, s)]
            )
            acc[str(k)].append(accuracy(net, x_te, y_te))
    return {"acc": acc, "m": cfg.train.batch_size}


@dataclass
class SmallBatchConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # lr and steps set per m below
    ms: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 64])
    examples: int = 16000  # training examples seen, the same for every m (steps = examples / m)
    base_lr_m: int = (
        64  # lr = train.lr * m / base_lr_m (linear scaling, so every m sees the same lr per example)
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


@torch.no_grad()
def train_eval_gap(model: nn.Module, x: torch.Tensor, y: torch.Tensor, m: int) -> dict:
    """On test mini-batches of size m: logits in train mode (batch statistics) vs eval mode."""
    x, y = _shuffled(x, y)
    net_train = copy.deepcopy(model).eval()
    for bn in bn_layers(net_train).values():
        bn.train()
    net_eval = copy.deepcopy(model).eval()
    n = len(y) - len(y) % m
    diffs, scale, agree = 0.0, 0.0, 0
    for i in range(0, n, m):
        a, b = net_train(x[i : i + m]), net_eval(x[i : i + m])
        diffs += (a - b).abs().sum().item()
        scale += b.abs().sum().item()
        agree += (a.argmax(1) == b.argmax(1)).sum().item()
    return {"relative_logit_gap": diffs / scale, "prediction_agreement": agree / n}


def small_batches(cfg: SmallBatchConfig) -> dict:
    ds = data_mod.load(cfg.train.data_dir)
    cells = [(m, s) for m in cfg.ms for s in cfg.seeds]
    cfgs = [
        replace(
            cfg.train,
            bn=True,
            batch_size=m,
            seed=s,
            lr=cfg.train.lr * m / cfg.base_lr_m,
            steps=max(1, cfg.examples // m),
            eval_every=max(1, cfg.examples // m),
        )
        for m, s in cells
    ]
    out: dict[str, list] = {}
    for (m, s), tc, (model, hist) in zip(cells, cfgs, trained_many(cfgs, desc="convnet small batches")):
        dev = next(model.parameters()).device
        x_te, y_te = ds.x_test.to(dev), ds.y_test.to(dev)
        row = {"seed": s, "steps": tc.steps, "lr": tc.lr, "diverged": hist["diverged"]}
        if not hist["diverged"]:
            row.update(
                eval_acc=accuracy(model, x_te, y_te),
                train_mode_acc=batch_stats_accuracy(model, x_te, y_te, m),
                **train_eval_gap(model, x_te, y_te, m),
            )
        out.setdefault(str(m), []).append(row)
    return out


def summarize_k(result: dict) -> dict[str, tuple[float, float]]:
    return {
        k: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0) for k, v in result["acc"].items()
    }
