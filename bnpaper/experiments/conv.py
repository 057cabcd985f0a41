"""Chapter "Batch-normalized convolutional networks" (paper Sec. 3.2, source text Section 4).

Experiments, each a dataclass config + a run function:
  bias_before_bn     z = g(BN(Wu + b)): b changes nothing downstream and gets zero gradient
                     (bias_over_seeds: the same for every seed)
  shift_equivariance per-feature-map statistics normalize every location alike; per-activation do not
                     (shift_over_seeds: the same for every seed)
  train_pair         the small conv net trained with and without BN over the evaluation seeds
  fold_speed         BN folded into the convolutions of every trained BN net: same outputs and
                     accuracy; measured CPU inference speedup of one

Claims (CLAIMS, each with its protocol): conv-bias, conv-per-map, conv-fold. Every profile number
comes from bnpaper.profiles ("conv"); `base_config` is the one definition of the conv nets that
chapters 02, 03 and 04 share.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace
from functools import partial

import torch
import torch.nn.functional as TF
from torch import nn

from bnpaper import data as data_mod
from bnpaper import functional as F
from bnpaper import profiles, protocol
from bnpaper.engine import trained_many
from bnpaper.inference import bn_layers, fold_batchnorm
from bnpaper.protocol import confirmatory
from bnpaper.text import Catalog
from bnpaper.train import TrainConfig

T = Catalog(__name__)  # this experiment's English and Arabic text: conv.yml

settings = partial(profiles.settings, "conv")  # (profile, steps=0) -> this experiment's numbers

# SGD learning rate of the conv net (the paper gives none for it; fixed by hand, never read off test)
LR = 0.05


def base_config(profile: str, device: str = "cpu", data_dir: str = "", steps: int = 0, **kw) -> TrainConfig:
    """The conv net training setup every chapter of Sec. 3.2 / 3.4 shares (chapters 02, 03, 04).

    The one place that defines these networks: the same config is the same stored run, so the
    nets trained in chapter 02 are loaded, not retrained, by chapters 03 and 04. steps > 0
    shortens the runs by the one rule of `profiles.settings`.
    """
    p = settings(profile, steps=steps)
    fields = dict(
        model="convnet",
        steps=p["steps"],
        eval_every=p["eval_every"],
        lr=LR,
        momentum=0.9,
        batch_size=64,
        device=device,
        data_dir=data_dir,
    )
    fields.update(kw)
    return TrainConfig(**fields)


# ----------------------------------------------------------------------------- bias before BN


@dataclass
class BiasConfig:
    seed: int = 0
    shape: list[int] = field(default_factory=lambda: [16, 3, 12, 12])  # (m, C_in, p, q) input u
    out_channels: int = 6
    bias_scale: float = 5.0  # a large bias, so that "no effect" is not an accident of small b


def bias_before_bn(cfg: BiasConfig) -> dict:
    """Max |BN(Wu + b) - BN(Wu)| downstream of a ReLU and a loss, and max |dl/db|, in float64."""
    g = torch.Generator().manual_seed(cfg.seed)
    u = torch.randn(cfg.shape, generator=g, dtype=torch.float64)
    W = torch.randn(cfg.out_channels, cfg.shape[1], 3, 3, generator=g, dtype=torch.float64)
    b = (torch.randn(cfg.out_channels, generator=g, dtype=torch.float64) * cfg.bias_scale).requires_grad_()
    r = torch.randn(
        cfg.shape[0], cfg.out_channels, cfg.shape[2], cfg.shape[3], generator=g, dtype=torch.float64
    )
    gamma = torch.rand(cfg.out_channels, generator=g, dtype=torch.float64) + 0.5
    beta = torch.randn(cfg.out_channels, generator=g, dtype=torch.float64)

    def z(bias):
        x = TF.conv2d(u, W, bias, padding=1)  # (m, C_out, p, q)
        return torch.relu(F.forward_reference(x, gamma, beta)[0])  # z = g(BN(x))

    z_with, z_without = z(b), z(None)
    (z_with * r).sum().backward()
    return {
        "max_output_diff": (z_with - z_without).abs().max().item(),
        "max_abs_bias": b.abs().max().item(),
        "max_abs_grad_bias": b.grad.abs().max().item(),
    }


@dataclass
class BiasSeeds:
    seeds: list[int] = field(default_factory=lambda: [0])  # one random layer, input and bias per seed
    base: BiasConfig = field(default_factory=BiasConfig)  # everything but the seed


def bias_over_seeds(cfg: BiasSeeds) -> dict:
    """`bias_before_bn` for every seed: per-seed lists (the claim takes the worst case)."""
    rows = [bias_before_bn(replace(cfg.base, seed=s)) for s in cfg.seeds]
    return {k: [r[k] for r in rows] for k in ("max_output_diff", "max_abs_grad_bias", "max_abs_bias")}


# ----------------------------------------------------------------------------- shift


@dataclass
class ShiftConfig:
    seed: int = 0
    batch: int = 64  # images whose statistics define the normalization
    channels: int = 4  # feature maps of the random 3x3 convolution
    shift: list[int] = field(default_factory=lambda: [3, -2])  # (down, right) pixels, circular
    eps: float = 1e-5
    data_dir: str = ""


def shift_equivariance(cfg: ShiftConfig) -> dict:
    """Normalize the feature maps of one image and of its shifted copy with statistics from a batch
    of real digits: per feature map (Sec. 3.2) and per activation (one mean/variance per location).

    A circular convolution commutes with the shift, so the difference
    normalize(features(shift(img))) - shift(normalize(features(img))) is zero exactly when the
    normalization treats every location the same way.
    """
    ds = data_mod.load(cfg.data_dir)
    g = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(ds.y_train), generator=g)[: cfg.batch + 1]
    x = ds.x_train[idx].double()  # (B + 1, 1, 28, 28)
    conv = nn.Conv2d(1, cfg.channels, 3, padding=1, padding_mode="circular", bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64))
        feats = conv(x[1:])  # (B, C, 28, 28): the mini-batch
        img = x[:1]
        img_shifted = torch.roll(img, cfg.shift, dims=(2, 3))
        f, f_s = conv(img), conv(img_shifted)  # (1, C, 28, 28)

        mu_map, var_map = F.batch_statistics(feats)  # (C,): over batch and locations

        def per_map(t):
            return (t - F.per_channel(mu_map, t)) / F.per_channel(torch.sqrt(var_map + cfg.eps), t)

        mu_act, var_act = (
            feats.mean(0, keepdim=True),
            feats.var(0, unbiased=False, keepdim=True),
        )  # (1, C, 28, 28)

        def per_act(t):
            return (t - mu_act) / torch.sqrt(var_act + cfg.eps)

        out = {}
        for name, norm in (("per_map", per_map), ("per_activation", per_act)):
            a, b = norm(f_s), torch.roll(norm(f), cfg.shift, dims=(2, 3))
            diff = (a - b).abs()
            out[name] = {
                "max_abs_diff": diff.max().item(),
                "mean_abs_diff": diff.mean().item(),
                "scale_of_output": a.abs().mean().item(),
                "image": a[0, 0].tolist(),  # normalized map of the shifted image, channel 0
                "shifted_normalized": b[0, 0].tolist(),
            }
        scale_act = 1 / torch.sqrt(var_act + cfg.eps)  # (1, C, 28, 28): the per-location scale
        out["per_activation_scale_range"] = [scale_act.min().item(), scale_act.max().item()]
        out["per_map_scale"] = (1 / torch.sqrt(var_map + cfg.eps)).tolist()
    return out


@dataclass
class ShiftSeeds:
    seeds: list[int] = field(default_factory=lambda: [0])  # one digit, mini-batch and filter per seed
    base: ShiftConfig = field(default_factory=ShiftConfig)  # everything but the seed


def shift_over_seeds(cfg: ShiftSeeds) -> dict:
    """`shift_equivariance` for every seed: the largest |difference| per seed, both normalizations."""
    rows = [shift_equivariance(replace(cfg.base, seed=s)) for s in cfg.seeds]
    return {
        "per_map": [r["per_map"]["max_abs_diff"] for r in rows],
        "per_activation": [r["per_activation"]["max_abs_diff"] for r in rows],
        "per_activation_mean": [r["per_activation"]["mean_abs_diff"] for r in rows],
    }


# ----------------------------------------------------------------------------- training


@dataclass
class PairConfig:
    base: TrainConfig = field(default_factory=TrainConfig)  # everything but bn and seed
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


def train_pair(cfg: PairConfig) -> dict:
    """Train the conv net with and without BN for every seed; histories by variant."""
    cfgs = {(bn, s): replace(cfg.base, bn=bn, seed=s) for bn in (False, True) for s in cfg.seeds}
    done = dict(zip(cfgs, trained_many(list(cfgs.values()), desc="convnet")))
    return {
        ("bn" if bn else "no_bn"): [
            {k: v for k, v in done[bn, s][1].items() if not k.startswith("_")} for s in cfg.seeds
        ]
        for bn in (False, True)
    }


# ----------------------------------------------------------------------------- folding


@dataclass
class FoldConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # the BN network to fold (bn=True), but its seed
    seeds: list[int] | None = None  # the trained nets to fold (None: train.seed alone); timing on the first
    batch: int = 256  # images per timed inference call
    repeats: int = 30  # interleaved timed repeats (median reported)
    threads: int = 1


@torch.no_grad()
def fold_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Fold an eval-mode copy of a trained BN net; compare its logits and accuracy with the original's."""
    model = model.cpu().eval()
    folded = fold_batchnorm(model)
    logits, logits_folded = model(x), folded(x)
    return {
        "max_logit_diff": (logits - logits_folded).abs().max().item(),
        "max_abs_logit": logits.abs().max().item(),
        "acc_bn": (logits.argmax(1) == y).sum().item() / len(y),
        "acc_folded": (logits_folded.argmax(1) == y).sum().item() / len(y),
        "bn_layers": len(bn_layers(model)),
        "bn_layers_after_folding": len(bn_layers(folded)),
    }


