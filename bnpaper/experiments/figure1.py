"""Chapter "Figure 1: MNIST with and without BN" (paper Sec. 4.1, Figure 1).

The paper's network: 28x28 input, three fully-connected hidden layers of 100 sigmoid units, 10
outputs with cross-entropy, small random Gaussian initial weights, 50,000 steps of mini-batches of
60, with and without BN on every hidden layer. Not stated by the paper, chosen here (as in the
public reproduction quoted in shared/PAPER.md for the optimizer): SGD with momentum 0.9, learning rate
0.01, weights ~ N(0, 0.1^2), biases 0. (The reproduction's N(0, 0.01^2) leaves the network without BN
at chance accuracy for thousands of steps; it is one of the neighbouring choices run too.)

Tracked (Figure 1 b, c): the 15th, 50th and 85th percentiles of the input to every sigmoid of the
last hidden layer, over a fixed set of test images, in eval mode, during training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from bnpaper import data as data_mod
from bnpaper.device import resolve_device
from bnpaper.engine import map_tasks, train_many
from bnpaper.stats import mean_std
from bnpaper.train import TrainConfig, build_model

PERCENTILES = (15, 50, 85)
PROFILES = {
    "smoke": {"steps": 60, "seeds": 2, "track_every": 20, "eval_every": 20, "neighbour_steps": 30},
    "quick": {"steps": 5000, "seeds": 3, "track_every": 100, "eval_every": 250, "neighbour_steps": 1500},
    "paper": {"steps": 50000, "seeds": 3, "track_every": 500, "eval_every": 1000, "neighbour_steps": 10000},
}
NEIGHBOURS = {  # (learning rate, init std) around the chosen (0.01, 0.1)
    "lr 0.003": {"lr": 0.003},
    "lr 0.03": {"lr": 0.03},
    "init std 0.01": {"init_std": 0.01},
    "init std 0.3": {"init_std": 0.3},
}


def paper_network(
    steps: int,
    seed: int = 0,
    bn: bool = False,
    device: str = "cpu",
    data_dir: str = "",
    eval_every: int = 250,
    **kw,
) -> TrainConfig:
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
        eval_every=eval_every,
        device=device,
        data_dir=data_dir,
    )
    fields.update(kw)
    return TrainConfig(**fields)


def _sigmoid_input_depth(model: nn.Sequential) -> int:
    """How many leading modules produce the input of the last hidden layer's sigmoids (up to and
    including its BN if present, else its Linear)."""
    return max(i for i, m in enumerate(model) if isinstance(m, nn.Sigmoid))


@dataclass
class Figure1Config:
    steps: int = 5000  # SGD steps (the paper: 50,000)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    track_every: int = 100  # steps between percentile snapshots
    eval_every: int = 250  # steps between test-accuracy evaluations
    track_images: int = 1000  # test images whose sigmoid inputs are summarized
    data_dir: str = ""
    device: str = "cpu"
    overrides: dict = field(default_factory=dict)  # e.g. {"lr": 0.03}: a neighbouring choice


def run_arm(cfg: Figure1Config, bn: bool) -> list[dict]:
    """Every seed of one network (with or without BN), as one batched computation (bnpaper.engine),
    tracking the percentiles of the last hidden layer's sigmoid inputs for each run."""
    ds = data_mod.load(cfg.data_dir)
    cfgs = [
        paper_network(cfg.steps, s, bn, cfg.device, cfg.data_dir, cfg.eval_every, **cfg.overrides)
        for s in cfg.seeds
    ]
    depth = _sigmoid_input_depth(build_model(cfgs[0]))
    x_track = ds.x_test[: cfg.track_images].to(resolve_device(cfg.device))
    q = torch.tensor([p / 100 for p in PERCENTILES], device=x_track.device)
    snaps: list[list] = [[] for _ in cfgs]
    steps: list[int] = []

    @torch.no_grad()
    def on_step(step, runs):
        if step % cfg.track_every == 0 or step == 1:
            runs.train(False)  # eval mode: BN with its running statistics
            h = runs.prefix(x_track, depth, shared_input=True).float()  # (R, images, units)
            runs.train(True)
            per_run = torch.quantile(h, q, dim=1).permute(1, 2, 0).cpu().tolist()  # (R, units, 3)
            for r, snap in enumerate(per_run):
                snaps[r].append(snap)
            steps.append(step)

    results = train_many(cfgs, on_step=on_step, desc=f"figure 1 {'bn' if bn else 'no bn'}")
    out = []
    for (_, h), snap in zip(results, snaps):
        last = len(steps) if not h["diverged"] else sum(st < h["diverged_at"] for st in steps)
        out.append(
            {
                "eval_steps": h["eval_steps"],
                "test_acc": h["test_acc"],
                "final_test_acc": h["final_test_acc"],
                "diverged": h["diverged"],
                "diverged_at": h["diverged_at"],
                "track_steps": steps[:last],
                "percentiles": snap[:last],
                "data": h["data"],
                "train_seconds": h["train_seconds"],
            }
        )
    return out


