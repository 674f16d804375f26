"""EfficientFormer (Li et al. 2022, "EfficientFormer: Vision Transformers at MobileNet Speed") as a
student: convolutional 4D stages whose token mixer is pooling, then multi-head self-attention (3D
blocks) at the lowest resolution, on the log-mel image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .base import LogMelImageConfig, LogMelImageStudent
from .blocks import ConvBNAct
from .transformer import TransformerBlock, init_transformer_weights


class EfficientFormerShape(NamedTuple):
    widths: tuple  # channels of the four stages
    depths: tuple  # blocks per stage
    attention_blocks: int  # last blocks of the last stage that are 3D (attention) blocks
    heads: int
    key_dim: int  # per head, queries and keys
    value_ratio: int  # value width per head = value_ratio * key_dim
    mlp_ratio: int


EFFICIENTFORMER_VARIANTS = {
    # the paper's L1 (table 7 of the paper; 12.3M parameters, 1.3 GMACs at 224 x 224)
    "l1": EfficientFormerShape((48, 96, 224, 448), (3, 2, 6, 4), 1, 8, 32, 4, 4),
    # audio-sized: the same design a tenth as wide and a third as deep
    "tiny": EfficientFormerShape((16, 32, 64, 128), (1, 1, 2, 2), 1, 4, 16, 2, 4),
}


@dataclass
class EfficientFormerConfig(LogMelImageConfig):
    """EfficientFormer: variant "l1" (the paper's widths) or "tiny" (sized for audio); the
    front-end's settings (see :class:`~wav2small.models.base.LogMelImageConfig`); layer_scale:
    initial value of the per-channel residual scales (1e-5 in the paper)."""

    variant: str = "l1"
    layer_scale: float = 1e-5


class PoolMixer(nn.Module):
    """Token mixer of the 4D blocks: 3x3 average (padding not counted) minus the input."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class MetaBlock4D(nn.Module):
    """x + s1 * (pool(x) - x), then + s2 * (1x1 conv -> BN -> GELU -> 1x1 conv -> BN) on (B, C, T, M)."""

    def __init__(self, dim: int, mlp_ratio: int, layer_scale: float):
        super().__init__()
        self.mixer = PoolMixer()
        self.mlp = nn.Sequential(ConvBNAct(dim, dim * mlp_ratio, 1, act=nn.GELU, bias=True),
                                 ConvBNAct(dim * mlp_ratio, dim, 1, act=None, bias=True))
        self.scale1 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.scale2 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.scale1 * self.mixer(x)
        return x + self.scale2 * self.mlp(x)


class EfficientFormer(LogMelImageStudent):
    """EfficientFormer on the log-mel image (one input channel): a stem of two 3x3 stride-2 convs,
    four stages of pool-mixer 4D blocks joined by 3x3 stride-2 conv embeddings (32x down in all),
    the last ``attention_blocks`` blocks of the last stage as transformer blocks over the T/32 x
    M/32 tokens, LayerNorm, mean over tokens, a Linear to 3 outputs.

    Two departures from the ImageNet model, both because audio has no fixed size: the attention
    has no learned position biases (the paper's biases index a fixed 7 x 7 grid; the 4D stages'
    zero padding already tells tokens where they are), and there is one regression head instead of a
    classification head plus a distillation head. Trainable parameters: l1 11,392,451 (with a
    3-channel stem, the position biases and the two 1000-class heads: 12,289,928, the paper's
    "12.3M"); tiny 493,411 (no published counterpart).

    >>> EfficientFormer(variant="tiny").eval()(torch.zeros(2, 16000)).shape
    torch.Size([2, 3])
    """

    config_class = EfficientFormerConfig
    architecture = "efficientformer"
    tables = EFFICIENTFORMER_VARIANTS

    def __init__(self, config: EfficientFormerConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        cfg, shape = self.config, self.table
        w = shape.widths
        self.stem = nn.Sequential(ConvBNAct(1, w[0] // 2, 3, 2, bias=True), ConvBNAct(w[0] // 2, w[0], 3, 2, bias=True))
        stages = []
        for i, (width, depth) in enumerate(zip(w, shape.depths)):
            last = i == len(w) - 1
            blocks = [] if i == 0 else [ConvBNAct(w[i - 1], width, 3, 2, act=None, bias=True)]  # embedding, 2x down
            blocks += [MetaBlock4D(width, shape.mlp_ratio, cfg.layer_scale)
                       for _ in range(depth - (shape.attention_blocks if last else 0))]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.attention = nn.Sequential(*[
            TransformerBlock(w[-1], shape.heads, shape.key_dim, shape.value_ratio * shape.key_dim,
                             mlp_ratio=shape.mlp_ratio, layer_scale=cfg.layer_scale)
            for _ in range(shape.attention_blocks)])
        self.norm = nn.LayerNorm(w[-1])
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(w[-1], 3))
        self._init_weights()

    def _init_weights(self):
        init_transformer_weights(self)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.frontend(x, mask)  # (B, 1, T, M) log-mel in dB
        x = self.stages(self.stem(x))  # (B, C, T / 32, M / 32)
        tokens = self.attention(x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2))  # (B, T/32 * M/32, C)
        return self.head(self.norm(tokens).mean(dim=1))  # (B, 3)
