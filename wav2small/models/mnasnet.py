"""MnasNet-A1 and MnasNet-B1 (Tan et al. 2019, "MnasNet: Platform-Aware Neural Architecture Search
for Mobile") as students: the architectures the latency-aware search found, on the log-mel image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch  # noqa: F401  (the docstring example uses it)
from torch import nn

from .blocks import ConvBNAct, InvertedResidual, MobileNetConfig, MobileNetStudent, inverted_residual_stages, make_divisible

# Stage tables after the stem (conv 3x3/2 to 32) and a separable conv (depthwise 3x3, then a linear
# 1x1 to 16): (expansion, channels, repeats, first stride, kernel, SE ratio). A1: the paper's
# figure 7, squeeze-excitation to a quarter of the block's input channels, sigmoid gate. B1: the
# variant without SE (torchvision's ``mnasnet1_0``). Both end in a 1x1 conv to 1280; ReLU throughout.
MNASNET_STAGES = {
    "a1": [
        (6, 24, 2, 2, 3, 0),
        (3, 40, 3, 2, 5, 0.25),
        (6, 80, 4, 2, 3, 0),
        (6, 112, 2, 1, 3, 0.25),
        (6, 160, 3, 2, 5, 0.25),
        (6, 320, 1, 1, 3, 0),
    ],
    "b1": [
        (3, 24, 3, 2, 3, 0),
        (3, 40, 3, 2, 5, 0),
        (6, 80, 3, 2, 5, 0),
        (6, 96, 2, 1, 3, 0),
        (6, 192, 4, 2, 5, 0),
        (6, 320, 1, 1, 3, 0),
    ],
}


@dataclass
class MnasNetConfig(MobileNetConfig):
    """MnasNet: variant "a1" (with squeeze-excitation) or "b1" (without); width (the paper's depth
    multiplier) scales every channel count but the last conv's 1280, rounded to multiples of 8;
    dropout 0.2 as in the paper's training."""

    variant: str = "a1"
    width: float = 1.0
    dropout: float = 0.2


class MnasNet(MobileNetStudent):
    """MnasNet on the log-mel image (one input channel), the paper's strides (32x down), global
    mean, dropout and a Linear to 3 outputs.

    Trainable parameters with width 1: A1 2,609,305, B1 3,105,579; with three input channels and
    1000 classes they would be 3,887,038 (the paper's "3.9M") and 4,383,312 (the paper's "4.4M",
    torchvision's ``mnasnet1_0`` exactly); B1 at width 0.5: 941,067 (torchvision's ``mnasnet0_5``,
    2,218,512, the same way).

    >>> MnasNet(variant="b1", width=0.5).eval()(torch.zeros(2, 16000)).shape
    torch.Size([2, 3])
    """

    config_class = MnasNetConfig
    architecture = "mnasnet"
    tables = MNASNET_STAGES

    def __init__(self, config: MnasNetConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        width, norm = self.config.width, self.config.norm
        stem, separable = make_divisible(32 * width), make_divisible(16 * width)
        self.stem = nn.Sequential(ConvBNAct(1, stem, 3, 2, norm=norm),
                                  InvertedResidual(stem, 3, stem, separable, act=nn.ReLU, norm=norm))
        blocks, c = inverted_residual_stages(separable, self.table, width=width, act=nn.ReLU,
                                             norm=norm, gate="sigmoid")
        self.blocks = nn.Sequential(*blocks, ConvBNAct(c, 1280, 1, norm=norm))
        self._build_head(1280)
