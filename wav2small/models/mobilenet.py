"""MobileNetV3 (Howard et al. 2019) and MobileNetV4-Conv (Qin et al. 2024) students: the in-model
conv-DFT log-mel image goes through the published block tables and ends in a 3-output regression head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..frontend import PRENORM_EPS, LogMelFrontEnd
from .base import Student


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10 % (as the papers do)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm -> optional activation; 'same' padding for odd kernels."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, groups: int = 1, act: type | None = nn.ReLU):
        layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel gates from the global mean: 1x1 conv -> ReLU -> 1x1 conv -> hard-sigmoid (MobileNetV3)."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1), per example: no batch coupling
        gate = nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(gate))))
        return x * gate


class InvertedResidual(nn.Module):
    """MobileNetV3 bneck: 1x1 expand -> depthwise kxk -> optional SE -> 1x1 linear projection (+ skip)."""

    def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, act: type, stride: int):
        super().__init__()
        layers = [] if expanded == c_in else [ConvBNAct(c_in, expanded, 1, act=act)]
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcite(expanded, make_divisible(expanded / 4)))
        layers.append(ConvBNAct(expanded, c_out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class UniversalInvertedBottleneck(nn.Module):
    """MobileNetV4 UIB: optional depthwise ``start`` -> 1x1 expand -> optional depthwise ``middle`` -> 1x1 projection.

    Kernel 0 drops a depthwise conv: (start, middle) both set = ExtraDW, middle only = IB (MobileNetV2
    inverted bottleneck), start only = ConvNext-like, neither = FFN. The stride sits on the middle
    depthwise when there is one, else on the start one.
    """

    def __init__(self, c_in: int, c_out: int, start_kernel: int, middle_kernel: int, stride: int, expand: float):
        super().__init__()
        expanded = make_divisible(c_in * expand)
        start_stride = 1 if middle_kernel else stride
        self.start = ConvBNAct(c_in, c_in, start_kernel, start_stride, groups=c_in, act=None) if start_kernel else nn.Identity()
        self.expand = ConvBNAct(c_in, expanded, 1)
        self.middle = ConvBNAct(expanded, expanded, middle_kernel, stride, groups=expanded) if middle_kernel else nn.Identity()
        self.project = ConvBNAct(expanded, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.middle(self.expand(self.start(x))))
        return x + y if self.residual else y


class FusedInvertedBottleneck(nn.Module):
    """MobileNetV4 FusedIB: full kxk conv to the expanded width -> 1x1 linear projection (+ skip)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: float):
        super().__init__()
        expanded = make_divisible(c_in * expand)
        self.expand = ConvBNAct(c_in, expanded, kernel, stride)
        self.project = ConvBNAct(expanded, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.expand(x))
        return x + y if self.residual else y


class MobileNetStudent(Student):
    """Shared shape of both families: log-mel front-end -> ``stem`` + ``blocks`` -> global mean over
    time and mel -> ``head`` (the 1x1 head conv as a Linear, BatchNorm for V4 only, activation,
    dropout, Linear to 3, no output activation).

    Input (B, N) 16 kHz waveform, any gain, any length; output (B, 3) arousal, dominance, valence,
    unclipped. In eval mode (BatchNorm with running statistics) an example's output does not
    depend on its batch neighbours.
    """

    #: variant name -> block table, set by each family
    tables: dict = {}

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        if self.config.variant not in self.tables:
            raise ValueError(f"unknown {type(self).__name__} variant {self.config.variant!r}; choose one of {sorted(self.tables)}")
        self.frontend = LogMelFrontEnd(self.config.sampling_rate, self.config.n_fft, self.config.hop, self.config.n_mels,
                                       prenorm_eps=self.config.prenorm_eps)

    def _build_head(self, c_in: int, hidden: int, act: type, *, norm: bool):
        pooled = [nn.Linear(c_in, hidden, bias=False), nn.BatchNorm1d(hidden)] if norm else [nn.Linear(c_in, hidden)]
        self.head = nn.Sequential(*pooled, act(inplace=True), nn.Dropout(self.config.dropout), nn.Linear(hidden, 3))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
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


