"""Inference with batch-normalized networks (Alg. 2) and folding BN into the layer before it.

* `estimate_population_statistics(model, batches)`: Alg. 2, lines 8-11, after training: feed k
  training mini-batches, average each BN layer's mu_B and sigma2_B, and store
  E[x] = E_B[mu_B] and Var[x] = m/(m-1) E_B[sigma2_B] as the layer's running statistics.
* `fold_batchnorm(model)`: at inference BN is one affine map per channel (Sec. 3.2), so it can
  be merged into the weights and bias of the Linear / Conv layer that feeds it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from bnpaper import functional as F
from bnpaper.layers import BatchNorm

BN_TYPES = (BatchNorm, nn.modules.batchnorm._BatchNorm)
FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


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
    saved = {name: (mod.running_mean.clone(), mod.running_var.clone(), mod.num_batches_tracked.clone())
             for name, mod in layers.items() if mod.running_mean is not None}
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
                raise ValueError(f"layer {name!r} has track_running_stats=False: nowhere to store Alg. 2's estimate")
            layers[name].running_mean.copy_(result[name][0])
            layers[name].running_var.copy_(result[name][1])
    return result


@torch.no_grad()
def fold_layer(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of `layer` (Linear or ConvNd) with the eval-mode `bn` after it merged in.

    BN(W u + b) = s * (W u + b - E[x]) + beta, with s = gamma / sqrt(Var[x] + eps) per output
    channel, i.e. weights s * W and bias s * (b - E[x]) + beta.
    """
    if not isinstance(layer, FOLDABLE):
        raise TypeError(f"can fold BN only into {[t.__name__ for t in FOLDABLE]}, got {type(layer).__name__}")
    if bn.running_mean is None:
        raise ValueError("cannot fold a BN layer with track_running_stats=False: it has no fixed statistics")
    C = layer.weight.shape[0]
    if bn.num_features != C:
        raise ValueError(f"BN has {bn.num_features} features but the layer before it has {C} output channels")
    w = layer.weight
    gamma = bn.weight if bn.weight is not None else torch.ones(C, dtype=w.dtype, device=w.device)
    beta = bn.bias if bn.bias is not None else torch.zeros(C, dtype=w.dtype, device=w.device)
    scale, shift = F.affine_coefficients(bn.running_mean, bn.running_var, gamma, beta, bn.eps)  # (C,)
    folded = copy.deepcopy(layer)
    folded.weight.copy_(w * scale.view((-1,) + (1,) * (w.dim() - 1)))  # (C_out, ...) scaled per row
    b = layer.bias if layer.bias is not None else torch.zeros(C, dtype=w.dtype, device=w.device)
    folded.bias = nn.Parameter(b * scale + shift)
    return folded


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of the model, for inference, with every BN that directly follows a Linear / Conv
    inside an nn.Sequential merged into it (the BN becomes nn.Identity). Eval outputs are equal
    up to rounding. BN layers that follow anything else are left as they are."""
    model = copy.deepcopy(model).eval()
    _fold_in_place(model)
    return model


def _fold_in_place(module: nn.Module) -> None:
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for prev, name in zip(names, names[1:]):
            layer, bn = module._modules[prev], module._modules[name]
            if isinstance(layer, FOLDABLE) and isinstance(bn, BN_TYPES):
                module._modules[prev] = fold_layer(layer, bn)
                module._modules[name] = nn.Identity()
    for child in module.children():
        _fold_in_place(child)
