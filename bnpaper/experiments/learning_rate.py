"""Chapter "BN enables higher learning rates" (paper Sec. 3.3, source text 4.1).

identities     the three scale identities over a range of a, eps = 0 and eps > 0 (float64)
weight_growth  ||W|| and ||dl/dW|| of each hidden layer along training, over seeds, with and
               without BN (plain SGD: ||dW|| / lr is the gradient norm)
lr_sweep       per seed, the largest learning rate of a sqrt(2) grid that trains (validation), with and
               without BN
deep_sigmoid   a 10-layer sigmoid MLP, with and without BN, each arm at its own tuned learning rate
jacobians      singular values of the Jacobian from one BN output (the normalized vector of the whole
               mini-batch, train mode) to the next, at initialization and after training, vs depth

Each claim's protocol and estimate live in `CLAIMS` below; the arms tuned in `TUNINGS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from bnpaper import data as data_mod
from bnpaper import profiles, protocol
from bnpaper.device import resolve_device
from bnpaper.engine import Runs, train_many, trained_many
from bnpaper.layers import BatchNorm
from bnpaper.protocol import Claim, Estimate, Protocol, confirmatory
from bnpaper.text import Catalog
from bnpaper.theory import scale_identity_gaps, scale_output_bound
from bnpaper.train import TrainConfig, build_model
from bnpaper.tuning import Tuning

T = Catalog(__name__)  # this experiment's English and Arabic text: learning_rate.yml

EXPERIMENT = "learning_rate"
FIXED = "2026-11-25"
LEARNED = 0.5  # a sweep run "trains" if its final validation accuracy is at least this (chance 0.1)
GRID_STEPS = 2  # the learning-rate sweep's grid: 2 ** (k / GRID_STEPS) for integer k, a sqrt(2) grid
IDENTITY_TOL = 1e-10  # eps = 0: deviations below this are float64 rounding
NEAR_ONE = (0.5, 2.0)  # "close to 1": a singular value within a factor 2 of 1
DEEP_LRS = tuple(2.0**k for k in range(-8, 2))  # 2x grid for each deep sigmoid arm: 1/256 .. 2


settings = partial(profiles.settings, EXPERIMENT)  # (profile, steps=0) -> this experiment's numbers


def mlp_config(profile: str, device: str = "cpu", data_dir: str = "", **kw) -> TrainConfig:
    """The paper's MNIST network (Sec. 4.1): 3 x 100 sigmoid units, weights ~ N(0, 0.1^2) (its "small
    random Gaussian values", as chapter 07), biases 0, mini-batches of 60, plain SGD."""
    p = settings(profile)
    base = dict(
        model="mlp",
        hidden=[100, 100, 100],
        activation="sigmoid",
        batch_size=60,
        init_std=0.1,
        lr=p["growth_lr"],
        momentum=0.0,
        steps=p["growth_steps"],
        eval_every=p["growth_steps"],
        device=device,
        data_dir=data_dir,
    )
    base.update(kw)
    return TrainConfig(**base)


def sweep_config(profile: str, device: str = "cpu", data_dir: str = "", **kw) -> TrainConfig:
    """The sweep's MLP: the same network, SGD with momentum 0.9; the test set is never read."""
    steps = settings(profile)["sweep_steps"]
    fields = dict(momentum=0.9, steps=steps, eval_every=steps, read_test=False, final_train_acc=False)
    return mlp_config(profile, device, data_dir, **{**fields, **kw})