# MobileNetV3 block tables (Howard et al. 2019, tables 1 and 2):
# (kernel, expanded, out, squeeze-excite, activation, stride); stem conv 3x3/2 to 16, hard-swish.
RE, HS = nn.ReLU, nn.Hardswish
MOBILENETV3_BLOCKS = {
    "small": [
        (3, 16, 16, True, RE, 2),
        (3, 72, 24, False, RE, 2),
        (3, 88, 24, False, RE, 1),
        (5, 96, 40, True, HS, 2),
        (5, 240, 40, True, HS, 1),
        (5, 240, 40, True, HS, 1),
        (5, 120, 48, True, HS, 1),
        (5, 144, 48, True, HS, 1),
        (5, 288, 96, True, HS, 2),
        (5, 576, 96, True, HS, 1),
        (5, 576, 96, True, HS, 1),
    ],
    "large": [
        (3, 16, 16, False, RE, 1),
        (3, 64, 24, False, RE, 2),
        (3, 72, 24, False, RE, 1),
        (5, 72, 40, True, RE, 2),
        (5, 120, 40, True, RE, 1),
        (5, 120, 40, True, RE, 1),
        (3, 240, 80, False, HS, 2),
        (3, 200, 80, False, HS, 1),
        (3, 184, 80, False, HS, 1),
        (3, 184, 80, False, HS, 1),
        (3, 480, 112, True, HS, 1),
        (3, 672, 112, True, HS, 1),
        (5, 672, 160, True, HS, 2),
        (5, 960, 160, True, HS, 1),
        (5, 960, 160, True, HS, 1),
    ],
}
#: Width of the last 1x1 conv (6 x the last block's output) and of the pooled head, per variant.
MOBILENETV3_HEAD = {"small": (576, 1024), "large": (960, 1280)}


@dataclass
class MobileNetConfig:
    """Settings both MobileNet families share.

    variant: the block table. n_fft, hop: frame and hop in samples of the conv-DFT front-end
    (400 / 160 = 25 ms / 10 ms at 16 kHz, the usual speech frames). n_mels: mel bands (64, so
    the 32x downsampling leaves 2 bands). dropout: before the last Linear. prenorm_eps: see
    :class:`wav2small.models.Wav2SmallConfig`.
    """

    variant: str = ""
    n_fft: int = 400
    hop: int = 160
    n_mels: int = 64
    dropout: float = 0.0
    sampling_rate: int = 16000
    prenorm_eps: float = PRENORM_EPS


@dataclass
class MobileNetV3Config(MobileNetConfig):
    """MobileNetV3: variant "small" or "large" (the paper's tables); width multiplies every
    channel count; dropout 0.2 as in the paper's training."""

    variant: str = "small"
    width: float = 1.0
    dropout: float = 0.2


class MobileNetV3(MobileNetStudent):
    """MobileNetV3 on the log-mel image (one input channel), 3-output regression head.

    Trainable parameters with the defaults (64 mels, width 1): small 1,520,643, large 4,205,587:
    exactly the ImageNet models' 2,542,856 / 5,483,032 with one input channel and a 3-output
    last layer instead of 1000 classes.

    >>> MobileNetV3(variant="small").eval()(torch.zeros(2, 16000)).shape
    torch.Size([2, 3])
    """

    config_class = MobileNetV3Config
    architecture = "mobilenetv3"
    tables = MOBILENETV3_BLOCKS

    def __init__(self, config: MobileNetV3Config | None = None, **overrides):
        super().__init__(config, **overrides)
        variant, width = self.config.variant, self.config.width
        c = make_divisible(16 * width)
        self.stem = ConvBNAct(1, c, 3, 2, act=HS)
        blocks = []
        for kernel, expanded, c_out, se, act, stride in MOBILENETV3_BLOCKS[variant]:
            c_out = make_divisible(c_out * width)
            blocks.append(InvertedResidual(c, kernel, make_divisible(expanded * width), c_out, se, act, stride))
            c = c_out
        last, hidden = MOBILENETV3_HEAD[variant]
        blocks.append(ConvBNAct(c, make_divisible(last * width), 1, act=HS))
        self.blocks = nn.Sequential(*blocks)
        self._build_head(make_divisible(last * width), make_divisible(hidden * width), HS, norm=False)


