"""Chapter "Does BN work by reducing internal covariate shift?": the paper's title claim against
what came after (Santurkar et al. 2018; Bjorck et al. 2018; van Laarhoven 2017; Arora et al.
2019; Yang et al. 2019), on the Sec. 4.1 MNIST network, and its claims.

One training sweep, measured as it trains: the Sec. 4.1 MLP (3 x 100 sigmoid units, mini-batches
of 60, SGD with momentum 0.9, N(0, 0.1^2) init; `figure1.paper_network`) in five arms over the
same evaluation seeds:

  no_bn      without BN, at its own tuned learning rate;
  bn         with BN, at its own tuned learning rate;
  noisy_bn   with BN and Santurkar et al.'s noise after every BN (`models.BNNoise`: a per-unit
             shift and scale drawn afresh each step), at BN's tuned rate, as they did;
  bn_low_lr  with BN at the no-BN network's tuned rate (Bjorck et al.);
  bn_wd      with BN and weight decay WEIGHT_DECAY, at BN's rate (van Laarhoven; Arora et al.).

Every `measure_every` steps, on a fixed set of training digits in train mode (the running
averages are put back afterwards):

  * distributional shift (the paper's sense): each hidden layer's input, per unit mean and std;
    the drift between measurements in units of the earlier std (`distribution_drift`);
  * gradient-based shift (Santurkar et al.): for hidden layer i >= 2, G = dL/dW_i, and G' = dL/dW_i
    after layers 1 .. i-1 take a plain SGD step of the arm's rate on the same digits;
    ||G - G'|| / ||G|| and cos(G, G');
  * the landscape along the gradient g: for steps eta = ETA x the arm's rate, the loss and the
    gradient at w - eta g: the loss's range, the largest gradient change ("predictiveness") and
    the effective beta-smoothness max ||grad(w - eta g) - g|| / ||eta g||;
  * the top eigenvalue of the Hessian, by power iteration on Hessian-vector products (double
    backward through bnpaper's BN);
  * the norm of each scale-invariant weight matrix (the ones before a BN) and the effective
    learning rate lr / ||W||^2.

Separately, at initialization only (Yang et al.): deep ReLU MLPs of DEPTHS hidden layers with BN
and without (He init), the ratio of the first to the last hidden layer's gradient norm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn
from torch.func import functional_call, vmap

from bnpaper import counting, profiles
from bnpaper import data as data_mod
from bnpaper.bidi import ltr
from bnpaper.device import resolve_device
from bnpaper.engine import map_tasks, train_many
from bnpaper.experiments.figure1 import LR_GRID, paper_network, tuning_base
from bnpaper.protocol import Claim, Protocol, confirmatory, log_ratio_t, one_sample_t, paired_t
from bnpaper.text import Catalog, tuning_seed_fields
from bnpaper.train import TrainConfig, build_model
from bnpaper.tuning import Tuning

T = Catalog(__name__)  # this experiment's English and Arabic text: ics.yml

settings = partial(profiles.settings, "ics")  # (profile, steps=0) -> this experiment's numbers

ARMS = ("no_bn", "bn", "noisy_bn", "bn_low_lr", "bn_wd")
NOISE = 1.0  # BNNoise level: shift ~ U(-1, 1), scale ~ U(1, 2) per unit and step
WEIGHT_DECAY = 1e-3  # the bn_wd arm's L2 coefficient
ETA = (0.25, 0.5, 1.0, 2.0, 4.0)  # landscape steps, in multiples of the arm's learning rate
DEPTHS = (5, 10, 20, 30, 50)  # hidden layers of the deep nets at initialization (Yang et al.)


TUNINGS = (  # the Sec. 4.1 network, tuned at this chapter's run length
    Tuning("ics/no_bn", "lr", LR_GRID, tuning_base(False, "ics")),
    Tuning("ics/bn", "lr", LR_GRID, tuning_base(True, "ics")),
)


@dataclass
class ICSConfig:
    steps: int = 1000  # SGD steps per run
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    lr: dict = field(default_factory=lambda: {"no_bn": 0.08, "bn": 0.32})  # the tuned rates
    eval_every: int = 100
    measure_every: int = 100  # steps between measurements (and at step 1)
    measure_images: int = 500  # fixed training digits the measurements use
    power_iters: int = 20  # Hessian power iterations per measurement
    arms: tuple = ARMS
    data_dir: str = ""
    device: str = "cpu"


def arm_configs(cfg: ICSConfig, arm: str) -> list[TrainConfig]:
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    bn = arm != "no_bn"
    lr = cfg.lr["no_bn"] if arm in ("no_bn", "bn_low_lr") else cfg.lr["bn"]
    extra = {"bn_noise": NOISE} if arm == "noisy_bn" else {}
    wd = WEIGHT_DECAY if arm == "bn_wd" else 0.0
    return [
        paper_network(
            cfg.steps,
            s,
            bn,
            lr=lr,
            weight_decay=wd,
            eval_every=cfg.eval_every,
            final_train_acc=False,
            data_dir=cfg.data_dir,
            device=cfg.device,
            **extra,
        )
        for s in cfg.seeds
    ]


# ----------------------------------------------------------------------------- pure measurements


def distribution_drift(means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Drift of a layer's input distribution between consecutive measurements, per run:
    mean over units of |mu_t - mu_{t-1}| / sigma_{t-1} + |log sigma_t - log sigma_{t-1}|.

    means, stds: (T, R, units) -> (T - 1, R). Scale-free: the same for inputs scaled by any a > 0.
    """
    s = np.maximum(stds, 1e-12)
    shift = np.abs(np.diff(means, axis=0)) / s[:-1]
    spread = np.abs(np.diff(np.log(s), axis=0))
    return (shift + spread).mean(-1)


