"""The networks the chapters train, with bnpaper's BatchNorm (fast path) where BN is on.

Following Sec. 3.2, BN goes right before the nonlinearity, z = g(BN(W u)), and the layer before
it has no bias (beta takes its role).
"""

from __future__ import annotations

from torch import nn

from bnpaper.layers import BatchNorm

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


def _act(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def mlp(hidden: tuple[int, ...] = (100, 100, 100), bn: bool = False, activation: str = "sigmoid",
        dropout: float = 0.0, bn_momentum: float | None = 0.1) -> nn.Sequential:
    """28x28 -> hidden layers -> 10 logits (the paper's MNIST network, Sec. 4.1, is the default)."""
    layers: list[nn.Module] = [nn.Flatten()]  # (N, 1, 28, 28) -> (N, 784)
    width = 28 * 28
    for h in hidden:
        layers.append(nn.Linear(width, h, bias=not bn))
        if bn:
            layers.append(BatchNorm(h, momentum=bn_momentum))
        layers.append(_act(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def convnet(bn: bool = False, dropout: float = 0.0, channels: tuple[int, int] = (8, 16), hidden: int = 64,
            activation: str = "relu", bn_momentum: float | None = 0.1) -> nn.Sequential:
    """Two 3x3 conv blocks (conv [-> BN] -> g -> 2x2 max-pool), one hidden FC layer, 10 logits."""
    c1, c2 = channels

    def block(cin, cout):
        out = [nn.Conv2d(cin, cout, 3, padding=1, bias=not bn)]
        if bn:
            out.append(BatchNorm(cout, momentum=bn_momentum))  # per feature map, m' = m * p * q
        return out + [_act(activation), nn.MaxPool2d(2)]

    layers = [*block(1, c1), *block(c1, c2), nn.Flatten(),  # (N, 1, 28, 28) -> (N, c2 * 7 * 7)
              nn.Linear(c2 * 7 * 7, hidden, bias=not bn)]
    if bn:
        layers.append(BatchNorm(hidden, momentum=bn_momentum))
    layers.append(_act(activation))
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, 10))
    return nn.Sequential(*layers)
