"""Chapter "BN regularizes the model" (paper Sec. 3.4, source text 4.2).

nondeterminism  one training example's logits and one hidden unit's BN output, recomputed with
                many different mini-batch companions: their spread as a function of m
dropout_grid    {no BN, BN} x {dropout 0, 0.5}: train and test accuracy, generalization gap
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, field, replace

import torch

from bnpaper import data as data_mod
from bnpaper.engine import trained_many
from bnpaper.inference import bn_layers
from bnpaper.train import TrainConfig, trained


@dataclass
class NondeterminismConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # the trained BN conv net
    ms: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128])
    draws: int = 200  # different sets of companions per m
    example: int = 0  # index of the training example followed
    unit: int = 0  # hidden unit of the last BN layer followed
    seed: int = 0  # which companions


@torch.no_grad()
def nondeterminism(cfg: NondeterminismConfig) -> dict:
    """Std over draws of the example's outputs when its m - 1 companions change (train mode)."""
    model, _ = trained(replace(cfg.train, bn=True), desc="convnet bn")
    net = copy.deepcopy(model).train()  # training mode: BN uses the mini-batch's statistics
    for mod in net.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.eval()  # isolate BN's noise from dropout's
    last_bn = list(bn_layers(net).values())[-1]
    captured = {}
    last_bn.register_forward_hook(lambda mod, inp, out: captured.__setitem__("y", out[0, cfg.unit].item()))
    ds = data_mod.load(cfg.train.data_dir)
    dev = next(net.parameters()).device
    x = ds.x_train.to(dev)
    others = torch.cat([torch.arange(cfg.example), torch.arange(cfg.example + 1, len(x))])
    g = torch.Generator().manual_seed(cfg.seed)
    out = {}
    for m in cfg.ms:
        logits, hidden = [], []
        for _ in range(cfg.draws):
            comp = others[torch.randperm(len(others), generator=g)[: m - 1]]
            batch = torch.cat([x[cfg.example : cfg.example + 1], x[comp.to(dev)]])  # the example first
            logits.append(net(batch)[0])
            hidden.append(captured["y"])
        L = torch.stack(logits)  # (draws, 10)
        out[str(m)] = {
            "logit_std": L.std(0).mean().item(),  # per-logit std over draws, averaged over the 10 logits
            "hidden_std": statistics.stdev(hidden),
            "pred_changes": int((L.argmax(1) != L.argmax(1).mode().values).sum().item()),
        }
    net.eval()
    det = [net(x[cfg.example : cfg.example + 1])[0] for _ in range(3)]
    out["eval_mode_max_diff"] = max((d - det[0]).abs().max().item() for d in det)
    return out


@dataclass
class GridConfig:
    base: TrainConfig = field(default_factory=TrainConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    dropouts: list[float] = field(default_factory=lambda: [0.0, 0.5])


def dropout_grid(cfg: GridConfig) -> dict:
    cells = [(bn, p, s) for bn in (False, True) for p in cfg.dropouts for s in cfg.seeds]
    done = trained_many(
        [replace(cfg.base, bn=bn, dropout=p, seed=s) for bn, p, s in cells], desc="dropout grid"
    )
    runs: dict[str, list] = {}
    for (bn, p, s), (_, h) in zip(cells, done):
        gap = None if h["diverged"] else h["final_train_acc"] - h["final_test_acc"]
        runs.setdefault(f"{'bn' if bn else 'no_bn'}|dropout={p}", []).append(
            {
                "seed": s,
                "diverged": h["diverged"],
                "train_acc": h["final_train_acc"],
                "test_acc": h["final_test_acc"],
                "gap": gap,
            }
        )
    return runs


def summarize_grid(runs: dict) -> dict[str, dict[str, tuple[float, float]]]:
    out = {}
    for key, rows in runs.items():
        out[key] = {}
        for metric in ("train_acc", "test_acc", "gap"):
            vals = [r[metric] for r in rows if r[metric] is not None]
            out[key][metric] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
        out[key]["n"] = len(rows)
        out[key]["diverged"] = sum(r["diverged"] for r in rows)
    return out


def dropout_verdict(summary: dict) -> dict:
    """Does "BN reduces the need for Dropout" hold here? Decided from the numbers:

    holds      : BN without dropout reaches at least the test accuracy of no-BN with dropout, and
                 adding dropout to BN does not raise test accuracy by more than one (pooled) std
    partly     : one of the two holds
    not        : neither
    """
    bn0, bn5 = summary["bn|dropout=0.0"]["test_acc"], summary["bn|dropout=0.5"]["test_acc"]
    nb5 = summary["no_bn|dropout=0.5"]["test_acc"]
    noise = max(bn0[1], bn5[1], nb5[1], 1e-4)
    replaces = bn0[0] >= nb5[0] - noise
    no_gain = bn5[0] - bn0[0] <= noise
    verdict = "holds" if replaces and no_gain else ("partly" if replaces or no_gain else "does_not_hold")
    return {
        "verdict": verdict,
        "bn_alone_vs_dropout_alone": bn0[0] - nb5[0],
        "dropout_gain_with_bn": bn5[0] - bn0[0],
        "noise": noise,
        "bn_replaces_dropout": replaces,
        "dropout_adds_nothing_to_bn": no_gain,
    }