def effective_beta(grad_change: np.ndarray, eta: np.ndarray, grad_norm: np.ndarray) -> np.ndarray:
    """max over steps of ||grad(w - eta g) - g|| / (eta ||g||): (E, R), (E, R), (R,) -> (R,)."""
    return (grad_change / (eta * grad_norm[None, :])).max(0)


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y against x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc**2).sum())


# ----------------------------------------------------------------------------- the sweep


class _Probe:
    """Measurements of R batched runs (bnpaper.engine.Runs) on fixed digits, in train mode."""

    def __init__(self, runs, x: torch.Tensor, y: torch.Tensor, lr: torch.Tensor, power_iters: int):
        self.runs, self.x, self.y, self.lr = runs, x, y, lr  # lr: (R,)
        self.power_iters = power_iters
        seq = list(runs.template)
        self.linear = [i for i, m in enumerate(seq) if isinstance(m, nn.Linear)]  # module indices
        self.before_bn = [i for i in self.linear[:-1] if runs.template[i].bias is None]
        self.R = runs.R

    def losses(self, params: dict) -> torch.Tensor:
        """(R,) cross-entropy of each run on the fixed digits."""
        buffers = {**self.runs.buffers, **self.runs.masks}

        def one(p, b):
            return TF.cross_entropy(functional_call(self.runs.template, (p, b), (self.x,)), self.y)

        return vmap(one, randomness="error")(params, buffers)

    def grads(self, params: dict, create_graph: bool = False) -> tuple[dict, dict, torch.Tensor]:
        """({name: (R, ...) gradient}, the leaves they are taken at, the (R,) losses)."""
        leaf = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
        losses = self.losses(leaf)
        g = torch.autograd.grad(losses.sum(), list(leaf.values()), create_graph=create_graph)
        return dict(zip(leaf, g)), leaf, losses

    def measure(self) -> dict:
        runs, R = self.runs, self.R
        saved = runs.flat_buffers.clone()  # train-mode forwards update running averages
        p0 = {k: v.detach().clone() for k, v in runs.params.items()}
        out: dict = {}
        with torch.no_grad():  # the distribution of each hidden layer's input (layers 2 ..)
            mu, sd = [], []
            for i in self.linear[1:]:  # the inputs of hidden layers 2, 3, ... and of the output layer
                h = runs.prefix(self.x, i, shared_input=True).double()  # (R, N, units)
                mu.append(h.mean(1).tolist())
                sd.append(h.std(1).tolist())
            out["input_mean"], out["input_std"] = mu, sd
        g, _, _ = self.grads(p0)
        flat = lambda d: torch.cat([d[k].reshape(R, -1) for k in d], 1)  # noqa: E731 (R, P)
        gnorm = flat(g).norm(dim=1)  # (R,)
        # gradient-based shift of hidden layers 2 ..: earlier layers step first, same digits
        rel, cos = [], []
        for i in self.linear[1:-1]:
            w = f"{i}.weight"
            earlier = {
                k: (v - self.lr.view(R, *[1] * (v.dim() - 1)) * g[k] if int(k.split(".")[0]) < i else v)
                for k, v in p0.items()
            }
            g2, _, _ = self.grads(earlier)
            a, b = g[w].reshape(R, -1), g2[w].reshape(R, -1)
            rel.append(((a - b).norm(dim=1) / a.norm(dim=1)).tolist())
            cos.append(TF.cosine_similarity(a, b, dim=1).tolist())
        out["ics_rel"], out["ics_cos"] = rel, cos
        # the landscape along -g
        loss_eta, change = [], []
        for e in ETA:
            step = (e * self.lr).view(R, 1)
            moved = {k: v - step.view(R, *[1] * (v.dim() - 1)) * g[k] for k, v in p0.items()}
            g_e, _, losses = self.grads(moved)  # the loss at w - eta g comes with its gradient
            loss_eta.append(losses.tolist())
            change.append((flat(g_e) - flat(g)).norm(dim=1).tolist())
        out["loss_eta"], out["grad_change"], out["grad_norm"] = loss_eta, change, gnorm.tolist()
        out["top_eig"] = self.top_eigenvalue(p0).tolist()
        out["w_norm"] = [p0[f"{i}.weight"].reshape(R, -1).norm(dim=1).tolist() for i in self.before_bn]
        runs.flat_buffers.copy_(saved)
        return out

    def top_eigenvalue(self, p0: dict) -> torch.Tensor:
        """Largest eigenvalue of each run's Hessian, by power iteration on Hessian-vector products."""
        R = self.R
        gen = torch.Generator().manual_seed(0)
        v = {k: torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device) for k, t in p0.items()}
        lam = torch.zeros(R, dtype=torch.float64)
        for _ in range(self.power_iters):
            norm = torch.sqrt(sum(t.reshape(R, -1).pow(2).sum(1) for t in v.values()))  # (R,)
            v = {k: t / norm.view(R, *[1] * (t.dim() - 1)) for k, t in v.items()}
            g, leaf, _ = self.grads(p0, create_graph=True)
            dot = sum((g[k] * v[k]).sum() for k in g)
            hv = torch.autograd.grad(dot, list(leaf.values()))
            hv = dict(zip(leaf, hv))
            lam = sum((hv[k] * v[k]).reshape(R, -1).sum(1) for k in hv).detach().double()
            v = {k: t.detach() for k, t in hv.items()}
        return lam