def run(cfg: Figure1Config) -> dict:
    """Both networks, each arm's seeds batched, the two arms in parallel worker processes."""
    arms = map_tasks(run_arm, [(cfg, False), (cfg, True)])
    return {"no_bn": arms[0], "bn": arms[1]}


def drift(percentiles: list) -> dict[str, np.ndarray]:
    """Per unit, how much its input distribution moved over training.

    percentiles: (T, units, 3) snapshots of the 15/50/85th percentiles.
    Returns per unit (units,): the range over training of the median ("median_range"), and of the
    spread p85 - p15 ("spread_range"), both divided by the unit's mean spread over training, so that
    units (and networks) of different scale compare; plus the unscaled median range.
    """
    p = np.asarray(percentiles)  # (T, U, 3)
    med, spread = p[:, :, 1], p[:, :, 2] - p[:, :, 0]
    scale = np.maximum(spread.mean(0), 1e-12)
    return {
        "median_range": (med.max(0) - med.min(0)) / scale,
        "spread_range": (spread.max(0) - spread.min(0)) / scale,
        "median_range_abs": med.max(0) - med.min(0),
    }


def typical_unit(percentiles: list) -> int:
    """The unit whose relative median drift is the median over units: a 'typical' sigmoid."""
    d = drift(percentiles)["median_range"]
    return int(np.argsort(d)[len(d) // 2])


def summarize(result: dict) -> dict:
    out = {}
    for key, runs in result.items():
        ok = [r for r in runs if not r["diverged"]]
        med = [float(np.median(drift(r["percentiles"])["median_range"])) for r in ok]
        spr = [float(np.median(drift(r["percentiles"])["spread_range"])) for r in ok]
        out[key] = {
            "final_test_acc": mean_std([r["final_test_acc"] for r in runs]),
            "median_drift": mean_std(med),
            "spread_drift": mean_std(spr),
            "runs": len(runs),
            "diverged": len(runs) - len(ok),
        }
    return out


@dataclass
class NeighbourConfig:
    base: Figure1Config = field(default_factory=Figure1Config)
    neighbours: dict = field(default_factory=lambda: dict(NEIGHBOURS))


def neighbours(cfg: NeighbourConfig) -> dict:
    """Final test accuracy with and without BN at each neighbouring (lr, init std) choice."""
    out = {}
    for name, over in cfg.neighbours.items():
        res = run(replace(cfg.base, overrides=over))
        out[name] = {
            k: {
                "final_test_acc": [r["final_test_acc"] for r in v],
                "diverged": [r["diverged"] for r in v],
                "median_drift": [
                    float(np.median(drift(r["percentiles"])["median_range"])) for r in v if not r["diverged"]
                ],
            }
            for k, v in res.items()
        }
    return out
