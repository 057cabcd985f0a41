"""The networks the chapters train, with bnpaper's BatchNorm (fast path) where BN is on.

Following Sec. 3.2, BN goes right before the nonlinearity, z = g(BN(W u)), and the layer before
it has no bias (beta takes its role).
"""

from __future__ import annotations

import torch
from torch import nn

from bnpaper.errors import ConfigError
from bnpaper.layers import BatchNorm, BatchRenorm, GhostBatchNorm


class Dropout(nn.Module):
    """Inverted dropout whose masks come from a generator of the run's own.

    With torch's nn.Dropout the masks come from the global random stream, so they depend on
    whatever else drew from it. Here each run owns `generator` (the training loop seeds it from the
    run's seed), so run r draws the same masks whether it trains alone or batched with others.
    The multi-run engine draws each run's masks itself, with `draw_mask` and the same generator,
    and passes them in as the `mask` buffer.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout rate must be in [0, 1), got {p!r}")
        self.p = p
        self.generator: torch.Generator | None = None  # set by the training loop
        self.register_buffer("mask", None, persistent=False)  # (N, ...) supplied by the engine

    @staticmethod
    def draw_mask(shape, p: float, generator: torch.Generator | None, dtype=torch.float32) -> torch.Tensor:
        """Keep each unit with probability 1 - p, scaled by 1 / (1 - p) (inverted dropout)."""
        keep = torch.rand(shape, generator=generator, dtype=torch.float64) >= p  # drawn on the CPU
        return keep.to(dtype) / (1.0 - p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.mask is not None:
            return x * self.mask
        return x * self.draw_mask(x.shape, self.p, self.generator, x.dtype).to(x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class BNNoise(nn.Module):
    """Noisy BN (Santurkar et al. 2018): after a BN, every unit is scaled and shifted by random
    amounts, shared by the mini-batch and drawn afresh at every training step, so that the
    distribution of the next layer's input moves all the time; inference is unchanged.

    shift ~ U(-level, level) and scale ~ U(1, 1 + level) per unit: a shift of non-zero mean and a
    spread other than 1, as in their experiment. The training loops (bnpaper.train and
    bnpaper.engine) redraw `scale` and `shift` before every step with `draw` and the run's own
    generator, so a run draws the same noise whether it trains alone or batched.
    """

    def __init__(self, features: int, level: float):
        super().__init__()
        if not level > 0:
            raise ConfigError(f"noise level must be > 0, got {level!r}")
        self.level = level
        # this step's draw: set by the training loop, not part of the trained state (state_dict)
        self.register_buffer("scale", torch.ones(features), persistent=False)  # (features,)
        self.register_buffer("shift", torch.zeros(features), persistent=False)

    @staticmethod
    def draw(features: int, level: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each (features,), drawn on the CPU from `generator`."""
        u = torch.rand(2, features, generator=generator, dtype=torch.float64)
        return (1.0 + level * u[0]).float(), (level * (2 * u[1] - 1)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift if self.training else x

    def extra_repr(self) -> str:
        return f"features={self.scale.numel()}, level={self.level}"


ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


NORMS = ("batch", "none", "layer", "group", "batch_renorm", "ghost_batch")


def norm_kind(bn) -> str:
    """The normalization a network uses: bn=True / False (the book's chapters) or a name from NORMS."""
    if isinstance(bn, bool):
        return "batch" if bn else "none"
    if bn not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {bn!r}")
    return bn


def make_norm(
    kind: str, features: int, momentum: float | None = 0.1, ghost_batches: int = 1, conv: bool = False
):
    """One normalization layer of `features` channels (None for "none"). batch: bnpaper's BN;
    batch_renorm: Batch Renormalization (Ioffe 2017); ghost_batch: BN over `ghost_batches` parts of
    the batch (Hoffer et al. 2017); layer: LayerNorm (torch; over (C, H, W) for a conv layer, as
    GroupNorm with one group); group: GroupNorm (torch) with the largest of 8, 4, 2 groups dividing C."""
    if kind == "none":
        return None
    if kind == "batch":
        return BatchNorm(features, momentum=momentum)
    if kind == "batch_renorm":
        return BatchRenorm(features, momentum=momentum)
    if kind == "ghost_batch":
        if ghost_batches < 2:
            raise ConfigError(f"norm 'ghost_batch' needs ghost_batches >= 2, got {ghost_batches}")
        return GhostBatchNorm(features, momentum=momentum, ghost_batches=ghost_batches)
    if kind == "layer":
        return nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)
    groups = next(g for g in (8, 4, 2, 1) if features % g == 0)
    return nn.GroupNorm(groups, features)