def deep_config(profile: str, seed: int = 0, bn: bool = False, device: str = "cpu", data_dir: str = "", **kw):
    """A deep sigmoid MLP (settings' depth x 100 units), Glorot init for both arms, momentum 0.9."""
    p = settings(profile)
    steps = p["sigmoid_steps"]
    fields = dict(
        hidden=[100] * p["depth"],
        init="glorot",
        init_std=0.0,
        bn=bn,
        seed=seed,
        lr=0.1,  # replaced by each arm's tuned value
        momentum=0.9,
        steps=steps,
        eval_every=max(1, steps // 20),
    )
    return mlp_config(profile, device, data_dir, **{**fields, **kw})


TUNINGS: tuple[Tuning, ...] = (
    Tuning(
        "learning_rate/deep_bn", "lr", DEEP_LRS, lambda profile, seed: deep_config(profile, seed, bn=True)
    ),
    Tuning(
        "learning_rate/deep_no_bn", "lr", DEEP_LRS, lambda profile, seed: deep_config(profile, seed, bn=False)
    ),
)
TUNING = {t.key.split("/")[1]: t for t in TUNINGS}


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


def identity_measurement(ident: dict) -> dict:
    """eps = 0: the largest deviation from the three identities, and as a fraction of IDENTITY_TOL
    (float64 rounding); eps > 0: whether every output deviation lies within its bound."""
    zero = ident["0.0"]
    exact_max = max(max(r["output"], r["grad_u"], r["grad_W"]) for r in zero)
    others = [r for eps, rows in ident.items() if float(eps) > 0 for r in rows]
    return {
        "exact_max": exact_max,
        "exact_fraction": exact_max / IDENTITY_TOL,
        "within_bound": all(r["output"] <= r["output_bound"] for r in others),
        "a_min": min(r["a"] for r in zero),
        "a_max": max(r["a"] for r in zero),
    }


def _estimate_identities(m: dict) -> Estimate:
    return protocol.exact(m["exact_fraction"])


# ----------------------------------------------------------------------------- weight growth


@dataclass
class GrowthConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # an MLP, momentum 0, no weight decay
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    track_every: int = 50  # steps per window: ||W|| at its end, the RMS gradient norm over its steps

    def __post_init__(self):
        if self.train.momentum != 0 or self.train.weight_decay != 0:
            raise ValueError(
                "weight growth reads ||dW|| / lr as the gradient norm: it needs momentum 0, no decay"
            )


def _hidden_weight_slices(runs: Runs) -> list[tuple[int, int]]:
    """(start, stop) in runs.flat of each hidden Linear's weight (the output layer excluded)."""
    names = [f"{n}.weight" for n, m in runs.template.named_modules() if isinstance(m, nn.Linear)][:-1]
    where = {name: (a, b) for name, a, b, _ in runs.layout}
    return [where[n] for n in names]


def _initial_runs(cfgs: list[TrainConfig]) -> Runs:
    """The runs before the first step, built as the engine builds them."""
    models = []
    for c in cfgs:
        torch.manual_seed(c.seed)
        models.append(build_model(c).to(resolve_device(c.device)))
    return Runs(models)


def weight_growth(cfg: GrowthConfig) -> dict:
    """Per arm: window ends, and per window, seed and hidden layer ||W_l|| and the RMS of ||dl/dW_l||."""
    out = {}
    for bn in (False, True):
        cfgs = [replace(cfg.train, bn=bn, seed=s) for s in cfg.seeds]
        rec: dict = {"steps": [], "w_norm": [], "g_norm": []}  # w_norm[t][seed][layer]
        runs0 = _initial_runs(cfgs)
        slices = _hidden_weight_slices(runs0)
        init = runs0.flat.detach().clone()
        st: dict = {
            "prev": init,
            "slices": slices,
            "sq": torch.zeros(len(cfgs), len(slices), dtype=torch.float64),
            "n": 0,
        }

        def on_step(step, runs, st=st, rec=rec, lr=cfg.train.lr):
            flat = runs.flat.detach()
            d = (flat - st["prev"]).double()
            for j, (a, b) in enumerate(st["slices"]):
                st["sq"][:, j] += d[:, a:b].pow(2).sum(1).cpu()
            st["n"] += 1
            st["prev"] = flat.clone()
            if step % cfg.track_every == 0:
                w = torch.stack([flat[:, a:b].double().norm(dim=1).cpu() for a, b in st["slices"]], 1)
                rec["steps"].append(step)
                rec["w_norm"].append(w.tolist())
                rec["g_norm"].append((st["sq"] / st["n"]).sqrt().div(lr).tolist())
                st["sq"].zero_()
                st["n"] = 0

        rec["w_norm0"] = [[float(init[r, a:b].double().norm()) for a, b in slices] for r in range(len(cfgs))]
        done = train_many(cfgs, on_step=on_step, desc=f"mlp {'bn' if bn else 'no bn'} (norms)")
        rec["diverged"] = [h["diverged"] for _, h in done]
        rec["final_val_acc"] = [h["final_val_acc"] for _, h in done]
        rec["seeds"] = list(cfg.seeds)
        out["bn" if bn else "no_bn"] = rec
    return out


def rank_correlation(
    steps: Sequence[int], w: Sequence[float], g: Sequence[float], total: int, skip: float = 0.1
) -> float:
    """Spearman's rank correlation of ||dl/dW|| with ||W|| over the windows ending after skip * total
    (the first tenth of training, the transient of the first steps, is left out): -1 when the
    gradient norm falls every time the weight norm grows. NaN if it cannot be computed (fewer than 3
    windows, or either norm constant)."""
    s, w, g = np.asarray(steps, float), np.asarray(w, float), np.asarray(g, float)
    keep = (s > skip * total) & np.isfinite(w) & np.isfinite(g)
    if keep.sum() < 3 or np.ptp(w[keep]) == 0 or np.ptp(g[keep]) == 0:
        return math.nan
    return float(spearmanr(w[keep], g[keep]).statistic)


def growth_measurement(growth: dict, total: int) -> dict:
    """Per arm and seed: the rank correlation of ||dl/dW|| with ||W|| (mean over the hidden layers)
    and the first layer's growth factor ||W_1(end)|| / ||W_1(0)||; None for a diverged run."""
    out: dict = {}
    for key, rec in growth.items():
        w, g = np.array(rec["w_norm"]), np.array(rec["g_norm"])  # (T, R, L)
        el, grow = [], []
        for r in range(w.shape[1]):
            if rec["diverged"][r]:
                el.append(None)
                grow.append(None)
                continue
            per_layer = [
                rank_correlation(rec["steps"], w[:, r, j], g[:, r, j], total) for j in range(w.shape[2])
            ]
            el.append(float(np.mean(per_layer)))
            grow.append(float(w[-1, r, 0] / rec["w_norm0"][r][0]))
        out[f"rho_{key}"] = el
        out[f"growth_{key}"] = grow
    return out


def _estimate_growth(m: dict) -> Estimate:
    return protocol.paired_t(m["rho_bn"], m["rho_no_bn"])


# ----------------------------------------------------------------------------- learning-rate sweep


@dataclass
class SweepConfig:
    base: TrainConfig = field(default_factory=TrainConfig)  # model, steps, ...; lr, bn, seed set below
    exponents: list[int] = field(default_factory=lambda: [-2, 0, 2])  # lr = lr_of(k)
    seeds: list[int] = field(default_factory=lambda: [0, 1])


def lr_of(k: int) -> float:
    """The grid's k-th learning rate, 2 ** (k / GRID_STEPS): exact for whole powers of 2."""
    return 2.0 ** (int(k) / GRID_STEPS)


def grid_ratio(diffs: Sequence[int | None], steps: int = GRID_STEPS) -> list[float | None]:
    """lr ratios 2 ** (d / steps) from integer differences of grid exponents: exact for whole
    doublings (no 0.3 / 0.1 rounding), and the same number whatever the two rates were."""
    return [None if d is None else 2.0 ** (int(d) / steps) for d in diffs]


def lr_sweep(cfg: SweepConfig) -> dict:
    """{arm: {str(k): [per seed: seed, diverged, diverged_at, final_val_acc]}}; one trained_many call
    per arm (all its learning rates and seeds batched)."""
    out: dict[str, dict] = {}
    for bn in (False, True):
        cells = [(k, s) for k in cfg.exponents for s in cfg.seeds]
        cfgs = [replace(cfg.base, bn=bn, lr=lr_of(k), seed=s) for k, s in cells]
        by_k: dict[str, list] = {}
        for (k, s), (_, h) in zip(cells, trained_many(cfgs, desc=f"lr sweep {'bn' if bn else 'no bn'}")):
            by_k.setdefault(str(k), []).append(
                {
                    "seed": s,
                    "diverged": h["diverged"],
                    "diverged_at": h["diverged_at"],
                    "final_val_acc": h["final_val_acc"],
                }
            )
        out["bn" if bn else "no_bn"] = by_k
    return out


def stable(row: dict, learned: float = LEARNED) -> bool:
    """A run is stable if it did not diverge and its final validation accuracy reached `learned`."""
    return not row["diverged"] and row["final_val_acc"] is not None and row["final_val_acc"] >= learned


def max_stable_exponent(by_k: dict, seeds: Sequence[int], learned: float = LEARNED) -> list[int | None]:
    """Per seed, the largest grid exponent k whose run is stable (None if none is)."""
    out = []
    for s in seeds:
        ok = [int(k) for k, rows in by_k.items() for r in rows if r["seed"] == s and stable(r, learned)]
        out.append(max(ok) if ok else None)
    return out


def sweep_measurement(sweep: dict, seeds: Sequence[int], exponents: Sequence[int]) -> dict:
    return {
        "k_bn": max_stable_exponent(sweep["bn"], seeds),
        "k_no_bn": max_stable_exponent(sweep["no_bn"], seeds),
        "grid_steps": GRID_STEPS,
        "k_min": min(exponents),
        "k_max": max(exponents),
        "learned": LEARNED,
    }


def _estimate_lr(m: dict) -> Estimate:
    """Geometric mean over seeds of lr_bn / lr_no_bn = 2 ** ((k_bn - k_no_bn) / steps), from the
    integer exponents; t on the logs, widened by the grid factor 2 ** (1 / steps). A seed with no stable rate in an arm drops;
    the note counts the seeds whose BN rate sat at the grid's top (a lower bound there)."""  # noqa: E501 (in the locked digest)
    kb, kn = m["k_bn"], m["k_no_bn"]
    diffs = [None if a is None or b is None else int(a) - int(b) for a, b in zip(kb, kn)]
    ratios = grid_ratio(diffs, m["grid_steps"])
    est = protocol.log_ratio_t(ratios, [1.0] * len(ratios), grid_factor=2.0 ** (1 / m["grid_steps"]))
    note = {
        "bn_at_grid_top": sum(a == m["k_max"] for a in kb if a is not None),
        "no_stable_rate": sum(d is None for d in diffs),
    }
    return Estimate(est.value, est.lo, est.hi, est.n, est.method, est.lo90, est.hi90, note)


# ----------------------------------------------------------------------------- deep sigmoid


@dataclass
class DeepSigmoidConfig:
    bn: TrainConfig = field(default_factory=TrainConfig)  # the BN arm (seed set per run)
    no_bn: TrainConfig = field(default_factory=TrainConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1])