def run_arm(cfg: ICSConfig, arm: str) -> list[dict]:
    """Every seed of one arm, batched (bnpaper.engine), measured every `measure_every` steps."""
    ds = data_mod.load(cfg.data_dir)
    device = resolve_device(cfg.device)
    cfgs = arm_configs(cfg, arm)
    x = ds.x_train[: cfg.measure_images].to(device)
    y = ds.y_train[: cfg.measure_images].to(device)
    lr = torch.tensor([c.lr for c in cfgs], device=device)
    rows: list[dict] = []
    steps: list[int] = []

    def on_step(step, runs):
        if step % cfg.measure_every == 0 or step == 1:
            rows.append(_Probe(runs, x, y, lr, cfg.power_iters).measure())
            steps.append(step)

    results = train_many(cfgs, on_step=on_step, desc=f"ics {arm}")
    out = []
    for r, ((_, h), c) in enumerate(zip(results, cfgs)):
        stop = len(steps) if not h["diverged"] else sum(s < h["diverged_at"] for s in steps)
        pick = lambda key, stop=stop: [m[key] for m in rows[:stop]]  # noqa: E731 per measurement
        out.append(
            {
                "seed": c.seed,
                "lr": c.lr,
                "steps": steps[:stop],
                "diverged": h["diverged"],
                "final_val_acc": h["final_val_acc"],
                "final_test_acc": h["final_test_acc"],
                "val_acc": h["val_acc"],
                "eval_steps": h["eval_steps"],
                "loss": h["loss"],
                "input_mean": [[layer[r] for layer in m] for m in pick("input_mean")],  # (T, layers, units)
                "input_std": [[layer[r] for layer in m] for m in pick("input_std")],
                "ics_rel": [[layer[r] for layer in m] for m in pick("ics_rel")],  # (T, layers)
                "ics_cos": [[layer[r] for layer in m] for m in pick("ics_cos")],
                "loss_eta": [[e[r] for e in m] for m in pick("loss_eta")],  # (T, eta)
                "grad_change": [[e[r] for e in m] for m in pick("grad_change")],
                "grad_norm": [m[r] for m in pick("grad_norm")],  # (T,)
                "top_eig": [m[r] for m in pick("top_eig")],
                "w_norm": [[layer[r] for layer in m] for m in pick("w_norm")],  # (T, layers)
            }
        )
    return out


