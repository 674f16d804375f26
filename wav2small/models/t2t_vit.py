"""T2T-ViT (Yuan et al. 2021, "Tokens-to-Token ViT") as a student: the log-mel image becomes tokens
by three overlapping soft splits, each followed by a linear-cost attention layer that mixes the
tokens before the next split re-structures them, then a small ViT over the 16x-downsampled tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .base import LogMelImageConfig, LogMelImageStudent
from .transformer import Mlp, TransformerBlock, init_transformer_weights, sinusoid_table

#: (kernel, stride, padding) of the three soft splits: 4x, then 2x and 2x down (16x in all).
SOFT_SPLITS = ((7, 4, 2), (3, 2, 1), (3, 2, 1))


class T2TShape(NamedTuple):
    dim: int  # backbone token width
    depth: int  # backbone blocks
    heads: int
    mlp_ratio: float
    token_dim: int  # token width inside the tokens-to-token module


T2T_VARIANTS = {
    "7": T2TShape(256, 7, 4, 2.0, 64),  # the paper's T2T-ViT-7 (4.3M parameters at 224 x 224)
    "tiny": T2TShape(64, 3, 2, 2.0, 32),  # audio-sized
}


@dataclass
class T2TViTConfig(LogMelImageConfig):
    """T2T-ViT: variant "7" (the paper's T2T-ViT-7) or "tiny" (sized for audio); the front-end's
    settings (see :class:`~wav2small.models.base.LogMelImageConfig`; 64 mels give 4 frequency rows of
    backbone tokens)."""

    variant: str = "7"


class SoftSplit(nn.Module):
    """Overlapping k x k patches of (B, C, H, W) as a grid of tokens (B, H', W', C k k), each
    token's values ordered as ``torch.nn.functional.unfold`` orders them.

    Computed as a depthwise convolution with fixed one-hot kernels (a buffer, not trained): the
    same numbers as ``unfold``, but exported as one Conv whose shapes ONNX can infer (``unfold``
    exports as index arithmetic that defeats shape inference and so the footprint).
    """

    def __init__(self, channels: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.channels, self.stride, self.padding = channels, stride, padding
        self.register_buffer("kernel", torch.eye(kernel * kernel).reshape(kernel * kernel, 1, kernel, kernel).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = nn.functional.conv2d(x, self.kernel, stride=self.stride, padding=self.padding, groups=self.channels)
        return patches.permute(0, 2, 3, 1)  # (B, H', W', C k k)


class TokenPerformer(nn.Module):
    """T2T's token layer: Performer attention (Choromanski et al. 2021; positive random features,
    cost linear in the number of tokens) from ``dim`` to ``token_dim`` with the values as the
    skip path, then + MLP. Tokens in a grid: (B, H, W, dim) -> (B, H, W, token_dim).

    The ``features`` matrix (token_dim / 2 orthogonal random directions) is drawn at
    construction and then fixed: a buffer, saved with the weights, never trained.
    """

    def __init__(self, dim: int, token_dim: int, *, kernel_ratio: float = 0.5, eps: float = 1e-8):
        super().__init__()
        self.token_dim, self.eps = token_dim, eps
        self.norm1 = nn.LayerNorm(dim)
        self.kqv = nn.Linear(dim, 3 * token_dim)
        self.proj = nn.Linear(token_dim, token_dim)
        self.norm2 = nn.LayerNorm(token_dim)
        self.mlp = Mlp(token_dim, token_dim)
        m = int(token_dim * kernel_ratio)
        self.register_buffer("features", nn.init.orthogonal_(torch.empty(m, token_dim)) * math.sqrt(m))

    def random_features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x) = exp(w x - |x|^2 / 2) / sqrt(m), so that phi(q) . phi(k) estimates exp(q . k): (..., m)."""
        projected = torch.matmul(x, self.features.t())
        return torch.exp(projected - 0.5 * (x * x).sum(dim=-1, keepdim=True)) / math.sqrt(self.features.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        k, q, v = self.kqv(self.norm1(x)).split(self.token_dim, dim=-1)  # (B, H, W, token_dim) each
        kp, qp = self.random_features(k), self.random_features(q)  # (B, H, W, m)
        m = kp.shape[-1]
        # sums over all tokens; reshapes with -1 keep the graph's shapes inferable
        key_sum = kp.reshape(b, -1, m).sum(dim=1)[:, None, :, None]  # (B, 1, m, 1)
        context = torch.matmul(v.reshape(b, -1, self.token_dim).transpose(1, 2), kp.reshape(b, -1, m))  # (B, token_dim, m)
        # The denominator is >= 0 and is exactly 0 where every random feature of q underflows (large |q|).
        # A floor, not '+ eps': the ONNX exporter folds '+ 1e-8' away, and 0 / 0 is then NaN in onnxruntime.
        y = torch.matmul(qp, context.transpose(1, 2)[:, None]) / torch.matmul(qp, key_sum).clamp_min(self.eps)  # (B, H, W, token_dim)
        y = v + self.proj(y)
        return y + self.mlp(self.norm2(y))


class T2TViT(LogMelImageStudent):
    """T2T-ViT on the log-mel image (one input channel).

    Tokens-to-token: soft split (7, stride 4) -> Performer token layer -> tokens back into their
    (T/4, M/4) grid -> soft split (3, 2) -> Performer -> soft split (3, 2) -> Linear to ``dim``:
    (T/16) x (M/16) tokens. Then a class token, ViT blocks, LayerNorm, and a Linear to 3 outputs
    from the class token.

    Position code: audio has no fixed length, so the fixed sine/cosine code (as in the paper, not
    trained) numbers only the frequency rows (M/16 of them) and is shared by every time step; the
    soft splits' overlaps carry the local order in time. Trainable parameters: "7" 3,980,453 (with
    three input channels and a 1000-class head: 4,255,694, the paper's "4.3M"); "tiny" 158,405 (no
    published counterpart).

    >>> T2TViT(variant="tiny").eval()(torch.zeros(2, 16000)).shape
    torch.Size([2, 3])
    """

    config_class = T2TViTConfig
    architecture = "t2t-vit"
    tables = T2T_VARIANTS

    @property
    def min_samples(self) -> int:
        """Three frames: the first soft split (7 wide, padding 2) needs them for one token."""
        return self.config.n_fft + 2 * self.config.hop

    def __init__(self, config: T2TViTConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        cfg, shape = self.config, self.table
        (k0, _, _), (k1, _, _), (k2, _, _) = SOFT_SPLITS
        self.splits = nn.ModuleList([SoftSplit(c, *split) for c, split in zip((1, shape.token_dim, shape.token_dim), SOFT_SPLITS)])
        self.token1 = TokenPerformer(k0 * k0, shape.token_dim)
        self.token2 = TokenPerformer(shape.token_dim * k1 * k1, shape.token_dim)
        self.project = nn.Linear(shape.token_dim * k2 * k2, shape.dim)
        rows = cfg.n_mels
        for kernel, stride, padding in SOFT_SPLITS:
            rows = (rows + 2 * padding - kernel) // stride + 1
        self.register_buffer("position", sinusoid_table(rows, shape.dim))  # (M/16, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, shape.dim))
        head_dim = shape.dim // shape.heads
        self.blocks = nn.Sequential(*[TransformerBlock(shape.dim, shape.heads, head_dim, head_dim, mlp_ratio=shape.mlp_ratio,
                                                       qkv_bias=False) for _ in range(shape.depth)])
        self.norm = nn.LayerNorm(shape.dim)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(shape.dim, 3))
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def tokens_to_token(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, M) log-mel -> (B, T/16, M/16, dim) tokens."""
        for split, layer in zip(self.splits, (self.token1, self.token2, self.project)):
            tokens = layer(split(x))  # (B, H', W', C'): a grid of tokens
            x = tokens.permute(0, 3, 1, 2)  # (B, C', H', W') for the next split
        return tokens

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.frontend(x, mask)  # (B, 1, T, M) log-mel in dB
        tokens = self.tokens_to_token(x) + self.position  # (B, T/16, M/16, dim), code per frequency row
        tokens = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])  # (B, N, dim)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.head(self.norm(self.blocks(tokens))[:, 0])  # (B, 3) from the class token