def deep_configs(cfg: DeepSigmoidConfig) -> dict[str, list[TrainConfig]]:
    return {arm: [replace(getattr(cfg, arm), seed=s) for s in cfg.seeds] for arm in ("bn", "no_bn")}


def deep_sigmoid(cfg: DeepSigmoidConfig) -> dict:
    arms = deep_configs(cfg)
    done = trained_many(arms["bn"] + arms["no_bn"], desc="deep sigmoid")
    out: dict[str, list] = {}
    for arm, part in (("bn", done[: len(cfg.seeds)]), ("no_bn", done[len(cfg.seeds) :])):
        keys = ("eval_steps", "val_acc", "loss", "final_val_acc", "final_test_acc", "diverged", "diverged_at")
        out[arm] = [{k: h[k] for k in keys} for _, h in part]
    return out


def sigmoid_measurement(deep: dict) -> dict:
    return {arm: [r["final_test_acc"] for r in deep[arm]] for arm in ("bn", "no_bn")}


def _estimate_sigmoid(m: dict) -> Estimate:
    """Paired difference of final test accuracy, BN minus no BN; a diverged run (None) scores 0."""
    zero = lambda v: [0.0 if x is None else x for x in v]  # noqa: E731
    return protocol.paired_t(zero(m["bn"]), zero(m["no_bn"]))


