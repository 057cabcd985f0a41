"""Chapter "Batch-normalized convolutional networks" (paper Sec. 3.2, source text Section 4).

Experiments, each a dataclass config + a run function:
  bias_before_bn     z = g(BN(Wu + b)): b changes nothing downstream and gets zero gradient
  shift_equivariance per-feature-map statistics normalize every location alike; per-activation do not
  fold_speed         BN folded into the convolutions: same outputs, measured CPU inference speedup
  train_pair         the small conv net trained with and without BN over several seeds
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as TF
from torch import nn

from bnpaper import data as data_mod
from bnpaper import functional as F
from bnpaper.engine import trained_many
from bnpaper.inference import bn_layers, fold_batchnorm
from bnpaper.train import TrainConfig, accuracy, trained

PROFILES = {  # steps of SGD and seeds per training configuration
    "smoke": {"steps": 20, "seeds": 2, "eval_every": 10, "repeats": 5},
    "quick": {"steps": 1000, "seeds": 3, "eval_every": 100, "repeats": 30},
    "paper": {"steps": 6000, "seeds": 5, "eval_every": 250, "repeats": 100},
}


def base_config(profile: str, device: str = "cpu", data_dir: str = "", **kw) -> TrainConfig:
    """The conv net training setup every chapter of Sec. 3.2 / 3.4 shares."""
    p = PROFILES[profile]
    fields = dict(
        model="convnet",
        steps=p["steps"],
        eval_every=p["eval_every"],
        lr=0.05,
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
    train: TrainConfig = field(default_factory=TrainConfig)  # the BN network to fold (bn=True)
    batch: int = 256  # images per timed inference call
    repeats: int = 30  # interleaved timed repeats (median reported)
    threads: int = 1


def fold_speed(cfg: FoldConfig) -> dict:
    """Fold BN into the convolutions of a trained network; compare outputs, accuracy and CPU time."""
    model, _ = trained(cfg.train, desc="convnet bn (to fold)")
    model = model.cpu().eval()
    folded = fold_batchnorm(model)
    ds = data_mod.load(cfg.train.data_dir)
    with torch.no_grad():
        diff = (model(ds.x_test) - folded(ds.x_test)).abs().max().item()
    n_bn, n_bn_folded = len(bn_layers(model)), len(bn_layers(folded))
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
    return {
        "max_logit_diff": diff,
        "acc_bn": accuracy(model, ds.x_test, ds.y_test),
        "acc_folded": accuracy(folded, ds.x_test, ds.y_test),
        "bn_layers": n_bn,
        "bn_layers_after_folding": n_bn_folded,
        "median_ms_bn": statistics.median(times["bn"]) * 1e3,
        "median_ms_folded": statistics.median(times["folded"]) * 1e3,
        "speedup_median": statistics.median(ratios),
        "speedup_q1_q3": [statistics.quantiles(ratios, n=4)[0], statistics.quantiles(ratios, n=4)[2]],
        "repeats": cfg.repeats,
        "batch": cfg.batch,
        "threads": cfg.threads,
    }
