"""Chapter "Training and inference" (paper Sec. 3.1, Algorithm 2).

methods     test accuracy of the trained BN conv nets of chapter 02 (the evaluation seeds) with their
            population statistics taken three ways: Algorithm 2 (k training batches, unbiased),
            torch's moving average (momentum 0.1) and the test batch's own statistics; and, for the
            first net only (it needs one more training run), the cumulative average (momentum None)
k_sweep     how many training mini-batches k Algorithm 2 needs before validation accuracy stops
            changing (validation only: this is where k would be chosen)
small_batches  train with m = 2 ... 64: the gap between train-mode and eval-mode outputs, on
            validation data

Algorithm 2 reads training batches only; every choice reads validation; the test set is read only
for the claim's final comparison (`methods`). Claim (CLAIMS): alg2-moving-average, an equivalence
claim tested by TOST. Profile numbers: bnpaper.profiles ("population"; the nets: "conv").
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, field, replace
from functools import partial

import torch
from torch import nn

from bnpaper import data as data_mod
from bnpaper import profiles, protocol
from bnpaper.device import resolve_device
from bnpaper.engine import trained, trained_many
from bnpaper.inference import bn_layers, estimate_population_statistics
from bnpaper.protocol import confirmatory
from bnpaper.text import Catalog
from bnpaper.train import TrainConfig, accuracy

T = Catalog(__name__)  # this experiment's English and Arabic text: population.yml

settings = partial(profiles.settings, "population")  # (profile, steps=0) -> this experiment's numbers


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
    """Examples in a fixed random order, so their mini-batches are not sorted by class."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(y.device)
    return x[perm], y[perm]


@torch.no_grad()
def batch_stats_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, m: int) -> float:
    """Accuracy when every BN layer uses the statistics of the evaluated mini-batch itself (size m)."""
    x, y = _shuffled(x, y)
    net = copy.deepcopy(model).eval()
    for bn in bn_layers(net).values():
        bn.train()  # batch statistics; the running buffers of this copy are thrown away
    n = len(y) - len(y) % m
    correct = sum((net(x[i : i + m]).argmax(1) == y[i : i + m]).sum().item() for i in range(0, n, m))
    return correct / n


@dataclass
class MethodsConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # the BN conv net (bn=True), but its seed
    seeds: list[int] | None = None  # the trained nets (None: train.seed alone); cumulative: the first
    k: int = 50  # training mini-batches for Algorithm 2
    batch_seed: int = 0  # net s draws its k batches with seed batch_seed + s


def methods(cfg: MethodsConfig) -> dict:
    """Test accuracy of each trained net under each choice of BN statistics (per-net lists).

    Running statistics never influence training (training-mode BN uses batch statistics), so the
    first net trained again with momentum None (cumulative) has identical weights; the run checks
    that instead of assuming it.
    """
    seeds = cfg.seeds if cfg.seeds is not None else [cfg.train.seed]
    nets = trained_many([replace(cfg.train, bn_momentum=0.1, seed=s) for s in seeds], desc="convnet bn (EMA)")
    threads = torch.get_num_threads()
    if resolve_device(cfg.train.device).type == "cpu":  # one thread, as the engine's workers train conv
        torch.set_num_threads(1)  # nets: the same reductions, so the weights can be equal bit for bit
    try:
        cumulative = replace(cfg.train, bn_momentum=None, seed=seeds[0])
        cum_model, _ = trained(cumulative, desc="convnet bn (cumulative)")
    finally:
        torch.set_num_threads(threads)
    ema_first = nets[0][0]
    same = all(torch.equal(a, b) for a, b in zip(ema_first.parameters(), cum_model.parameters()))
    ds = data_mod.load(cfg.train.data_dir)
    acc: dict[str, list[float]] = {"algorithm2": [], "moving_average": [], "test_batch": []}
    for s, (ema_model, _) in zip(seeds, nets):
        dev = next(ema_model.parameters()).device
        x_te, y_te = ds.x_test.to(dev), ds.y_test.to(dev)
        alg2 = copy.deepcopy(ema_model)
        batches = _training_batches(ds.x_train, cfg.train.batch_size, cfg.k, cfg.batch_seed + s)
        estimate_population_statistics(alg2, [b.to(dev) for b in batches])  # Alg. 2, training data only
        acc["algorithm2"].append(accuracy(alg2, x_te, y_te))
        acc["moving_average"].append(accuracy(ema_model, x_te, y_te))
        acc["test_batch"].append(batch_stats_accuracy(ema_model, x_te, y_te, cfg.train.batch_size))
    dev = next(cum_model.parameters()).device
    acc["cumulative"] = [accuracy(cum_model, ds.x_test.to(dev), ds.y_test.to(dev))]
    return {
        "seeds": seeds,
        "cumulative_seed": seeds[0],
        "identical_weights": same,
        "acc": acc,
        "k": cfg.k,
        "m": cfg.train.batch_size,
    }