def fold_speed(cfg: FoldConfig) -> dict:
    """Fold BN into the convolutions of every trained net; compare outputs and test accuracy per net,
    and time the first net and its folded copy on the CPU.

    max_logit_diff is the worst net's; the per-net numbers are lists in seed order.
    """
    seeds = cfg.seeds if cfg.seeds is not None else [cfg.train.seed]
    nets = trained_many([replace(cfg.train, seed=s) for s in seeds], desc="convnet bn (to fold)")
    ds = data_mod.load(cfg.train.data_dir)
    checks = [fold_check(model, ds.x_test, ds.y_test) for model, _ in nets]
    model = nets[0][0].cpu().eval()
    folded = fold_batchnorm(model)
    x = ds.x_test[: cfg.batch]
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    times = {"bn": [], "folded": []}
    try:
        with torch.no_grad():
            for _ in range(3):
                model(x), folded(x)
            for _ in range(cfg.repeats):
                for name, net in (("bn", model), ("folded", folded)):
                    t0 = time.perf_counter()
                    net(x)
                    times[name].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    ratios = [a / b for a, b in zip(times["bn"], times["folded"])]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    per_net = {k: [c[k] for c in checks] for k in ("max_logit_diff", "max_abs_logit", "acc_bn", "acc_folded")}
    return {
        "seeds": seeds,
        "max_logit_diff": max(per_net["max_logit_diff"]),
        "per_net": per_net,
        "acc_bn": per_net["acc_bn"],
        "acc_folded": per_net["acc_folded"],
        "bn_layers": checks[0]["bn_layers"],
        "bn_layers_after_folding": checks[0]["bn_layers_after_folding"],
        "median_ms_bn": statistics.median(times["bn"]) * 1e3,
        "median_ms_folded": statistics.median(times["folded"]) * 1e3,
        "speedup_median": statistics.median(ratios),
        "speedup_q1_q3": [q1, q3],
        "repeats": cfg.repeats,
        "batch": cfg.batch,
        "threads": cfg.threads,
    }


