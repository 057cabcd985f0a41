"""Inference with batch-normalized networks (Alg. 2) and folding BN into the layer before it.

* `estimate_population_statistics(model, batches)`: Alg. 2, lines 8-11, after training: feed k
  training mini-batches, average each BN layer's mu_B and sigma2_B, and store
  E[x] = E_B[mu_B] and Var[x] = m/(m-1) E_B[sigma2_B] as the layer's running statistics.
* `fold_batchnorm(model)`: at inference BN is one affine map per channel (Alg. 2, line 11), so it
  can be merged into the weights and bias of the Linear / Conv / ConvTranspose layer that feeds it.
  Only an eval-mode model can be folded (in training mode the statistics change per mini-batch).
  `plan_fold(model)` says which BN layers would be folded and, for each one kept, why; the folder
  warns (or, with strict=True, raises) naming every BN it keeps.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from bnpaper import functional as F
from bnpaper.layers import BatchNorm

BN_TYPES = (BatchNorm, nn.modules.batchnorm._BatchNorm)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, *TRANSPOSED)


def bn_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every BN layer of a model (bnpaper's or torch's), by qualified name."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, BN_TYPES)}


@torch.no_grad()
def estimate_population_statistics(
    model: nn.Module, batches: Iterable[torch.Tensor], *, write: bool = True
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Alg. 2: population mean and unbiased variance of every BN layer's input.

    batches: training mini-batches of equal size m (the inputs the model takes). Each is run
    through the model with every BN layer in training mode, so downstream layers see what they
    saw in training; the running statistics are left untouched while estimating.
    write: store the estimates in running_mean / running_var (the model is then ready for
    eval mode). Returns {layer name: (E[x], Var[x])}.
    """
    layers = bn_layers(model)
    if not layers:
        raise ValueError("estimate_population_statistics: the model has no BatchNorm layer")
    stats: dict[str, list[tuple[torch.Tensor, torch.Tensor, int]]] = {name: [] for name in layers}

    def hook(name):
        def record(module, inputs, output):
            mu_B, sigma2_B = F.batch_statistics(inputs[0].detach())  # Alg. 1, lines 1-2: (C,)
            stats[name].append((mu_B, sigma2_B, F.values_per_channel(inputs[0])))

        return record

    was_training = {name: mod.training for name, mod in model.named_modules()}
    saved = {
        name: (mod.running_mean.clone(), mod.running_var.clone(), mod.num_batches_tracked.clone())
        for name, mod in layers.items()
        if mod.running_mean is not None
    }
    handles = [mod.register_forward_hook(hook(name)) for name, mod in layers.items()]
    try:
        model.eval()
        for mod in layers.values():
            mod.train()  # mini-batch statistics, as in training (Alg. 2, line 9)
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        for name, mod in model.named_modules():
            mod.train(was_training[name])
        for name, (rm, rv, nbt) in saved.items():  # undo the forward passes' running updates
            layers[name].running_mean.copy_(rm)
            layers[name].running_var.copy_(rv)
            layers[name].num_batches_tracked.copy_(nbt)

    if not next(iter(stats.values())):
        raise ValueError("estimate_population_statistics: got no batches; pass at least one mini-batch")
    result = {}
    for name, rows in stats.items():
        ms = {m for _, _, m in rows}
        if len(ms) != 1:
            raise ValueError(
                f"Algorithm 2 averages mini-batches of one size m; layer {name!r} saw sizes {sorted(ms)}. "
                "Drop the last incomplete batch (drop_last=True)."
            )
        means = torch.stack([r[0] for r in rows])  # (k, C)
        variances = torch.stack([r[1] for r in rows])  # (k, C)
        result[name] = F.population_statistics(means, variances, ms.pop())
        if write:
            if layers[name].running_mean is None:
                raise ValueError(
                    f"layer {name!r} has track_running_stats=False: nowhere to store Alg. 2's estimate"
                )
            layers[name].running_mean.copy_(result[name][0])
            layers[name].running_var.copy_(result[name][1])
    return result


FOLDABLE_NAMES = "Linear, Conv1d/2d/3d or ConvTranspose1d/2d/3d"


@dataclass
class FoldReport:
    """What `fold_batchnorm` does (or would do) to a model; paths as model.named_modules() names them."""

    folded: list[tuple[str, str]] = field(default_factory=list)  # (layer path, BN path) merged pairs
    skipped: dict[str, str] = field(default_factory=dict)  # BN path -> why it stays in the model

    def describe_skipped(self) -> str:
        return "\n".join(f"  {_label(path)}: {why}" for path, why in self.skipped.items())


def _label(path: str) -> str:
    return repr(path) if path else "(the model itself)"