def _act(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def mlp(
    hidden: tuple[int, ...] = (100, 100, 100),
    bn: bool = False,
    activation: str = "sigmoid",
    dropout: float = 0.0,
    bn_momentum: float | None = 0.1,
    bn_noise: float = 0.0,
    ghost_batches: int = 1,
    norm: str | None = None,
) -> nn.Sequential:
    """28x28 -> hidden layers -> 10 logits (the paper's MNIST network, Sec. 4.1, is the default);
    bn_noise > 0 puts a BNNoise of that level after every BN; ghost_batches > 1 normalizes that many
    equal parts of each mini-batch apart (per-replica BN of data-parallel training, simulated);
    norm names another normalization (`NORMS`) in BN's place."""
    kind = norm_kind(norm or bn)
    if kind == "batch" and ghost_batches > 1:
        kind = "ghost_batch"
    layers: list[nn.Module] = [nn.Flatten()]  # (N, 1, 28, 28) -> (N, 784)
    width = 28 * 28
    for h in hidden:
        layers.append(nn.Linear(width, h, bias=kind == "none"))
        if kind != "none":
            layers.append(make_norm(kind, h, bn_momentum, ghost_batches))
            if bn_noise:
                layers.append(BNNoise(h, bn_noise))
        layers.append(_act(activation))
        if dropout:
            layers.append(Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def convnet(
    bn: bool = False,
    dropout: float = 0.0,
    channels: tuple[int, int] = (8, 16),
    hidden: int = 64,
    activation: str = "relu",
    bn_momentum: float | None = 0.1,
    norm: str | None = None,
    ghost_batches: int = 1,
) -> nn.Sequential:
    """Two 3x3 conv blocks (conv [-> BN] -> g -> 2x2 max-pool), one hidden FC layer, 10 logits."""
    c1, c2 = channels
    kind = norm_kind(norm or bn)

    def block(cin, cout):
        out = [nn.Conv2d(cin, cout, 3, padding=1, bias=kind == "none")]
        if kind != "none":  # per feature map, m' = m * p * q
            out.append(make_norm(kind, cout, bn_momentum, ghost_batches, conv=True))
        return out + [_act(activation), nn.MaxPool2d(2)]

    layers = [
        *block(1, c1),
        *block(c1, c2),
        nn.Flatten(),  # (N, 1, 28, 28) -> (N, c2 * 7 * 7)
        nn.Linear(c2 * 7 * 7, hidden, bias=kind == "none"),
    ]
    if kind != "none":
        layers.append(make_norm(kind, hidden, bn_momentum, ghost_batches))
    layers.append(_act(activation))
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(nn.Linear(hidden, 10))
    return nn.Sequential(*layers)


def _unit(
    cin: int, cout: int, k: int, bn: bool, activation: str, bn_momentum: float | None
) -> list[nn.Module]:
    """conv k x k [-> BN] -> g, 'same' padding; no conv bias when BN follows (Sec. 3.2)."""
    kind = norm_kind(bn)
    out: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=kind == "none")]
    if kind != "none":
        out.append(make_norm(kind, cout, bn_momentum, conv=True))
    return out + [_act(activation)]


class InceptionBlock(nn.Module):
    """An Inception module as in the paper's BN-Inception (Sec. 4.2): parallel 1x1, 1x1 -> 3x3,
    1x1 -> 3x3 -> 3x3 (the double 3x3 that replaces GoogLeNet's 5x5) and 3x3 avg-pool -> 1x1 branches,
    concatenated along channels."""

    def __init__(
        self,
        cin: int,
        c1: int,
        c3_reduce: int,
        c3: int,
        cd_reduce: int,
        cd: int,
        cpool: int,
        bn: bool,
        activation: str,
        bn_momentum: float | None = 0.1,
    ):
        super().__init__()
        u = lambda a, b, k: _unit(a, b, k, bn, activation, bn_momentum)
        self.b1 = nn.Sequential(*u(cin, c1, 1))
        self.b3 = nn.Sequential(*u(cin, c3_reduce, 1), *u(c3_reduce, c3, 3))
        self.bd = nn.Sequential(*u(cin, cd_reduce, 1), *u(cd_reduce, cd, 3), *u(cd, cd, 3))
        self.bp = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), *u(cin, cpool, 1))
        self.out_channels = c1 + c3 + cd + cpool

    def forward(self, x):  # (N, cin, H, W) -> (N, c1 + c3 + cd + cpool, H, W)
        return torch.cat([self.b1(x), self.b3(x), self.bd(x), self.bp(x)], dim=1)


def inception_net(
    bn: bool = False, activation: str = "relu", dropout: float = 0.0, bn_momentum: float | None = 0.1
) -> nn.Sequential:
    """A small Inception-style net for 28x28 digits: stem 3x3 conv, two Inception blocks with
    max-pooling between, global average pooling, [dropout], 10 logits."""
    a = InceptionBlock(16, 8, 8, 12, 4, 8, 4, bn, activation, bn_momentum)  # -> 32 channels
    b = InceptionBlock(a.out_channels, 12, 12, 16, 8, 12, 8, bn, activation, bn_momentum)  # -> 48 channels
    layers: list[nn.Module] = [
        *_unit(1, 16, 3, bn, activation, bn_momentum),
        nn.MaxPool2d(2),  # (N, 16, 14, 14)
        a,
        nn.MaxPool2d(2),
        b,  # (N, 48, 7, 7)
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ]  # (N, 48)
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(nn.Linear(b.out_channels, 10))
    return nn.Sequential(*layers)