# ----------------------------------------------------------------------------- claims

BIAS_BOUND = 1e-10  # float64: 1e-10 is ~10^6 unit roundoffs (1.1e-16) of outputs and gradients of size ~1-100
MIN_BIAS = 1.0  # a bias smaller than this could hide an effect in rounding: the check could not fail
PER_MAP_BOUND = 1e-10  # float64, as BIAS_BOUND
DETECT = 1e-3  # per-activation normalization must differ by more than this: the test can see a difference
FOLD_BOUND = 1e-4  # float32 logits (see the conv-fold protocol)


def _floats(values) -> list[float]:
    """Per-seed numbers as floats; a scalar is one seed (a record of a single run)."""
    if isinstance(values, (int, float)) or values is None:
        values = [values]
    return [float("nan") if v is None else float(v) for v in values]


def worst(values) -> float:
    """The largest value over seeds; NaN if there is none or any is NaN (never a silent pass)."""
    xs = _floats(values)
    return float("nan") if not xs or any(math.isnan(x) for x in xs) else max(xs)


def _deterministic(value: float, n: int, note: dict) -> protocol.Estimate:
    v = float(value)
    return protocol.Estimate(v, v, v, n, "deterministic, float64: worst case over seeds", v, v, note)


def estimate_bias(m: dict) -> protocol.Estimate:
    """Worst over seeds of the larger of max |z(b) - z(0)| and max |dl/db|; NaN (inconclusive) when a
    seed's bias is smaller than MIN_BIAS, where a real effect could hide in rounding."""
    out, grad, bias = (
        _floats(m["max_output_diff"]),
        _floats(m["max_abs_grad_bias"]),
        _floats(m["max_abs_bias"]),
    )
    if not len(out) == len(grad) == len(bias):
        raise ValueError(f"conv-bias: per-seed lists of unequal lengths {len(out)}, {len(grad)}, {len(bias)}")
    value = worst(out + grad)
    smallest_bias = min(bias) if bias else float("nan")
    detectable = smallest_bias >= MIN_BIAS  # False for NaN too
    note = {"smallest_bias": smallest_bias, "detectable": detectable}
    return _deterministic(value if detectable else float("nan"), len(out), note)


