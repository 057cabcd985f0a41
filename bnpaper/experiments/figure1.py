"""Chapter "Figure 1: MNIST with and without BN" (paper Sec. 4.1, Figure 1), and its claims.

The paper's network: 28x28 input, three fully-connected hidden layers of 100 sigmoid units, 10
outputs with cross-entropy, small random Gaussian initial weights, 50,000 steps of mini-batches of
60, with and without BN on every hidden layer. Not stated by the paper, chosen here: SGD with
momentum 0.9 (as the public reproduction in paper_numbers.MNIST_REPRODUCTION), weights ~ N(0, 0.1^2), biases
0, and a learning rate TUNED for each network on its own (TUNINGS: a 2x grid, validation accuracy,
tuning seeds), because BN's central claim is that it tolerates higher rates.

Tracked (Figure 1 b, c): the 15th, 50th and 85th percentiles of the input to every sigmoid of the
last hidden layer, over a fixed set of training images, as training computes it (train mode: BN
normalizes with the statistics of those images, not with running averages that have seen a few
batches), every `track_every` steps. Drift is measured after a warm-up (the first `warmup` share
of the steps), per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import torch
from torch import nn

from bnpaper import data as data_mod
from bnpaper import profiles
from bnpaper.device import resolve_device
from bnpaper.engine import map_tasks, train_many
from bnpaper.inference import estimate_population_statistics
from bnpaper.protocol import Claim, Protocol, censored_median_ratio, confirmatory, log_ratio_t, paired_t
from bnpaper.stats import mean_std
from bnpaper.text import Catalog, tuning_seed_fields
from bnpaper.train import TrainConfig, accuracy, build_model
from bnpaper.tuning import Tuning

T = Catalog(__name__)  # this experiment's English and Arabic text: figure1.yml

settings = partial(profiles.settings, "figure1")  # (profile, steps=0) -> this experiment's numbers

PERCENTILES = (15, 50, 85)
LR_GRID = tuple(0.01 * 2**k for k in range(11))  # 0.01 ... 10.24, a 2x grid
INIT_STDS = (0.01, 0.1, 1.0)  # init-insensitive: a decade either side of the chosen 0.1
TARGETS = (0.85, 0.9)  # fixed validation accuracy targets for "faster" (chosen before any run)
WARMUP = 0.1  # share of the steps excluded from the drift
WINDOWS = 4  # drift reported per window of the post-warm-up steps
PAPER_EPOCHS = 50  # 50,000 steps x 60 examples over 60,000 MNIST training images


def paper_network(steps: int, seed: int = 0, bn: bool = False, **kw) -> TrainConfig:
    fields = dict(
        model="mlp",
        hidden=[100, 100, 100],
        activation="sigmoid",
        bn=bn,
        batch_size=60,
        steps=steps,
        lr=0.01,
        momentum=0.9,
        init_std=0.1,
        seed=seed,
        eval_every=250,
    )
    fields.update(kw)
    return TrainConfig(**fields)


def tuning_base(bn: bool, experiment: str = "figure1", **kw):
    """The Sec. 4.1 network a tuning trains, at the run length of `experiment`'s profile settings
    (this chapter's, or a later chapter's, which tunes the same network at its own length; kw sets
    other fields, such as chapter 10's global batch)."""

    def base(profile: str, seed: int) -> TrainConfig:
        s = profiles.settings(experiment, profile)
        return paper_network(s["steps"], seed, bn, eval_every=s["eval_every"], final_train_acc=False, **kw)

    return base


TUNINGS = (
    Tuning("figure1/no_bn", "lr", LR_GRID, tuning_base(False)),
    Tuning("figure1/bn", "lr", LR_GRID, tuning_base(True)),
)


def _sigmoid_input_depth(model: nn.Sequential) -> int:
    """How many leading modules produce the input of the last hidden layer's sigmoids (up to and
    including its BN if present, else its Linear)."""
    return max(i for i, m in enumerate(model) if isinstance(m, nn.Sigmoid))


@dataclass
class Figure1Config:
    steps: int = 5000  # SGD steps (the paper: 50,000)
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    lr: dict = field(default_factory=lambda: {"no_bn": 0.01, "bn": 0.01})  # each arm's tuned rate
    track_every: int = 100  # steps between percentile snapshots
    eval_every: int = 250  # steps between validation evaluations
    track_images: int = 1000  # training images whose sigmoid inputs are summarized
    alg2_batches: int = 50  # Algorithm 2: mini-batches of 60 training images averaged
    data_dir: str = ""
    device: str = "cpu"
    overrides: dict = field(default_factory=dict)  # e.g. {"init_std": 0.01}


def run_arm(cfg: Figure1Config, bn: bool) -> list[dict]:
    """Every seed of one network (with or without BN), as one batched computation (bnpaper.engine),
    tracking the percentiles of the last hidden layer's sigmoid inputs in train mode."""
    ds = data_mod.load(cfg.data_dir)
    key = "bn" if bn else "no_bn"
    cfgs = [
        paper_network(
            cfg.steps,
            s,
            bn,
            lr=cfg.lr[key],
            eval_every=cfg.eval_every,
            device=cfg.device,
            data_dir=cfg.data_dir,
            **cfg.overrides,
        )
        for s in cfg.seeds
    ]
    depth = _sigmoid_input_depth(build_model(cfgs[0]))
    x_track = ds.x_train[: cfg.track_images].to(resolve_device(cfg.device))
    q = torch.tensor([p / 100 for p in PERCENTILES], device=x_track.device)
    snaps: list[list] = [[] for _ in cfgs]
    steps: list[int] = []

    @torch.no_grad()
    def on_step(step, runs):
        if step % cfg.track_every == 0 or step == 1:
            saved = runs.flat_buffers.clone()  # train mode updates running averages: put them back
            h = runs.prefix(x_track, depth, shared_input=True).float()  # (R, images, units)
            runs.flat_buffers.copy_(saved)
            per_run = torch.quantile(h, q, dim=1).permute(1, 2, 0).cpu().tolist()  # (R, units, 3)
            for r, snap in enumerate(per_run):
                snaps[r].append(snap)
            steps.append(step)

    results = train_many(cfgs, on_step=on_step, desc=f"figure 1 {key}")
    out = []
    for (model, h), snap, c in zip(results, snaps, cfgs):
        last = len(steps) if not h["diverged"] else sum(st < h["diverged_at"] for st in steps)
        out.append(
            {
                "seed": c.seed,
                "lr": c.lr,
                "eval_steps": h["eval_steps"],
                "val_acc": h["val_acc"],
                "loss": h["loss"],
                "final_val_acc": h["final_val_acc"],
                "final_test_acc": h["final_test_acc"],
                "alg2_val_acc": _algorithm2_accuracy(model, ds, c, cfg) if bn and not h["diverged"] else None,
                "diverged": h["diverged"],
                "diverged_at": h["diverged_at"],
                "track_steps": steps[:last],
                "percentiles": snap[:last],
                "data": h["data"],
                "train_seconds": h["train_seconds"],
            }
        )
    return out


def _algorithm2_accuracy(model: nn.Module, ds, c: TrainConfig, cfg: Figure1Config) -> float:
    """Validation accuracy with Algorithm 2's population statistics (training mini-batches of 60)
    instead of the moving averages (descriptive: the test set stays read once per run)."""
    g = torch.Generator().manual_seed(c.seed)
    idx = torch.randperm(len(ds.y_train), generator=g)[: cfg.alg2_batches * c.batch_size]
    dev = next(model.parameters()).device
    estimate_population_statistics(model, ds.x_train[idx].to(dev).split(c.batch_size))
    return accuracy(model, ds.x_val.to(dev), ds.y_val.to(dev))


def run(cfg: Figure1Config) -> dict:
    """Both networks, each arm's seeds batched, the two arms in parallel worker processes."""
    arms = map_tasks(run_arm, [(cfg, False), (cfg, True)])
    return {"no_bn": arms[0], "bn": arms[1]}


def drift(percentiles: list, track_steps: list[int], steps: int, windows: int = 1) -> dict[str, np.ndarray]:
    """Per unit, how much its input distribution moved after the warm-up.

    percentiles: (T, units, 3) snapshots of the 15/50/85th percentiles at track_steps.
    Returns per window w and unit, (windows, units): the range of the median over the window
    ("median_range"), and of the spread p85 - p15 ("spread_range"), both divided by the unit's mean
    spread over the post-warm-up steps, so that units (and networks) of different scale compare.
    """
    p = np.asarray(percentiles)  # (T, U, 3)
    t = np.asarray(track_steps)
    keep = t > WARMUP * steps
    if keep.sum() < 2 * windows:
        raise ValueError(
            f"drift needs at least {2 * windows} snapshots after the warm-up, got {int(keep.sum())}: "
            "track more often"
        )
    p = p[keep]
    med, spread = p[:, :, 1], p[:, :, 2] - p[:, :, 0]
    scale = np.maximum(spread.mean(0), 1e-12)
    parts = np.array_split(np.arange(len(p)), windows)
    return {
        "median_range": np.stack([(med[i].max(0) - med[i].min(0)) / scale for i in parts]),
        "spread_range": np.stack([(spread[i].max(0) - spread[i].min(0)) / scale for i in parts]),
    }


def run_drift(r: dict, steps: int, windows: int = 1) -> np.ndarray:
    """The median over units of a run's median drift, per window: (windows,)."""
    return np.median(drift(r["percentiles"], r["track_steps"], steps, windows)["median_range"], axis=1)


def drift_shape(windows: list[list[float] | None]) -> tuple[list[float], str]:
    """Mean over seeds (diverged runs left out) of the drift in each post-warm-up window, and how
    it is spread over them: "front" (the first window holds more than half of the total: a move
    early after the warm-up, then little), "rising" or "falling" (each window above, or below, the
    one before), else "mixed". The pooled drift is one range over all windows; this says where in
    training it happened, which one number cannot."""
    rows = np.asarray([w for w in windows if w is not None], dtype=float)  # (seeds, windows)
    if not len(rows):
        return [], "mixed"
    m = rows.mean(0)
    steps = np.diff(m)
    if m[0] > 0.5 * m.sum():
        return m.tolist(), "front"
    if (steps > 0).all():
        return m.tolist(), "rising"
    if (steps < 0).all():
        return m.tolist(), "falling"
    return m.tolist(), "mixed"


def typical_unit(r: dict, steps: int) -> int:
    """The unit whose median drift is the median over units: a 'typical' sigmoid."""
    d = drift(r["percentiles"], r["track_steps"], steps)["median_range"][0]
    return int(np.argsort(d)[len(d) // 2])


def steps_to(r: dict, target: float) -> float:
    """The first evaluation step whose validation accuracy reaches target (inf: never)."""
    return next((float(s) for s, a in zip(r["eval_steps"], r["val_acc"]) if a >= target), math.inf)


def epoch_matched_step(steps: int, eval_every: int, n_train: int, batch: int = 60) -> int:
    """The evaluation step closest to the paper's 50 epochs on our training set (capped at steps)."""
    s = PAPER_EPOCHS * n_train / batch
    return int(min(steps, max(eval_every, round(s / eval_every) * eval_every)))


def measurements(result: dict, cfg: Figure1Config) -> dict:
    """Per-seed numbers every Figure 1 claim reads (lists in seed order; None: diverged)."""
    out = {"seeds": cfg.seeds, "steps": cfg.steps, "eval_every": cfg.eval_every}
    for key, runs in result.items():
        out[key] = {
            "final_test_acc": [r["final_test_acc"] for r in runs],
            "final_val_acc": [r["final_val_acc"] for r in runs],
            "drift": [None if r["diverged"] else float(run_drift(r, cfg.steps)[0]) for r in runs],
            "drift_windows": [
                None if r["diverged"] else run_drift(r, cfg.steps, WINDOWS).tolist() for r in runs
            ],
            **{f"steps_to_{t}": [steps_to(r, t) for r in runs] for t in TARGETS},
            "diverged": sum(r["diverged"] for r in runs),
        }
    out["bn"]["alg2_val_acc"] = [r["alg2_val_acc"] for r in result["bn"]]
    return out


def summarize(m: dict) -> dict:
    return {
        key: {
            "final_test_acc": mean_std(m[key]["final_test_acc"]),
            "drift": mean_std(m[key]["drift"]),
            "diverged": m[key]["diverged"],
        }
        for key in ("no_bn", "bn")
    }


# ----------------------------------------------------------------------------- init-insensitive


@dataclass
class InitConfig:
    base: Figure1Config = field(default_factory=Figure1Config)
    init_stds: list[float] = field(default_factory=lambda: list(INIT_STDS))


def init_sweep_arm(cfg: InitConfig, bn: bool) -> dict:
    """One arm at every initial std, all seeds and inits as one batched group (init_std is per run)."""
    key = "bn" if bn else "no_bn"
    b = cfg.base
    cells = [(std, s) for std in cfg.init_stds for s in b.seeds]
    cfgs = [
        paper_network(
            b.steps,
            s,
            bn,
            lr=b.lr[key],
            init_std=std,
            eval_every=b.eval_every,
            data_dir=b.data_dir,
            device=b.device,
            final_train_acc=False,
        )
        for std, s in cells
    ]
    out: dict[str, list] = {}
    for (std, _s), (_, h) in zip(cells, train_many(cfgs, desc=f"figure 1 inits {key}")):
        out.setdefault(str(std), []).append(h["final_test_acc"])
    return out


def init_sweep(cfg: InitConfig) -> dict:
    arms = map_tasks(init_sweep_arm, [(cfg, False), (cfg, True)])
    return {"no_bn": arms[0], "bn": arms[1]}


def init_ranges(sweep: dict) -> dict[str, list[float | None]]:
    """Per seed and arm: the range (max - min) of final test accuracy over the initial stds; a
    diverged run counts as chance (0.1), since it is a failure to train from that init."""
    out = {}
    for key, by_std in sweep.items():
        cols = list(by_std.values())
        out[key] = [
            max(0.1 if v is None else v for v in vals) - min(0.1 if v is None else v for v in vals)
            for vals in zip(*cols)
        ]
    return out


# ----------------------------------------------------------------------------- claims

FIXED = "2026-11-25"
_tune, _eval = profiles.tuning_seeds("quick"), profiles.eval_seeds("quick")
_TS = T("ts", **tuning_seed_fields(_tune, with_noun=False))
_ES = f"{_eval[0]}-{_eval[-1]}"
ARMS = T("arms")
TUNED = T("tuned", lr_grid_first=LR_GRID[0], lr_grid_last=LR_GRID[-1], ts=_TS, es=_ES)


def _acc_diff(m: dict):
    return paired_t(m["bn"]["final_test_acc"], m["no_bn"]["final_test_acc"])


def _faster(m: dict):
    t = TARGETS[-1]
    e = censored_median_ratio(
        m["no_bn"][f"steps_to_{t}"], m["bn"][f"steps_to_{t}"], m["steps"], m["steps"], m["eval_every"]
    )
    reached = {k: sum(math.isfinite(s) for s in m[k][f"steps_to_{t}"]) for k in ("no_bn", "bn")}
    return replace(e, note={"reached": reached, "target": t})


def _drift_ratio(m: dict):
    return log_ratio_t(m["no_bn"]["drift"], m["bn"]["drift"])


def _init_ranges(m: dict):
    return paired_t(m["no_bn"], m["bn"])


CLAIMS = (
    Claim(
        id="init-insensitive",
        **T.fields("init-insensitive.claim", "en", "ar"),
        where="paper 3.3",
        paper="-",
        chapter="07_figure1",
        label="sec-fig1-neighbours",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=T("init-insensitive.arms", arms=ARMS),
            tuned=TUNED,
            statistic=T("init-insensitive.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.0,
            changes=T("init-insensitive.changes"),
        ),
        estimate=_init_ranges,
    ),
    Claim(
        id="fig1-accuracy",
        **T.fields("fig1-accuracy.claim", "en", "ar"),
        where="paper 4.1, Fig. 1(a)",
        **T.fields("fig1-accuracy.paper", "paper", "paper_ar"),
        chapter="07_figure1",
        label="sec-fig1-accuracy",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=ARMS,
            tuned=TUNED,
            statistic=T("fig1-accuracy.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.0,
            changes=T("fig1-accuracy.changes"),
        ),
        estimate=_acc_diff,
    ),
    Claim(
        id="fig1-faster",
        **T.fields("fig1-faster.claim", "en", "ar"),
        where="paper 4.1, Fig. 1(a)",
        paper="-",
        chapter="07_figure1",
        label="sec-fig1-accuracy",
        protocol=Protocol(
            version=1,
            fixed=FIXED,
            arms=ARMS,
            tuned=TUNED,
            statistic=T("fig1-faster.statistic", targets_last=TARGETS[-1]),
            interval="censored median ratio",
            kind="greater",
            margin=1.0,
            scale="ratio",
        ),
        estimate=_faster,
    ),
    Claim(
        id="fig1-stable-inputs",
        **T.fields("fig1-stable-inputs.claim", "en", "ar"),
        where="paper 4.1, Fig. 1(b, c)",
        paper="-",
        chapter="07_figure1",
        label="sec-fig1-drift",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=ARMS,
            tuned=TUNED,
            statistic=T("fig1-stable-inputs.statistic"),
            interval="t on log ratios",
            kind="greater",
            margin=2.0,
            scale="ratio",
            changes=T("fig1-stable-inputs.changes"),
        ),
        estimate=_drift_ratio,
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
    sesoi={
        "init-insensitive": (0.005, "accuracy"),
        "fig1-accuracy": (0.005, "accuracy"),
        "fig1-faster": (1.25, "speed"),
    },
)