# ----------------------------------------------------------------------------- BN at work: histograms

SATURATED = 0.05  # a sigmoid output below 0.05 or above 0.95: its slope sigma' is below 0.0475 (max 0.25)
GRAD_RANGE = (1e-9, 1e-1)  # |dl/dh| histogram range, log-spaced bins (values outside count at the edges)


@dataclass
class HistogramConfig:
    deep: DeepSigmoidConfig = field(default_factory=DeepSigmoidConfig)  # the networks (trained there)
    examples: int = 1000  # training examples the histograms are taken over, one mini-batch (train mode)
    bins: int = 40


def _hidden_outputs(
    model: nn.Sequential, x: torch.Tensor, y: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(h, dl/dh) of every hidden sigmoid layer on one mini-batch: h (m, d) in (0, 1), its gradient
    (m, d) of the mean cross-entropy. Train mode on a copy: BN uses the batch's statistics, as in
    training, and the model's moving averages stay as they were."""
    import copy

    net = copy.deepcopy(model).cpu().train()
    outs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: outs.append(o)) for m in net if isinstance(m, nn.Sigmoid)
    ]
    try:
        loss = nn.functional.cross_entropy(net(x), y)
        grads = torch.autograd.grad(loss, outs)
    finally:
        for h in hooks:
            h.remove()
    return [(h.detach(), g) for h, g in zip(outs, grads)]