def estimate_per_map(m: dict) -> protocol.Estimate:
    """Worst over seeds of the per-feature-map shift difference; NaN (inconclusive) unless the
    per-activation normalization differs by more than DETECT on every seed, i.e. unless the test
    could see a location-dependent normalization at all."""
    per_map, per_act = _floats(m["per_map"]), _floats(m["per_activation"])
    if len(per_map) != len(per_act):
        raise ValueError(f"conv-per-map: per-seed lists of unequal lengths {len(per_map)}, {len(per_act)}")
    weakest = min(per_act) if per_act and not any(math.isnan(x) for x in per_act) else float("nan")
    detects = weakest > DETECT  # False for NaN too
    note = {"weakest_per_activation": weakest, "detects": detects}
    return _deterministic(worst(per_map) if detects else float("nan"), len(per_map), note)


def estimate_fold(m: dict) -> protocol.Estimate:
    """Worst over the trained nets of max |logit - folded logit| on the test set; +inf if folding
    changes any net's test accuracy (a changed prediction is a difference no bound allows)."""
    diff, acc, acc_f = _floats(m["max_logit_diff"]), _floats(m["acc_bn"]), _floats(m["acc_folded"])
    if not len(diff) == len(acc) == len(acc_f):
        raise ValueError(f"conv-fold: per-net lists of unequal lengths {len(diff)}, {len(acc)}, {len(acc_f)}")
    changed = sum(a != b for a, b in zip(acc, acc_f))  # NaN != NaN counts as changed
    value = math.inf if changed else worst(diff)
    v = float(value)
    note = {"nets_with_changed_accuracy": changed, "worst_logit_diff": worst(diff)}
    return protocol.Estimate(
        v, v, v, len(diff), "deterministic, float32: worst case over the trained nets", v, v, note
    )


_FIXED = "2026-11-25"

CLAIMS: tuple[protocol.Claim, ...] = (
    protocol.Claim(
        id="conv-bias",
        **T.fields("conv-bias.claim", "en", "ar"),
        where="paper 3.2",
        paper="-",
        chapter="02_conv",
        label="sec-conv-bias",
        protocol=protocol.Protocol(
            version=2,
            fixed=_FIXED,
            arms=T("conv-bias.arms"),
            tuned=T("conv-bias.tuned"),
            statistic=T("conv-bias.statistic", min_bias=MIN_BIAS),
            interval="exact",
            kind="below",
            margin=BIAS_BOUND,
            changes=T("conv-bias.changes"),
            trains=False,
        ),
        estimate=estimate_bias,
    ),
    protocol.Claim(
        id="conv-per-map",
        **T.fields("conv-per-map.claim", "en", "ar"),
        where="paper 3.2",
        paper="-",
        chapter="02_conv",
        label="sec-conv-per-map",
        protocol=protocol.Protocol(
            version=2,
            fixed=_FIXED,
            arms=T("conv-per-map.arms"),
            tuned=T("conv-per-map.tuned"),
            statistic=T("conv-per-map.statistic", detect=DETECT),
            interval="exact",
            kind="below",
            margin=PER_MAP_BOUND,
            changes=T("conv-per-map.changes"),
            trains=False,
        ),
        estimate=estimate_per_map,
    ),
    protocol.Claim(
        id="conv-fold",
        **T.fields("conv-fold.claim", "en", "ar"),
        where="paper 3.2",
        paper="-",
        chapter="02_conv",
        label="sec-conv-fold",
        protocol=protocol.Protocol(
            version=2,
            fixed=_FIXED,
            arms=T("conv-fold.arms"),
            tuned=T("conv-fold.tuned", lr=LR),
            statistic=T("conv-fold.statistic"),
            interval="exact",
            kind="below",
            margin=FOLD_BOUND,
            changes=T("conv-fold.changes"),
            trains=True,
        ),
        estimate=estimate_fold,
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
)
TUNINGS: tuple = ()  # nothing tuned: the claims here compare computations on the same nets