def series(r: dict) -> dict:
    """One run's curves over its measurements: steps (T,), drift (T - 1,: between measurements,
    averaged over layers), ics_rel and ics_cos (T,: averaged over layers), beta, predictiveness and
    loss_range (T,: over the landscape steps), top_eig (T,), w_norm and eff_lr (T,: averaged over the
    weight matrices before a BN; empty without BN)."""
    means = [np.asarray(m)[:, None] for m in zip(*r["input_mean"])]  # per layer (T, 1, units)
    stds = [np.asarray(sd)[:, None] for sd in zip(*r["input_std"])]
    drift = np.mean([distribution_drift(m, sd)[:, 0] for m, sd in zip(means, stds)], axis=0)
    change = np.asarray(r["grad_change"])  # (T, eta)
    eta = np.asarray(ETA)[None, :] * r["lr"]
    gn = np.asarray(r["grad_norm"])  # (T,)
    w = np.asarray(r["w_norm"])  # (T, layers before a BN)
    return {
        "steps": r["steps"],
        "drift": drift.tolist(),
        "ics_rel": np.mean(r["ics_rel"], axis=1).tolist(),
        "ics_cos": np.mean(r["ics_cos"], axis=1).tolist(),
        "beta": effective_beta(change.T, eta.T.repeat(len(gn), 1), gn).tolist(),
        "predictiveness": change.max(1).tolist(),
        "loss_range": np.ptp(np.asarray(r["loss_eta"]), axis=1).tolist(),
        "top_eig": list(r["top_eig"]),
        "w_norm": w.mean(1).tolist() if w.size else [],
        "eff_lr": (r["lr"] / w**2).mean(1).tolist() if w.size else [],
    }


SUMMARIZED = ("drift", "ics_rel", "ics_cos", "beta", "predictiveness", "loss_range", "top_eig")


def summarize(runs: list[dict]) -> dict:
    """Per-seed scalars of one arm (None for a diverged run): each curve's mean over measurements,
    the final validation and test accuracy, and the effective learning rate at the last measurement."""
    out: dict = {k: [] for k in (*SUMMARIZED, "eff_lr_final")}
    out["final_val_acc"] = [r["final_val_acc"] for r in runs]
    out["final_test_acc"] = [r["final_test_acc"] for r in runs]
    for r in runs:
        ok = not r["diverged"] and len(r["steps"]) >= 2
        cur = series(r) if ok else {}
        for k in SUMMARIZED:
            out[k].append(float(np.mean(cur[k])) if ok else None)
        out["eff_lr_final"].append(cur["eff_lr"][-1] if ok and cur["eff_lr"] else None)
    return out


def geo_ratio(summary: dict, a: str, b: str, key: str) -> float:
    """Geometric mean over seeds of arm a's per-seed `key` over arm b's (a seed without a number in
    either arm, a diverged run, is left out)."""
    ratio = np.asarray(summary[a][key], float) / np.asarray(summary[b][key], float)  # (seeds,)
    return float(np.exp(np.nanmean(np.log(ratio))))