def layer_histograms(cfg: HistogramConfig) -> dict:
    """What BN does to each layer of the deep sigmoid network, as makemore draws it (Karpathy, part
    3): per arm (bn, no_bn) and state (init, trained), for the first evaluation seed's network, per
    hidden layer: the histogram of its sigmoid outputs on [0, 1], the share saturated (below
    SATURATED or above 1 - SATURATED), and the histogram of |dl/dh| on log-spaced bins over
    GRAD_RANGE with its root mean square. The trained networks are the deep sigmoid runs (from the
    store); a diverged run has no histograms (None)."""
    arms = deep_configs(replace(cfg.deep, seeds=cfg.deep.seeds[:1]))
    done = trained_many(arms["bn"] + arms["no_bn"], desc="deep sigmoid")
    trained_models = {"bn": done[0], "no_bn": done[1]}
    c0 = arms["bn"][0]
    ds = data_mod.load(c0.data_dir)
    g = torch.Generator().manual_seed(c0.seed)
    idx = torch.randperm(len(ds.y_train), generator=g)[: cfg.examples]
    x, y = ds.x_train[idx].flatten(1), ds.y_train[idx]  # (m, 784), (m,)
    act_edges = np.linspace(0.0, 1.0, cfg.bins + 1)
    grad_edges = np.geomspace(*GRAD_RANGE, cfg.bins + 1)
    out: dict = {"act_edges": act_edges.tolist(), "grad_edges": grad_edges.tolist()}
    for arm in ("bn", "no_bn"):
        for state in ("init", "trained"):
            if state == "init":
                torch.manual_seed(c0.seed)
                model, diverged = build_model(arms[arm][0]), False
            else:
                model, h = trained_models[arm]
                diverged = h["diverged"]
            if diverged:
                out[f"{arm}/{state}"] = None
                continue
            layers = []
            for h_, g_ in _hidden_outputs(model, x, y):
                a, gr = h_.numpy().ravel(), np.abs(g_.numpy().ravel())
                layers.append(
                    {
                        "act_hist": np.histogram(a, act_edges)[0].tolist(),
                        "saturated": float(np.mean((a < SATURATED) | (a > 1 - SATURATED))),
                        "grad_hist": np.histogram(np.clip(gr, grad_edges[0], grad_edges[-1]), grad_edges)[
                            0
                        ].tolist(),
                        "grad_rms": float(np.sqrt(np.mean(gr**2))),
                    }
                )
            out[f"{arm}/{state}"] = layers
    return out


def histogram_summary(hist: dict) -> dict:
    """Per arm (None where a run diverged): after training, the most saturated hidden layer
    (1-based) and its saturated share; at initialization and after training, the RMS of dl/dh at
    the first hidden layer over the RMS at the last (below 1: the gradient shrinks on its way back)."""
    out: dict = {}
    for arm in ("bn", "no_bn"):
        init, trained = hist[f"{arm}/init"], hist[f"{arm}/trained"]
        if trained is None:
            out[arm] = None
            continue
        sat = [layer["saturated"] for layer in trained]
        worst = int(np.argmax(sat))
        ratio = lambda layers: layers[0]["grad_rms"] / layers[-1]["grad_rms"]  # noqa: E731
        out[arm] = {
            "most_saturated_layer": worst + 1,
            "most_saturated": sat[worst],
            "grad_first_over_last_init": ratio(init),
            "grad_first_over_last_trained": ratio(trained),
        }
    return out


# ----------------------------------------------------------------------------- Jacobians


@dataclass
class JacobianConfig:
    deep: DeepSigmoidConfig = field(default_factory=DeepSigmoidConfig)  # the networks (trained there)
    batch: int = 10  # m: the Jacobian of the whole mini-batch is (m d) x (m d)