@dataclass
class KSweepConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    ks: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 20, 50])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # which training batches


def k_sweep(cfg: KSweepConfig) -> dict:
    """Validation accuracy of one trained net with Algorithm 2's statistics from k training batches,
    for every k and every draw of the batches (the test set is not read)."""
    model, _ = trained(replace(cfg.train, bn_momentum=0.1), desc="convnet bn (EMA)")
    ds = data_mod.load(cfg.train.data_dir)
    dev = next(model.parameters()).device
    x_va, y_va = ds.x_val.to(dev), ds.y_val.to(dev)
    acc = {}
    for k in cfg.ks:
        acc[str(k)] = []
        for s in cfg.seeds:
            net = copy.deepcopy(model)
            estimate_population_statistics(
                net, [b.to(dev) for b in _training_batches(ds.x_train, cfg.train.batch_size, k, s)]
            )
            acc[str(k)].append(accuracy(net, x_va, y_va))
    return {"val_acc": acc, "m": cfg.train.batch_size}


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
    """On mini-batches of size m (of the examples given): logits in train mode (batch statistics)
    against eval mode."""
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
            read_test=False,
        )
        for m, s in cells
    ]
    out: dict[str, list] = {}
    for (m, s), tc, (model, hist) in zip(cells, cfgs, trained_many(cfgs, desc="convnet small batches")):
        dev = next(model.parameters()).device
        x_va, y_va = (
            ds.x_val.to(dev),
            ds.y_val.to(dev),
        )  # validation: this chapter reads test only for its claim
        row = {"seed": s, "steps": tc.steps, "lr": tc.lr, "diverged": hist["diverged"]}
        if not hist["diverged"]:
            row.update(
                val_eval_acc=accuracy(model, x_va, y_va),
                val_train_mode_acc=batch_stats_accuracy(model, x_va, y_va, m),
                **train_eval_gap(model, x_va, y_va, m),
            )
        out.setdefault(str(m), []).append(row)
    return out


def summarize_k(result: dict) -> dict[str, tuple[float, float]]:
    """Mean and std of the validation accuracy over the draws, per k."""
    return {
        k: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0)
        for k, v in result["val_acc"].items()
    }


# ----------------------------------------------------------------------------- claim

MARGIN = 0.005  # half a point of test accuracy: 5 of the 1,000 test digits (see the protocol)


def estimate_alg2(m: dict) -> protocol.Estimate:
    """Mean over the nets of test accuracy with Algorithm 2 minus with the moving average (paired:
    the same weights), Student t; TOST reads its 90% interval."""
    return protocol.paired_t(m["algorithm2"], m["moving_average"])


CLAIMS: tuple[protocol.Claim, ...] = (
    protocol.Claim(
        id="alg2-moving-average",
        **T.fields("alg2-moving-average.claim", "en", "ar"),
        where="paper 3.1, Alg. 2",
        paper="-",
        chapter="03_inference",
        label="sec-alg2-methods",
        protocol=protocol.Protocol(
            version=2,
            fixed="2026-11-25",
            arms=T("alg2-moving-average.arms"),
            tuned=T("alg2-moving-average.tuned"),
            statistic=T("alg2-moving-average.statistic"),
            interval="paired t",
            kind="equivalent",
            margin=MARGIN,
            changes=T("alg2-moving-average.changes"),
            trains=True,
        ),
        estimate=estimate_alg2,
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
)
TUNINGS: tuple = ()  # nothing tuned: both arms are the same trained weights