def run(cfg: ICSConfig) -> dict:
    """Every arm of the sweep, with per-seed summaries; the arms run side by side in the worker
    processes (bnpaper.engine.map_tasks), each measured by its own training loop."""
    arms = dict(zip(cfg.arms, map_tasks(run_arm, [(cfg, arm) for arm in cfg.arms])))
    return {"arms": arms, "summary": {arm: summarize(rows) for arm, rows in arms.items()}}


# ----------------------------------------------------------------------------- depth at init


@dataclass
class DepthConfig:
    depths: list[int] = field(default_factory=lambda: list(DEPTHS))
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    width: int = 100
    batch: int = 60
    data_dir: str = ""


def gradient_ratio(depth: int, bn: bool, seed: int, x: torch.Tensor, y: torch.Tensor, width: int) -> float:
    """||dL/dW_first|| / ||dL/dW_last hidden|| of a deep ReLU MLP at init (He init without BN)."""
    cfg = TrainConfig(model="mlp", hidden=[width] * depth, activation="relu", bn=bn, init="he", seed=seed)
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    loss = TF.cross_entropy(model(x), y)
    lin = [m for m in model if isinstance(m, nn.Linear)]
    g_first, g_last = torch.autograd.grad(loss, [lin[0].weight, lin[-2].weight])
    return float(g_first.norm() / g_last.norm())


def run_depth(cfg: DepthConfig) -> dict:
    """Per seed, the gradient-norm ratio at each depth and its log's slope against depth."""
    ds = data_mod.load(cfg.data_dir)
    x, y = ds.x_train[: cfg.batch], ds.y_train[: cfg.batch]
    out: dict = {"depths": list(cfg.depths)}
    for key, bn in (("bn", True), ("no_bn", False)):
        ratios = [[gradient_ratio(d, bn, s, x, y, cfg.width) for d in cfg.depths] for s in cfg.seeds]
        out[key] = {
            "ratio": ratios,  # (seeds, depths)
            "slope": [slope(cfg.depths, np.log(r)) for r in ratios],
        }
    return out


# ----------------------------------------------------------------------------- claims

FIXED = "2026-11-26"
_tune, _eval = profiles.tuning_seeds("quick"), profiles.eval_seeds("quick")
_TS = T("ts", **tuning_seed_fields(_tune, with_noun=False))
NET = T("net")
TUNED = T("tuned", lr_grid_first=LR_GRID[0], lr_grid_last=LR_GRID[-1], ts=_TS)
NEW = T("new")
_q, _p = (profiles.SETTINGS["ics"][k]["measure_images"] for k in ("quick", "paper"))
DIGITS = T(
    "digits",
    q=_q,
    p=_p,
    q_digits=counting.counted(_q, "digit", "ar"),
    p_digits=counting.counted(_p, "digit", "ar"),
)
DIGITS_V2 = (  # version 2 of the three measured-on-digits claims, fixed before any new run
    "2026-11-27",
    T("digits_v2", q=_q, p=_p),
)


def _ratio(key: str, num: str, den: str):
    def estimate(m: dict):
        return log_ratio_t(m[num][key], m[den][key])

    return estimate


def _acc(a: str, b: str):
    def estimate(m: dict):
        return paired_t(m[a]["final_val_acc"], m[b]["final_val_acc"])

    return estimate


def _depth_slope(m: dict):
    return one_sample_t(m["bn"]["slope"])


def _depth_gap(m: dict):
    return paired_t(m["bn"]["slope"], m["no_bn"]["slope"])


def _claim(cid, en, ar, where, label, protocol, estimate, paper="-", paper_ar=""):
    """A claim measured in chapter 09; one from a later paper (`where` names it) is a later finding."""
    later = not where.startswith("paper")
    return Claim(
        id=cid,
        en=en,
        ar=ar,
        where=where,
        paper=paper,
        chapter="09_ics",
        label=label,
        protocol=protocol,
        estimate=estimate,
        paper_ar=paper_ar,
        later=later,
    )


def _protocol(arms, statistic, interval, kind, margin, scale="difference", tuned=TUNED, v2=False):
    version, fixed, changes = (2, *DIGITS_V2) if v2 else (1, FIXED, NEW)
    return Protocol(
        version=version,
        fixed=fixed,
        arms=arms,
        tuned=tuned,
        statistic=statistic,
        interval=interval,
        kind=kind,
        margin=margin,
        scale=scale,
        changes=changes,
    )