def _out_channels(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


@torch.no_grad()
def fold_layer(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of `layer` (Linear, ConvNd or ConvTransposeNd) with the eval-mode `bn` after it merged in.

    BN(W u + b) = s * (W u + b - E[x]) + beta, with s = gamma / sqrt(Var[x] + eps) per output
    channel (Alg. 2, line 11), i.e. weights s * W and bias s * (b - E[x]) + beta.
    """
    if not isinstance(layer, FOLDABLE):
        raise TypeError(f"can fold BN only into {[t.__name__ for t in FOLDABLE]}, got {type(layer).__name__}")
    C = _out_channels(layer)
    if bn.num_features != C:
        raise ValueError(f"BN has {bn.num_features} features but the layer before it has {C} output channels")
    if bn.running_mean is None:
        raise ValueError("cannot fold a BN layer with track_running_stats=False: it has no fixed statistics")
    if bn.training:
        raise ValueError(
            "cannot fold a BN layer in training mode (it uses batch statistics); call bn.eval() first"
        )
    w = layer.weight
    ones = torch.ones(C, dtype=w.dtype, device=w.device)
    gamma = bn.weight if bn.weight is not None else ones  # weight and bias may be None independently
    beta = bn.bias if bn.bias is not None else torch.zeros_like(ones)
    s, shift = F.affine_coefficients(bn.running_mean, bn.running_var, gamma, beta, bn.eps)  # (C,), (C,)
    folded = copy.deepcopy(layer)
    k = (1,) * (w.dim() - 2)  # one 1 per kernel dimension
    if isinstance(layer, TRANSPOSED):  # weight (C_in, C/g, *k): output channels along dim 1, per group
        g = layer.groups
        w_g = w.view(g, w.shape[0] // g, C // g, *w.shape[2:])  # (g, C_in/g, C/g, *k)
        folded.weight.copy_((w_g * s.view(g, 1, C // g, *k)).view_as(w))
    else:  # Linear (C, in) or ConvNd (C, C_in/g, *k): one output channel per row, grouped or not
        folded.weight.copy_(w * s.view(C, 1, *k))
    b = layer.bias if layer.bias is not None else torch.zeros_like(ones)
    folded.bias = nn.Parameter(b * s + shift)  # (C,)
    return folded


def plan_fold(model: nn.Module) -> FoldReport:
    """Which BN layers `fold_batchnorm` merges into the layer before them, and why it keeps the rest.

    A BN is folded when it directly follows a Linear / Conv / ConvTranspose inside an
    nn.Sequential: only there is the order of calls known from the structure alone (a custom
    forward() may use its submodules in any order). Changes nothing; ignores train/eval mode.
    """
    bns = bn_layers(model)
    report = FoldReport()
    for seq_path, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for i, (name, bn) in enumerate(children):
            path = f"{seq_path}.{name}" if seq_path else name
            if path not in bns:
                continue
            if i == 0:
                report.skipped[path] = f"first module of its nn.Sequential {_label(seq_path)}"
                continue
            prev_name, prev = children[i - 1]
            prev_path = f"{seq_path}.{prev_name}" if seq_path else prev_name
            if not isinstance(prev, FOLDABLE):
                why = f"follows {type(prev).__name__} {prev_path!r}, not a {FOLDABLE_NAMES}"
            elif bn.running_mean is None:
                why = (
                    "track_running_stats=False: no fixed statistics "
                    "(eval mode normalizes with batch statistics)"
                )
            elif bn.num_features != _out_channels(prev):
                why = (
                    f"channel count mismatch: BN has {bn.num_features} features but "
                    f"{type(prev).__name__} {prev_path!r} has {_out_channels(prev)} output channels"
                )
            else:
                report.folded.append((prev_path, path))
                continue
            report.skipped[path] = why
    decided = set(report.skipped) | {bn_path for _, bn_path in report.folded}
    for path in (p for p in bns if p not in decided):
        if not path:
            report.skipped[path] = "the model itself is the BN: no layer before it to fold into"
            continue
        parent_path = path.rpartition(".")[0]
        report.skipped[path] = (
            f"not inside an nn.Sequential (its parent {_label(parent_path)} is a "
            f"{type(model.get_submodule(parent_path)).__name__}, "
            "whose forward() may call modules in any order)"
        )
    report.skipped = {p: report.skipped[p] for p in bns if p in report.skipped}  # in model order
    return report


def fold_batchnorm(
    model: nn.Module, *, strict: bool = False, return_report: bool = False
) -> nn.Module | tuple[nn.Module, FoldReport]:
    """A copy of an eval-mode model, for inference, with BN merged into the layer before it.

    Every BN that `plan_fold` finds directly after a Linear / Conv / ConvTranspose inside an
    nn.Sequential is merged into that layer and replaced by nn.Identity; eval outputs are equal
    up to rounding. Every other BN is kept, and named with the reason in one warning, or in a
    ValueError if strict=True (then nothing is folded). return_report=True returns
    (folded model, FoldReport). The input model is not changed.
    """
    in_training = [name for name, mod in bn_layers(model).items() if mod.training]
    if model.training and "" not in in_training:
        in_training.insert(0, "")
    if in_training:
        raise ValueError(
            "fold_batchnorm needs the model in eval mode, got training mode for "
            f"{', '.join(_label(n) for n in in_training)}. In training mode BN normalizes with each "
            "mini-batch's own statistics (Alg. 1), which change from batch to batch, so there is no fixed "
            "affine map to fold (Alg. 2 fixes them). Call model.eval() first."
        )
    model = copy.deepcopy(model)
    report = plan_fold(model)
    if report.skipped and strict:
        raise ValueError(
            f"fold_batchnorm(strict=True): cannot fold {len(report.skipped)} BN layer(s):\n"
            f"{report.describe_skipped()}\nPut each BN directly after its Linear / Conv in an "
            "nn.Sequential, or pass strict=False to keep them."
        )
    if report.skipped:
        warnings.warn(
            f"fold_batchnorm kept {len(report.skipped)} BN layer(s) it cannot fold:\n"
            f"{report.describe_skipped()}\n"
            "Pass strict=True to make this an error.",
            stacklevel=2,
        )
    for layer_path, bn_path in report.folded:
        parent, _, layer_name = layer_path.rpartition(".")
        seq = model.get_submodule(parent)
        setattr(seq, layer_name, fold_layer(model.get_submodule(layer_path), model.get_submodule(bn_path)))
        setattr(seq, bn_path.rpartition(".")[2], nn.Identity())
    return (model, report) if return_report else model
