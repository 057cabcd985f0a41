"""Chapter "BN enables higher learning rates" (paper Sec. 3.3, source text 4.1).

identities     the three scale identities over a range of a, eps = 0 and eps > 0
weight_growth  ||W|| and ||dl/dW|| of each layer over training, with and without BN; and the
               1/a law checked directly by rescaling a trained BN layer's weights
jacobians      singular values of the layer-to-layer Jacobians of trained networks
lr_sweep       final accuracy and divergence over a log grid of learning rates
deep_sigmoid   a deep sigmoid network with and without BN
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as TF
from torch import nn

from bnpaper import data as data_mod
from bnpaper.engine import trained_many
from bnpaper.theory import scale_identity_gaps, scale_output_bound
from bnpaper.train import TrainConfig, train, trained

PROFILES = {
    "smoke": {
        "steps": 20,
        "seeds": 2,
        "lrs": [0.1, 10.0],
        "sweep_steps": 10,
        "mlp_sweep_steps": 10,
        "sigmoid_steps": 20,
        "track_every": 5,
    },
    "quick": {
        "steps": 2000,
        "seeds": 3,
        "lrs": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
        "sweep_steps": 300,
        "mlp_sweep_steps": 1000,
        "sigmoid_steps": 1500,
        "track_every": 50,
    },
    "paper": {
        "steps": 10000,
        "seeds": 3,
        "lrs": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
        "sweep_steps": 1000,
        "mlp_sweep_steps": 3000,
        "sigmoid_steps": 10000,
        "track_every": 200,
    },
}


def mlp_config(profile: str, device: str = "cpu", data_dir: str = "", **kw) -> TrainConfig:
    """The paper's MNIST network (Sec. 4.1): 3 x 100 sigmoid units, mini-batches of 60, plain SGD."""
    p = PROFILES[profile]
    base = dict(
        model="mlp",
        hidden=[100, 100, 100],
        activation="sigmoid",
        batch_size=60,
        lr=0.5,
        momentum=0.0,
        steps=p["steps"],
        eval_every=max(1, p["steps"] // 10),
        device=device,
        data_dir=data_dir,
    )
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------------------- identities


@dataclass
class IdentityConfig:
    scales: list[float] = field(default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0])
    eps_values: list[float] = field(default_factory=lambda: [0.0, 1e-5, 1e-3])
    shape: list[int] = field(default_factory=lambda: [60, 100, 50])  # (m, C_in, C_out)
    seed: int = 0


def identities(cfg: IdentityConfig) -> dict:
    g = torch.Generator().manual_seed(cfg.seed)
    m, c_in, c_out = cfg.shape
    W = torch.randn(c_out, c_in, generator=g, dtype=torch.float64) / c_in**0.5
    u = torch.randn(m, c_in, generator=g, dtype=torch.float64)
    out = {}
    for eps in cfg.eps_values:
        rows = []
        for a in cfg.scales:
            gaps = scale_identity_gaps(W, u, a, eps)
            gaps["a"] = a
            gaps["output_bound"] = scale_output_bound(W, u, a, eps) if eps > 0 else 0.0
            rows.append(gaps)
        out[str(eps)] = rows
    return out


# ----------------------------------------------------------------------------- weight growth


def _linear_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@dataclass
class GrowthConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # an MLP; bn is set per variant
    track_every: int = 50
    scales: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0])


def weight_growth(cfg: GrowthConfig) -> dict:
    """Per variant: steps, ||W_l|| and ||dl/dW_l|| per hidden layer; and for the BN net the gradient
    norm of the first layer after rescaling its weights by a (should be ~ 1/a, Sec. 3.3)."""
    out = {}
    for bn in (False, True):
        rec = {"steps": [], "w_norm": [], "g_norm": []}

        def on_step(step, model, rec=rec):  # called after opt.step(); gradients are those of this step
            if step % cfg.track_every == 0 or step == 1:
                layers = _linear_layers(model)[:-1]  # hidden layers (the output layer has no BN after it)
                rec["steps"].append(step)
                rec["w_norm"].append([layer.weight.norm().item() for layer in layers])
                rec["g_norm"].append(
                    [
                        layer.weight.grad.norm().item() if layer.weight.grad is not None else float("nan")
                        for layer in layers
                    ]
                )

        model, hist = train(
            replace(cfg.train, bn=bn), on_step=on_step, desc=f"mlp {'bn' if bn else 'no bn'} (norms)"
        )
        rec["final_test_acc"], rec["diverged"] = hist["final_test_acc"], hist["diverged"]
        if bn and not hist["diverged"]:
            rec["rescaled"] = _rescaled_gradients(model, cfg)
        out["bn" if bn else "no_bn"] = rec
    return out