CLAIMS = (
    _claim(
        "ics-distribution",
        *T("ics-distribution.claim"),
        "paper 2",
        "sec-ics-measured",
        _protocol(
            T("ics-distribution.arms", net=NET),
            T("ics-distribution.statistic", digits=DIGITS),
            "t on log ratios",
            "less",
            1.0,
            scale="ratio",
            v2=True,
        ),
        _ratio("drift", "bn", "no_bn"),
    ),
    _claim(
        "ics-gradient",
        *T("ics-gradient.claim"),
        "Santurkar et al. 2018, Sec. 2.2",
        "sec-ics-measured",
        _protocol(
            T("ics-gradient.arms", net=NET),
            T("ics-gradient.statistic", digits=DIGITS),
            "t on log ratios",
            "greater",
            0.8,
            scale="ratio",
            v2=True,
        ),
        _ratio("ics_rel", "bn", "no_bn"),
        **T.fields("ics-gradient.paper", "paper", "paper_ar"),
    ),
    _claim(
        "noisy-bn-as-fast",
        *T("noisy-bn-as-fast.claim"),
        "Santurkar et al. 2018, Sec. 2.1",
        "sec-ics-noisy",
        _protocol(
            T("noisy-bn-as-fast.arms", net=NET),
            T("noisy-bn-as-fast.statistic"),
            "paired t",
            "equivalent",
            0.02,
        ),
        _acc("noisy_bn", "bn"),
        **T.fields("noisy-bn-as-fast.paper", "paper", "paper_ar"),
    ),
    _claim(
        "noisy-bn-beats-no-bn",
        *T("noisy-bn-beats-no-bn.claim"),
        "Santurkar et al. 2018, Sec. 2.1",
        "sec-ics-noisy",
        _protocol(
            T("noisy-bn-beats-no-bn.arms", net=NET),
            T("noisy-bn-beats-no-bn.statistic"),
            "paired t",
            "greater",
            0.0,
        ),
        _acc("noisy_bn", "no_bn"),
        **T.fields("noisy-bn-beats-no-bn.paper", "paper", "paper_ar"),
    ),
    _claim(
        "bn-smoother",
        *T("bn-smoother.claim"),
        "Santurkar et al. 2018, Sec. 3.1",
        "sec-ics-smooth",
        _protocol(
            T("bn-smoother.arms", net=NET),
            T("bn-smoother.statistic", digits=DIGITS),
            "t on log ratios",
            "less",
            1.0,
            scale="ratio",
            v2=True,
        ),
        _ratio("beta", "bn", "no_bn"),
        **T.fields("bn-smoother.paper", "paper", "paper_ar"),
    ),
    _claim(
        "bn-same-lr",
        *T("bn-same-lr.claim"),
        "Bjorck et al. 2018",
        "sec-ics-lr",
        _protocol(
            T("bn-same-lr.arms", net=NET),
            T("bn-same-lr.statistic"),
            "paired t",
            "equivalent",
            0.01,
        ),
        _acc("bn_low_lr", "no_bn"),
        **T.fields("bn-same-lr.paper", "paper", "paper_ar"),
    ),
    _claim(
        "bn-gain-from-lr",
        *T("bn-gain-from-lr.claim"),
        "Bjorck et al. 2018",
        "sec-ics-lr",
        _protocol(
            T("bn-gain-from-lr.arms", net=NET),
            T("bn-gain-from-lr.statistic"),
            "paired t",
            "greater",
            0.0,
        ),
        _acc("bn", "bn_low_lr"),
        **T.fields("bn-gain-from-lr.paper", "paper", "paper_ar"),
    ),
    _claim(
        "wd-raises-effective-lr",
        *T("wd-raises-effective-lr.claim"),
        "van Laarhoven 2017",
        "sec-ics-effective-lr",
        _protocol(
            T("wd-raises-effective-lr.arms", net=NET, weight_decay=WEIGHT_DECAY),
            T("wd-raises-effective-lr.statistic"),
            "t on log ratios",
            "greater",
            1.0,
            scale="ratio",
        ),
        _ratio("eff_lr_final", "bn_wd", "bn"),
        **T.fields("wd-raises-effective-lr.paper", "paper", "paper_ar"),
    ),
    _claim(
        "bn-gradients-explode-with-depth",
        *T("bn-gradients-explode-with-depth.claim"),
        "Yang et al. 2019",
        "sec-ics-depth",
        _protocol(
            T("bn-gradients-explode-with-depth.arms"),
            T("bn-gradients-explode-with-depth.statistic"),
            "t",
            "greater",
            0.0,
            tuned=T("bn-gradients-explode-with-depth.tuned"),
        ),
        _depth_slope,
        **T.fields("bn-gradients-explode-with-depth.paper", "paper", "paper_ar"),
    ),
    _claim(
        "bn-depth-worse-than-he",
        *T("bn-depth-worse-than-he.claim"),
        "Yang et al. 2019",
        "sec-ics-depth",
        _protocol(
            T("bn-depth-worse-than-he.arms"),
            T("bn-depth-worse-than-he.statistic"),
            "paired t",
            "greater",
            0.0,
            tuned=T("bn-depth-worse-than-he.tuned"),
        ),
        _depth_gap,
        **T.fields("bn-depth-worse-than-he.paper", "paper", "paper_ar"),
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
    sesoi={
        "ics-distribution": (0.8, "reduction"),
        "noisy-bn-beats-no-bn": (0.005, "accuracy"),
        "bn-smoother": (0.8, "reduction"),
        "bn-gain-from-lr": (0.005, "accuracy"),
        "bn-gradients-explode-with-depth": (0.01, "slope"),
        "bn-depth-worse-than-he": (0.01, "slope"),
    },
    checks={
        "wd-raises-effective-lr": T("wd-raises-effective-lr.check_reason"),
    },
)


def profile_config(
    profile: str, lr: dict, data_dir: str = "", device: str = "cpu", steps: int = 0
) -> ICSConfig:
    s = settings(profile, steps=steps)
    return ICSConfig(
        steps=s["steps"],
        seeds=profiles.eval_seeds(profile),
        lr=lr,
        eval_every=s["eval_every"],
        measure_every=s["measure_every"],
        measure_images=s["measure_images"],
        power_iters=s["power_iters"],
        data_dir=data_dir,
        device=device,
    )


def depth_config(profile: str, data_dir: str = "") -> DepthConfig:
    s = settings(profile)
    return DepthConfig(depths=list(s["depths"]), seeds=profiles.eval_seeds(profile), data_dir=data_dir)


# ----------------------------------------------------------------------------- the chapter's conclusion

_SAID = {  # (English, Arabic) sentences, picked by verdict; {x} are numbers the code fills in
    "ics-distribution": {
        "holds": T("said.ics-distribution.holds"),
        "other": T("said.ics-distribution.other"),
    },
    "noisy-bn-as-fast": {
        "holds": T("said.noisy-bn-as-fast.holds"),
        "does_not_hold": T("said.noisy-bn-as-fast.does_not_hold"),
        "other": T("said.noisy-bn-as-fast.other"),
    },
    "ics-gradient": {
        "holds": T("said.ics-gradient.holds"),
        "does_not_hold": T("said.ics-gradient.does_not_hold"),
        "other": T("said.ics-gradient.other"),
    },
    "bn-smoother": {
        "holds": T("said.bn-smoother.holds"),
        "other": T("said.bn-smoother.other"),
    },
    "bn-gain-from-lr": {
        "holds": T("said.bn-gain-from-lr.holds"),
        "other": T("said.bn-gain-from-lr.other"),
    },
    "wd-raises-effective-lr": {
        "holds": T("said.wd-raises-effective-lr.holds"),
        "other": T("said.wd-raises-effective-lr.other"),
    },
    "bn-depth-worse-than-he": {
        "holds": T("said.bn-depth-worse-than-he.holds"),
        "other": T("said.bn-depth-worse-than-he.other"),
    },
}
_ENDPOINT = {  # BN at its rate against no BN at its rate: a description with its interval, not a claim
    "higher": T("endpoint.higher"),
    "lower": T("endpoint.lower"),
    "level": T("endpoint.level"),
}
_VERDICT_OF_MECHANISM = {  # the last sentence, from the verdicts of the shift, noisy BN and smoothness
    "against": T("verdict_of_mechanism.against"),
    "open": T("verdict_of_mechanism.open"),
    "no_benefit": T("verdict_of_mechanism.no_benefit"),
}
_REASONS = {
    "bn-smoother": T("reasons.bn-smoother"),
    "bn-gain-from-lr": T("reasons.bn-gain-from-lr"),
    "wd-raises-effective-lr": T("reasons.wd-raises-effective-lr"),
}


def conclusion(verdicts: dict, values: dict, endpoint, lang: str) -> str:
    """The closing paragraph, every sentence picked by a verdict and filled with the measured numbers.

    verdicts: claim id -> verdict; values: claim id -> the estimate's value (a ratio); endpoint: the
    Estimate of BN minus no BN in final validation accuracy (each at its tuned rate)."""
    k = 0 if lang == "en" else 1
    by_id = {c.id: c for c in CLAIMS}

    def num(v: float, digits: int = 2) -> str:  # a small ratio keeps two significant digits
        return ltr(f"{v:.2g}" if abs(v) < 0.1 else f"{v:.{digits}f}", lang)

    out = []
    for cid in ("ics-distribution", "noisy-bn-as-fast", "ics-gradient", "bn-smoother", "bn-gain-from-lr"):
        said = _SAID[cid]
        text = said.get(verdicts[cid], said["other"])[k]
        x = values.get("noisy_drift") if cid == "noisy-bn-as-fast" else values.get(cid)
        margin = counting.counted(round(by_id[cid].protocol.margin * 100), "point", lang)
        out.append(
            text.format(x=num(x, 1 if cid == "noisy-bn-as-fast" else 2) if x is not None else "-", m=margin)
        )
    if endpoint is not None and endpoint.n >= 2:
        kind = "higher" if endpoint.lo > 0 else "lower" if endpoint.hi < 0 else "level"
        d = abs(endpoint.value) if kind != "level" else endpoint.value
        interval = (
            f"{d * 100:.1f}"
            if kind != "level"
            else f"{d * 100:.1f} [{endpoint.lo * 100:.1f}, {endpoint.hi * 100:.1f}]"
        )
        out.append(_ENDPOINT[kind][k].format(d=ltr(interval, lang)))
    for cid in ("wd-raises-effective-lr", "bn-depth-worse-than-he"):
        said = _SAID[cid]
        x = values.get(cid)
        out.append(said.get(verdicts[cid], said["other"])[k].format(x=num(x, 1) if x is not None else "-"))
    reasons = [_REASONS[c][k] for c in _REASONS if verdicts.get(c) == "holds"]
    gain = endpoint is not None and endpoint.n >= 2 and endpoint.lo > 0
    if (
        endpoint is not None and endpoint.n >= 2 and not gain
    ):  # nothing to explain: say so, claim no mechanism
        out.append(_VERDICT_OF_MECHANISM["no_benefit"][k])
    elif verdicts["ics-distribution"] == "holds" and verdicts["noisy-bn-as-fast"] == "holds" and reasons:
        out.append(_VERDICT_OF_MECHANISM["against"][k].format(reasons=counting.and_list(reasons, lang)))
    else:
        out.append(_VERDICT_OF_MECHANISM["open"][k])
    return " ".join(out)


def conclude(judged: dict, summary: dict, lang: str) -> str:
    """`conclusion` from what the chapter judged (claim id -> (verdict, estimate)) and the sweep's
    summary: each claim's estimate, noisy BN's drift over BN's, and the endpoint BN - no BN in final
    validation accuracy (paired by seed, each arm at its tuned rate)."""
    values = {cid: est.value for cid, (_, est) in judged.items()}
    values["noisy_drift"] = geo_ratio(summary, "noisy_bn", "bn", "drift")
    endpoint = paired_t(summary["bn"]["final_val_acc"], summary["no_bn"]["final_val_acc"])
    return conclusion({cid: v for cid, (v, _) in judged.items()}, values, endpoint, lang)
