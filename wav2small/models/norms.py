"""Normalisation-activation layers of the convolutional students: BatchNorm + activation (the
default) or an EvoNorm (Liu et al. 2020, "Evolving Normalization-Activation Layers"), chosen by
the config field ``norm`` = "batch" | "evonorm-b0" | "evonorm-s0".

What the choice means for deployment:

- **batch**: BatchNorm with moving averages; at export it is folded into the convolution before it,
  so it costs nothing, and it works chunk by chunk (streaming) since it holds no statistic of the input.
- **evonorm-b0**: x / max(sqrt(batch var), v1 x + sqrt(instance var)) * gamma + beta. The batch
  variance is replaced by its moving average at inference (as BatchNorm does), but the instance
  variance is a per-example statistic over all of time and mel: it is recomputed for every input,
  so B0 cannot be folded into the convolution and is not exactly streamable either.
- **evonorm-s0**: x sigmoid(v1 x) / sqrt(group var) * gamma + beta, with per-example group
  statistics over channels of a group, time and mel and no moving averages at all: the output at
  one moment depends on the whole clip, so S0 cannot stream and cannot be folded into the
  convolution at export (the ONNX graph computes the statistics).

In both EvoNorms the nonlinearity is part of the layer, so it replaces the norm *and* the
activation that followed it (ReLU, ReLU6 or hard-swish). Where a conv has no activation (the
linear bottleneck of an inverted residual), the EvoNorm drops its x-dependent term (v1 x, the
sigmoid): B0 becomes x / max(sqrt(batch var), sqrt(instance var)), S0 x / sqrt(group var), each
times gamma plus beta, so the bottleneck stays linear.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "evonorm-b0", "evonorm-s0")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def evonorm_groups(channels: int, *, most: int = 32, least_size: int = 4) -> int:
    """Groups of EvoNorm-S0: the paper's 32, fewer where a group would hold under ``least_size``
    channels (audio students are narrow), always a divisor of ``channels``.

    >>> [evonorm_groups(c) for c in (13, 16, 96, 256)]
    [1, 4, 24, 32]
    """
    limit = max(1, min(most, channels // least_size))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


class EvoNormB0(nn.Module):
    """EvoNorm-B0 over (B, C, H, W): x / max(sqrt(var_batch + eps), v1 x + sqrt(var_instance + eps))
    * gamma + beta, per channel. var_batch is over batch, H and W (its moving average in eval mode,
    updated like BatchNorm's with ``momentum``); var_instance over H and W of each example.
    ``nonlinear=False`` drops v1 x (see the module docstring)."""

    def __init__(self, channels: int, *, nonlinear: bool = True, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels)) if nonlinear else None
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            var = x.var(dim=(0, 2, 3), unbiased=False)
            with torch.no_grad():
                n = x.numel() / x.shape[1]
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)  # unbiased, as BatchNorm keeps it
        else:
            var = self.running_var
        batch_std = torch.sqrt(var + self.eps)[None, :, None, None]
        instance_std = torch.sqrt(x.var(dim=(2, 3), keepdim=True, unbiased=False) + self.eps)  # (B, C, 1, 1)
        right = instance_std if self.v is None else self.v[None, :, None, None] * x + instance_std
        return x / torch.maximum(batch_std, right) * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class EvoNormS0(nn.Module):
    """EvoNorm-S0 over (B, C, H, W): x sigmoid(v1 x) / sqrt(var_group + eps) * gamma + beta, where
    var_group is over the channels of a group, H and W of each example (``groups`` default:
    :func:`evonorm_groups`). ``nonlinear=False`` drops the sigmoid (see the module docstring)."""

    def __init__(self, channels: int, *, nonlinear: bool = True, groups: int | None = None, eps: float = 1e-5):
        super().__init__()
        self.groups = groups or evonorm_groups(channels)
        if channels % self.groups:
            raise ValueError(f"EvoNorm-S0: {channels} channels do not split into {self.groups} groups")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels)) if nonlinear else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        size = c // self.groups
        # group statistics from per-channel ones (every channel has the same H x W), so that no
        # reshape involves the input's length: two passes, for the precision of the variance
        mean = x.mean(dim=(2, 3)).reshape(b, self.groups, size).mean(dim=2, keepdim=True)  # (B, G, 1)
        mean = mean.expand(b, self.groups, size).reshape(b, c, 1, 1)
        var = (x - mean).pow(2).mean(dim=(2, 3)).reshape(b, self.groups, size).mean(dim=2, keepdim=True)
        std = torch.sqrt(var + self.eps).expand(b, self.groups, size).reshape(b, c, 1, 1)
        y = x if self.v is None else x * torch.sigmoid(self.v[None, :, None, None] * x)
        return y / std * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def norm_act(norm: str, channels: int, act: type | None) -> tuple[nn.Module, nn.Module]:
    """(normalisation, activation) modules after a conv with ``channels`` outputs: BatchNorm2d and
    ``act`` (Identity when None) for "batch"; for an EvoNorm, the EvoNorm (nonlinear when ``act``
    is given) and Identity, since the EvoNorm's own nonlinearity replaces the activation."""
    if check_norm(norm) == "batch":
        return nn.BatchNorm2d(channels), act() if act is not None else nn.Identity()
    layer = EvoNormB0 if norm == "evonorm-b0" else EvoNormS0
    return layer(channels, nonlinear=act is not None), nn.Identity()