def _normalize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """BN's normalized vector over the mini-batch (train mode, biased variance): (m, d) -> (m, d)."""
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)


def spectra(model: nn.Sequential, x: torch.Tensor) -> dict:
    """Layer-to-layer Jacobians of a deep MLP on one mini-batch x (m, 784), in float64.

    With BN: from the normalized vector x_hat_l of the whole mini-batch to x_hat_{l+1}
    (x_hat -> sigmoid(gamma x_hat + beta) -> W -> normalize over the batch), an (m d) x (m d) map of
    rank at most d (m - 2) (each unit's output has mean 0 and a fixed norm); its d (m - 2) largest
    singular values are kept. Without BN: from the pre-activation z_l to z_{l+1} (= W sigmoid(z_l)
    + b), one d x d Jacobian per example, all d singular values kept.
    Returns per layer pair the singular values, and the RMS singular value of the product of the
    Jacobians from the first layer to each later one (the gain of a gradient through those layers).
    """
    mods = list(model.double())
    linears = [m for m in mods if isinstance(m, nn.Linear)][:-1]
    bns = [m for m in mods if isinstance(m, BatchNorm)]
    m_, d = x.shape[0], linears[0].out_features
    svs, gains = [], []
    with torch.no_grad():
        z = linears[0](x.flatten(1).double())
    if bns:
        rank = d * (m_ - 2)
        v = _normalize(z, bns[0].eps)
        P = torch.eye(m_ * d, dtype=torch.float64)
        for i in range(1, len(linears)):
            bn_prev, lin, bn = bns[i - 1], linears[i], bns[i]

            def f(flat, bn_prev=bn_prev, lin=lin, bn=bn):
                h = torch.sigmoid(bn_prev.weight * flat.view(m_, d) + bn_prev.bias)
                return _normalize(lin(h), bn.eps).reshape(-1)

            with torch.no_grad():
                J = torch.func.jacfwd(f)(v.reshape(-1))
                svs.append(torch.linalg.svdvals(J)[:rank].tolist())
                P = J @ P
                gains.append(float(P.norm() / math.sqrt(rank)))
                v = f(v.reshape(-1)).view(m_, d)
    else:
        P = torch.eye(d, dtype=torch.float64).expand(m_, d, d)
        for lin in linears[1:]:
            with torch.no_grad():
                J = lin.weight.unsqueeze(0) * (torch.sigmoid(z) * (1 - torch.sigmoid(z))).unsqueeze(
                    1
                )  # (m, d, d)
                svs.append(torch.linalg.svdvals(J).flatten().tolist())
                P = J @ P
                gains.append(float(P.pow(2).sum(dim=(1, 2)).mean().div(d).sqrt()))
                z = lin(torch.sigmoid(z))
    return {"singular_values": svs, "gain": gains}


def near_one_share(svs: Sequence[Sequence[float]]) -> float:
    """Mean over layer pairs of the share of singular values in NEAR_ONE (closed interval)."""
    lo, hi = NEAR_ONE
    return float(np.mean([np.mean((np.asarray(s) >= lo) & (np.asarray(s) <= hi)) for s in svs]))


def jacobians(cfg: JacobianConfig) -> dict:
    """Per arm (bn, no_bn), state (init, trained) and seed: per-layer-pair shares near 1, median |log
    sigma|, and the chain gains. The trained networks are the deep sigmoid runs (from the store)."""
    arms = deep_configs(cfg.deep)
    done = trained_many(arms["bn"] + arms["no_bn"], desc="deep sigmoid")
    trained_models = {"bn": done[: len(cfg.deep.seeds)], "no_bn": done[len(cfg.deep.seeds) :]}
    ds = data_mod.load(arms["bn"][0].data_dir)
    out: dict = {}
    for arm, cfgs in arms.items():
        for state in ("init", "trained"):
            rows = []
            for r, c in enumerate(cfgs):
                if state == "init":
                    torch.manual_seed(c.seed)
                    model, diverged = build_model(c), False
                else:
                    model, h = trained_models[arm][r]
                    diverged = h["diverged"]
                if diverged:
                    rows.append(None)
                    continue
                g = torch.Generator().manual_seed(c.seed)
                x = ds.x_train[torch.randperm(len(ds.y_train), generator=g)[: cfg.batch]]
                sp = spectra(model.cpu().train(), x)
                rows.append(
                    {
                        "share_per_layer": [near_one_share([s]) for s in sp["singular_values"]],
                        "median_abs_log": [
                            float(np.median(np.abs(np.log(np.maximum(s, 1e-300)))))
                            for s in sp["singular_values"]
                        ],
                        "gain": sp["gain"],
                        "hist": np.histogram(
                            np.log10(np.maximum(np.concatenate(sp["singular_values"]), 1e-12)),
                            bins=60,
                            range=(-4, 2),
                        )[0].tolist(),
                    }
                )
            out[f"{arm}/{state}"] = rows
    return out