def _rescaled_gradients(model: nn.Module, cfg: GrowthConfig) -> list[dict]:
    ds = data_mod.load(cfg.train.data_dir)
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.train.seed)
    idx = torch.randperm(len(ds.y_train), generator=g)[: cfg.train.batch_size]
    x, y = ds.x_train[idx].to(dev), ds.y_train[idx].to(dev)
    rows = []
    for a in cfg.scales:
        net = copy.deepcopy(model).train()
        first = _linear_layers(net)[0]
        with torch.no_grad():
            first.weight.mul_(a)
        loss = TF.cross_entropy(net(x), y)
        loss.backward()
        rows.append({"a": a, "loss": loss.item(), "grad_norm": first.weight.grad.norm().item()})
    return rows


# ----------------------------------------------------------------------------- Jacobians


@dataclass
class JacobianConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # an MLP; bn is set per variant
    examples: int = 100  # test examples at which the Jacobians are taken


def _blocks(model: nn.Sequential) -> list[nn.Sequential]:
    """Split an MLP into hidden-layer blocks: Linear [-> BN] -> activation [-> Dropout]."""
    blocks, cur = [], []
    for mod in list(model)[1:-1]:  # skip Flatten and the output Linear
        if isinstance(mod, nn.Linear) and cur:
            blocks.append(nn.Sequential(*cur))
            cur = []
        cur.append(mod)
    blocks.append(nn.Sequential(*cur))
    return blocks


def jacobians(cfg: JacobianConfig) -> dict:
    """Singular values of d h_{l+1} / d h_l (per example, eval mode: BN with population
    statistics) between consecutive hidden layers of the trained MLP, with and without BN."""
    ds = data_mod.load(cfg.train.data_dir)
    out = {}
    for bn in (False, True):
        model, hist = trained(replace(cfg.train, bn=bn), desc=f"mlp {'bn' if bn else 'no bn'}")
        model = model.cpu().double().eval()
        blocks = _blocks(model)
        x = ds.x_test[: cfg.examples].double().flatten(1)  # (E, 784)
        with torch.no_grad():
            h = blocks[0](x)  # first hidden layer's output
        svs = []
        for blk in blocks[1:]:
            J = torch.func.vmap(torch.func.jacrev(lambda v, blk=blk: blk(v.unsqueeze(0)).squeeze(0)))(
                h
            )  # (E, 100, 100)
            svs.append(torch.linalg.svdvals(J).flatten().tolist())
            with torch.no_grad():
                h = blk(h)
        out["bn" if bn else "no_bn"] = {"singular_values": svs, "final_test_acc": hist["final_test_acc"]}
    return out


# ----------------------------------------------------------------------------- learning-rate sweep


@dataclass
class SweepConfig:
    base: TrainConfig = field(default_factory=TrainConfig)  # model, steps, ...; lr, bn, seed set below
    lrs: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    learned: float = 0.5  # a run "trains" if its final test accuracy is at least this (chance is 0.1)


def lr_sweep(cfg: SweepConfig) -> dict:
    cells = [(bn, lr, s) for bn in (False, True) for lr in cfg.lrs for s in cfg.seeds]
    cfgs = [replace(cfg.base, bn=bn, lr=lr, seed=s) for bn, lr, s in cells]
    out: dict[str, dict] = {"no_bn": {}, "bn": {}}
    for (bn, lr, s), (_, h) in zip(cells, trained_many(cfgs, desc=f"{cfg.base.model} lr sweep")):
        out["bn" if bn else "no_bn"].setdefault(str(lr), []).append(
            {
                "seed": s,
                "diverged": h["diverged"],
                "diverged_at": h["diverged_at"],
                "final_test_acc": h["final_test_acc"],
            }
        )
    return out


def max_stable_lr(sweep: dict, learned: float) -> dict[str, float | None]:
    """Largest learning rate at which no seed diverged and every seed reached `learned` accuracy."""
    out = {}
    for key, by_lr in sweep.items():
        ok = [
            float(lr)
            for lr, rows in by_lr.items()
            if all(
                not r["diverged"] and r["final_test_acc"] is not None and r["final_test_acc"] >= learned
                for r in rows
            )
        ]
        out[key] = max(ok) if ok else None
    return out


# ----------------------------------------------------------------------------- deep sigmoid


@dataclass
class DeepSigmoidConfig:
    base: TrainConfig = field(default_factory=TrainConfig)
    depth: int = 10  # hidden layers of 100 sigmoid units
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


def deep_sigmoid(cfg: DeepSigmoidConfig) -> dict:
    deep = replace(cfg.base, model="mlp", hidden=[100] * cfg.depth, activation="sigmoid")
    cells = [(bn, s) for bn in (False, True) for s in cfg.seeds]
    done = trained_many([replace(deep, bn=bn, seed=s) for bn, s in cells], desc="deep sigmoid")
    out: dict[str, list] = {"no_bn": [], "bn": []}
    for (bn, _s), (_, h) in zip(cells, done):
        keys = ("eval_steps", "test_acc", "final_test_acc", "diverged", "diverged_at")
        out["bn" if bn else "no_bn"].append({k: h[k] for k in keys})
    return out