# MobileNetV4-Conv block tables (Qin et al. 2024, appendix tables for Conv-S and Conv-M):
# ("conv", kernel, stride, out) conv-BN-ReLU; ("fused", kernel, stride, out, expand) FusedIB;
# ("uib", start kernel, middle kernel, stride, out, expand). The stem is the first "conv".
MOBILENETV4_BLOCKS = {
    "conv-small": [
        ("conv", 3, 2, 32),
        ("conv", 3, 2, 32), ("conv", 1, 1, 32),
        ("conv", 3, 2, 96), ("conv", 1, 1, 64),
        ("uib", 5, 5, 2, 96, 3.0),
        *[("uib", 0, 3, 1, 96, 2.0)] * 4,
        ("uib", 3, 0, 1, 96, 4.0),
        ("uib", 3, 3, 2, 128, 6.0),
        ("uib", 5, 5, 1, 128, 4.0),
        ("uib", 0, 5, 1, 128, 4.0),
        ("uib", 0, 5, 1, 128, 3.0),
        *[("uib", 0, 3, 1, 128, 4.0)] * 2,
        ("conv", 1, 1, 960),
    ],
    "conv-medium": [
        ("conv", 3, 2, 32),
        ("fused", 3, 2, 48, 4.0),
        ("uib", 3, 5, 2, 80, 4.0),
        ("uib", 3, 3, 1, 80, 2.0),
        ("uib", 3, 5, 2, 160, 6.0),
        *[("uib", 3, 3, 1, 160, 4.0)] * 2,
        ("uib", 3, 5, 1, 160, 4.0),
        ("uib", 3, 3, 1, 160, 4.0),
        ("uib", 3, 0, 1, 160, 4.0),
        ("uib", 0, 0, 1, 160, 2.0),
        ("uib", 3, 0, 1, 160, 4.0),
        ("uib", 5, 5, 2, 256, 6.0),
        ("uib", 5, 5, 1, 256, 4.0),
        *[("uib", 3, 5, 1, 256, 4.0)] * 2,
        ("uib", 0, 0, 1, 256, 4.0),
        ("uib", 3, 0, 1, 256, 4.0),
        ("uib", 3, 5, 1, 256, 2.0),
        ("uib", 5, 5, 1, 256, 4.0),
        *[("uib", 0, 0, 1, 256, 4.0)] * 2,
        ("uib", 5, 0, 1, 256, 2.0),
        ("conv", 1, 1, 960),
    ],
}


@dataclass
class MobileNetV4Config(MobileNetConfig):
    """MobileNetV4-Conv: variant "conv-small" or "conv-medium" (the paper's tables)."""

    variant: str = "conv-small"


class MobileNetV4(MobileNetStudent):
    """MobileNetV4-Conv on the log-mel image (one input channel), 3-output regression head.

    Trainable parameters with the defaults: conv-small 2,496,291, conv-medium 8,437,779: exactly
    the ImageNet models' 3,774,024 / 9,715,512 with one input channel and a 3-output last layer
    instead of 1000 classes. The Wav2Small paper quotes 3.12M for its MobileNetV4-Small; its
    head and front-end settings are not published.

    >>> MobileNetV4(variant="conv-small").eval()(torch.zeros(2, 16000)).shape
    torch.Size([2, 3])
    """

    config_class = MobileNetV4Config
    architecture = "mobilenetv4"
    tables = MOBILENETV4_BLOCKS

    def __init__(self, config: MobileNetV4Config | None = None, **overrides):
        super().__init__(config, **overrides)
        (_, kernel, stride, c), *table = MOBILENETV4_BLOCKS[self.config.variant]
        self.stem = ConvBNAct(1, c, kernel, stride)
        blocks = []
        for kind, *spec in table:
            if kind == "conv":
                kernel, stride, c_out = spec
                blocks.append(ConvBNAct(c, c_out, kernel, stride))
            elif kind == "fused":
                kernel, stride, c_out, expand = spec
                blocks.append(FusedInvertedBottleneck(c, c_out, kernel, stride, expand))
            else:
                start, middle, stride, c_out, expand = spec
                blocks.append(UniversalInvertedBottleneck(c, c_out, start, middle, stride, expand))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self._build_head(c, 1280, nn.ReLU, norm=True)