def jacobian_measurement(jac: dict) -> dict:
    """Per arm and state, per seed: the share near 1, mean over layer pairs (None if diverged)."""
    return {
        key.replace("/", "_"): [None if r is None else float(np.mean(r["share_per_layer"])) for r in rows]
        for key, rows in jac.items()
    }


def _estimate_jacobian(m: dict) -> Estimate:
    return protocol.one_sample_t(m["bn_trained"])


# ----------------------------------------------------------------------------- claims

_CH = "05_learning_rates"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="scale-identities",
        **T.fields("scale-identities.claim", "en", "ar"),
        where="paper 3.3",
        **T.fields("scale-identities.paper", "paper", "paper_ar"),
        chapter=_CH,
        label="sec-lr-identities",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=T("scale-identities.arms"),
            tuned=T("scale-identities.tuned"),
            statistic=T("scale-identities.statistic"),
            interval="exact",
            kind="below",
            margin=1.0,
            changes=T("scale-identities.changes"),
            trains=False,
        ),
        estimate=_estimate_identities,
    ),
    Claim(
        id="larger-weights-smaller-gradients",
        **T.fields("larger-weights-smaller-gradients.claim", "en", "ar"),
        where="paper 3.3",
        paper="-",
        chapter=_CH,
        label="sec-lr-growth",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=T("larger-weights-smaller-gradients.arms"),
            tuned=T("larger-weights-smaller-gradients.tuned"),
            statistic=T("larger-weights-smaller-gradients.statistic"),
            interval="paired t",
            kind="less",
            margin=0.0,
            changes=T("larger-weights-smaller-gradients.changes"),
        ),
        estimate=_estimate_growth,
    ),
    Claim(
        id="jacobian-singular-values",
        **T.fields("jacobian-singular-values.claim", "en", "ar"),
        where="paper 3.3",
        paper="-",
        chapter=_CH,
        label="sec-lr-jacobians",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=T("jacobian-singular-values.arms"),
            tuned=T("jacobian-singular-values.tuned"),
            statistic=T("jacobian-singular-values.statistic"),
            interval="t",
            kind="greater",
            margin=0.5,
            changes=T("jacobian-singular-values.changes"),
        ),
        estimate=_estimate_jacobian,
    ),
    Claim(
        id="higher-learning-rates",
        **T.fields("higher-learning-rates.claim", "en", "ar"),
        where="paper 3.3",
        paper="-",
        chapter=_CH,
        label="sec-lr-sweep",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=T("higher-learning-rates.arms"),
            tuned=T("higher-learning-rates.tuned"),
            statistic=T("higher-learning-rates.statistic"),
            interval="t on log ratios",
            kind="greater",
            margin=2.0,
            scale="ratio",
            changes=T("higher-learning-rates.changes"),
        ),
        estimate=_estimate_lr,
    ),
    Claim(
        id="saturating-nonlinearities",
        **T.fields("saturating-nonlinearities.claim", "en", "ar"),
        where="paper 3.3",
        paper="-",
        chapter=_CH,
        label="sec-lr-sigmoid",
        protocol=Protocol(
            version=2,
            fixed=FIXED,
            arms=T("saturating-nonlinearities.arms"),
            tuned=T("saturating-nonlinearities.tuned"),
            statistic=T("saturating-nonlinearities.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.02,
            changes=T("saturating-nonlinearities.changes"),
        ),
        estimate=_estimate_sigmoid,
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
    sesoi={
        "larger-weights-smaller-gradients": (-0.1, "correlation"),
    },
)
