"""MobileNetV2 (Sandler et al. 2018), MobileNetV3 (Howard et al. 2019) and MobileNetV4-Conv (Qin et
al. 2024) students: the in-model conv-DFT log-mel image goes through the published block tables and
ends in a 3-output regression head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch  # noqa: F401  (the docstring examples use it)
from torch import nn

from .blocks import (ConvBNAct, FusedInvertedBottleneck, InvertedResidual, MobileNetConfig, MobileNetStudent,
                     UniversalInvertedBottleneck, inverted_residual_stages, make_divisible)

# MobileNetV2 (Sandler et al. 2018, table 2): (expansion t, channels c, repeats n, stride s, kernel,
# SE ratio); stem conv 3x3/2 to 32, last conv 1x1 to 1280, ReLU6 everywhere but the bottlenecks.
MOBILENETV2_STAGES = [
    (1, 16, 1, 1, 3, 0),
    (6, 24, 2, 2, 3, 0),
    (6, 32, 3, 2, 3, 0),
    (6, 64, 4, 2, 3, 0),
    (6, 96, 3, 1, 3, 0),
    (6, 160, 3, 2, 3, 0),
    (6, 320, 1, 1, 3, 0),
]


@dataclass
class MobileNetV2Config(MobileNetConfig):
    """MobileNetV2: width multiplies every channel count (rounded to multiples of 8) except the
    last conv's 1280, which only grows (as in the paper); dropout 0.2 as in the paper's training."""

    width: float = 1.0
    dropout: float = 0.2


class MobileNetV2(MobileNetStudent):
    """MobileNetV2 on the log-mel image (one input channel): inverted residuals with linear
    bottlenecks, ReLU6, the paper's strides (32x down: 64 mels x 100 frames/s become 2 bands at
    about 3 frames/s before the global mean), 3-output regression head.

    Trainable parameters: width 1 2,227,139, width 0.35 399,683: exactly the ImageNet models'
    3,504,872 (the paper's "3.4M"; torchvision's count) and 1,677,128 with one input channel and a
    3-output last layer instead of 1000 classes.

    >>> MobileNetV2(width=0.35).eval()(torch.zeros(2, 16000)).shape
    torch.Size([2, 3])
    """

    config_class = MobileNetV2Config
    architecture = "mobilenetv2"

    def __init__(self, config: MobileNetV2Config | None = None, **overrides):
        super().__init__(config, **overrides)
        width, norm = self.config.width, self.config.norm
        c = make_divisible(32 * width)
        self.stem = ConvBNAct(1, c, 3, 2, act=nn.ReLU6, norm=norm)
        blocks, c = inverted_residual_stages(c, MOBILENETV2_STAGES, width=width, act=nn.ReLU6, norm=norm)
        last = make_divisible(1280 * max(1.0, width))
        self.blocks = nn.Sequential(*blocks, ConvBNAct(c, last, 1, act=nn.ReLU6, norm=norm))
        self._build_head(last)


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
        variant, width, norm = self.config.variant, self.config.width, self.config.norm
        c = make_divisible(16 * width)
        self.stem = ConvBNAct(1, c, 3, 2, act=HS, norm=norm)
        blocks = []
        for kernel, expanded, c_out, se, act, stride in self.table:
            c_out, expanded = make_divisible(c_out * width), make_divisible(expanded * width)
            blocks.append(InvertedResidual(c, kernel, expanded, c_out, se=make_divisible(expanded / 4) if se else 0,
                                           act=act, stride=stride, gate="hard", norm=norm))
            c = c_out
        last, hidden = MOBILENETV3_HEAD[variant]
        blocks.append(ConvBNAct(c, make_divisible(last * width), 1, act=HS, norm=norm))
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
    """MobileNetV4-Conv: variant "conv-small" or "conv-medium" (the paper's tables); width
    multiplies every channel count but the pooled head's 1280 (not in the paper: for smaller students)."""

    variant: str = "conv-small"
    width: float = 1.0


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
        norm, width = self.config.norm, self.config.width
        (_, kernel, stride, c), *table = self.table
        c = make_divisible(c * width)
        self.stem = ConvBNAct(1, c, kernel, stride, norm=norm)
        blocks = []
        for kind, *spec in table:
            if kind == "conv":
                kernel, stride, c_out = spec
                c_out = make_divisible(c_out * width)
                blocks.append(ConvBNAct(c, c_out, kernel, stride, norm=norm))
            elif kind == "fused":
                kernel, stride, c_out, expand = spec
                c_out = make_divisible(c_out * width)
                blocks.append(FusedInvertedBottleneck(c, c_out, kernel, stride, expand, norm=norm))
            else:
                start, middle, stride, c_out, expand = spec
                c_out = make_divisible(c_out * width)
                blocks.append(UniversalInvertedBottleneck(c, c_out, start, middle, stride, expand, norm=norm))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self._build_head(c, 1280, nn.ReLU, norm=True)
