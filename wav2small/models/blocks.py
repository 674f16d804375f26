"""Building blocks of the convolutional students (MobileNetV2/V3/V4, MnasNet): conv-norm-activation,
squeeze-excitation, inverted residuals, and the shape they share: log-mel image in, (B, 3) out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import LogMelImageConfig, LogMelImageStudent
from .norms import EvoNormB0, EvoNormS0, check_norm, norm_act


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10 % (as the papers do)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Conv2d -> normalisation -> activation ('same' padding for odd kernels).

    ``norm`` is "batch" (BatchNorm, then ``act``; None = linear) or an EvoNorm, which replaces
    both (see :mod:`wav2small.models.norms`). Children: 0 conv, 1 norm, 2 activation. ``bias``
    only for papers that count one (EfficientFormer): the norm's shift makes it redundant.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, groups: int = 1, act: type | None = nn.ReLU,
                 norm: str = "batch", bias: bool = False):
        conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=bias)
        super().__init__(conv, *norm_act(norm, c_out, act))


class SqueezeExcite(nn.Module):
    """Channel gates from the global mean: 1x1 conv -> ReLU -> 1x1 conv -> gate (``hard``-sigmoid
    as in MobileNetV3, or the ``sigmoid`` of MnasNet)."""

    def __init__(self, channels: int, squeezed: int, *, gate: str = "hard"):
        super().__init__()
        if gate not in ("hard", "sigmoid"):
            raise ValueError(f"gate must be 'hard' or 'sigmoid', got {gate!r}")
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.functional.hardsigmoid if gate == "hard" else torch.sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1), per example: no batch coupling
        return x * self.gate(self.expand(torch.relu(self.reduce(gate))))


class InvertedResidual(nn.Module):
    """Inverted residual with a linear bottleneck (MobileNetV2; MnasNet's MBConv; MobileNetV3's
    bneck): 1x1 expand (left out when ``expanded == c_in``) -> depthwise kxk -> squeeze-excite to
    ``se`` channels (0 = none) -> 1x1 linear projection, plus the input when shapes allow."""

    def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, *, se: int = 0, act: type = nn.ReLU,
                 stride: int = 1, gate: str = "hard", norm: str = "batch"):
        super().__init__()
        layers = [] if expanded == c_in else [ConvBNAct(c_in, expanded, 1, act=act, norm=norm)]
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act, norm=norm))
        if se:
            layers.append(SqueezeExcite(expanded, se, gate=gate))
        layers.append(ConvBNAct(expanded, c_out, 1, act=None, norm=norm))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def inverted_residual_stages(c_in: int, stages, *, width: float, act: type, norm: str, gate: str = "sigmoid") -> tuple[list, int]:
    """Blocks of a MobileNetV2 / MnasNet stage table and the output width.

    ``stages`` rows: (expansion, out channels, repeats, stride of the first block, kernel, SE ratio);
    out channels are scaled by ``width`` and rounded to multiples of 8; the expanded width is
    ``round(c_in * expansion)``; squeeze-excitation squeezes to ``int(c_in * ratio)`` channels of
    the block's input (0 = no SE), as MnasNet does.
    """
    blocks, c = [], c_in
    for expansion, c_out, repeats, stride, kernel, se_ratio in stages:
        c_out = make_divisible(c_out * width)
        for i in range(repeats):
            blocks.append(InvertedResidual(c, kernel, int(round(c * expansion)), c_out, se=int(c * se_ratio), act=act,
                                           stride=stride if i == 0 else 1, gate=gate, norm=norm))
            c = c_out
    return blocks, c


class UniversalInvertedBottleneck(nn.Module):
    """MobileNetV4 UIB: optional depthwise ``start`` -> 1x1 expand -> optional depthwise ``middle`` -> 1x1 projection.

    Kernel 0 drops a depthwise conv: (start, middle) both set = ExtraDW, middle only = IB (MobileNetV2
    inverted bottleneck), start only = ConvNext-like, neither = FFN. The stride sits on the middle
    depthwise when there is one, else on the start one.
    """

    def __init__(self, c_in: int, c_out: int, start_kernel: int, middle_kernel: int, stride: int, expand: float,
                 *, norm: str = "batch"):
        super().__init__()
        expanded = make_divisible(c_in * expand)
        start_stride = 1 if middle_kernel else stride
        self.start = (ConvBNAct(c_in, c_in, start_kernel, start_stride, groups=c_in, act=None, norm=norm)
                      if start_kernel else nn.Identity())
        self.expand = ConvBNAct(c_in, expanded, 1, norm=norm)
        self.middle = (ConvBNAct(expanded, expanded, middle_kernel, stride, groups=expanded, norm=norm)
                       if middle_kernel else nn.Identity())
        self.project = ConvBNAct(expanded, c_out, 1, act=None, norm=norm)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.middle(self.expand(self.start(x))))
        return x + y if self.residual else y


class FusedInvertedBottleneck(nn.Module):
    """MobileNetV4 FusedIB: full kxk conv to the expanded width -> 1x1 linear projection (+ skip)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: float, *, norm: str = "batch"):
        super().__init__()
        expanded = make_divisible(c_in * expand)
        self.expand = ConvBNAct(c_in, expanded, kernel, stride, norm=norm)
        self.project = ConvBNAct(expanded, c_out, 1, act=None, norm=norm)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.expand(x))
        return x + y if self.residual else y


@dataclass
class MobileNetConfig(LogMelImageConfig):
    """Settings every MobileNet-family student shares: the front-end's (see
    :class:`~wav2small.models.base.LogMelImageConfig`) and norm: "batch", "evonorm-b0" or
    "evonorm-s0" in every conv of the body (see :mod:`wav2small.models.norms` for what each costs
    at export and in streaming)."""

    norm: str = "batch"


class MobileNetStudent(LogMelImageStudent):
    """Shared shape of the MobileNet family: log-mel front-end -> ``stem`` + ``blocks`` -> global
    mean over time and mel -> ``head`` (a hidden Linear where the family has one, activation,
    dropout, Linear to 3, no output activation).

    Input (B, N) 16 kHz waveform, any gain, any length; output (B, 3) arousal, dominance, valence,
    unclipped. In eval mode an example's output does not depend on its batch neighbours.
    """

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        check_norm(self.config.norm)

    def _build_head(self, c_in: int, hidden: int | None = None, act: type = nn.ReLU, *, norm: bool = False):
        """Pooled features (B, c_in) -> (B, 3); ``hidden`` adds a Linear (+ BatchNorm1d with ``norm``)
        and ``act`` before the dropout, as MobileNetV3/V4 do."""
        pooled = []
        if hidden:
            pooled = [nn.Linear(c_in, hidden, bias=False), nn.BatchNorm1d(hidden)] if norm else [nn.Linear(c_in, hidden)]
            pooled.append(act())
            c_in = hidden
        self.head = nn.Sequential(*pooled, nn.Dropout(self.config.dropout), nn.Linear(c_in, 3))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, EvoNormB0, EvoNormS0)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.frontend(x, mask)  # (B, 1, T, M) log-mel in dB, T = frames at 100 Hz by default
        x = self.blocks(self.stem(x))  # (B, C, T / 32, M / 32)
        return self.head(x.mean(dim=(2, 3)))  # (B, 3)
