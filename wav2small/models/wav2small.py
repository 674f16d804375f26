"""Wav2Small exactly as published (card "Wav2Small2.0"): log-mel front-end, VGG7, attention
pooling over time, Gram-matrix second-order features and a 3-output head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..frontend import PRENORM_EPS, LogMelFrontEnd
from .base import Student
from .norms import check_norm, norm_act


@dataclass
class Wav2SmallConfig:
    """Settings of Wav2Small; the defaults are the released card model (10,806 trainable values).

    channels: conv channels in every block. n_mels: mel bands. n_fft, hop: frame and hop in
    samples at ``sampling_rate`` Hz (64 / 32 = 4 ms / 2 ms at 16 kHz). depth: conv blocks
    (7 published). pool_after: the block after which the 3x3 stride-2 max-pool halves time and
    mel (3 published); the blocks before it run at full resolution and cost four times as much
    each, so an earlier pool is the cheapest way to a smaller model. norm: "batch" (published),
    "evonorm-b0" or "evonorm-s0" (see :mod:`wav2small.models.norms`: EvoNorms are not folded into
    the convolutions at export and do not stream). prenorm: input normalisation, ``"utterance"``
    (the published model: mean and power of the whole input) or ``"running"`` (causal, what a
    stream can compute: running mean and power updated every hop with time constant
    ``prenorm_seconds``; see :func:`wav2small.frontend.running_prenorm`).
    prenorm_eps: added to the input's power before the division; the card's 1e-7 keeps outputs
    gain-invariant for inputs above about -50 dBFS RMS, 1e-14 (an opt-in: outputs above -50 dBFS
    move by less than 1e-5) down to about -120 dBFS.
    """

    channels: int = 13
    n_mels: int = 26
    n_fft: int = 64
    hop: int = 32
    depth: int = 7
    pool_after: int = 3
    norm: str = "batch"
    sampling_rate: int = 16000
    prenorm: str = "utterance"
    prenorm_seconds: float = 2.0
    prenorm_eps: float = PRENORM_EPS

    def __post_init__(self):
        check_norm(self.norm)


class ConvBlock(nn.Module):
    """3x3 conv (no bias) -> BatchNorm -> ReLU (or an EvoNorm in place of both)."""

    def __init__(self, c_in: int, c_out: int, norm: str = "batch"):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm, self.act = norm_act(norm, c_out, nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class VGG7(LogMelFrontEnd):
    """Front-end, conv blocks ``l1`` .. ``l<depth>`` (seven published, max-pool after the third)
    and attention pooling over time. It inherits the front-end rather than holding one so that the
    published checkpoint's key names (``vgg7.spectrogram_extractor...``) load unchanged.

    Returns (B, C, M') pooled features, M' = ceil(n_mels / 2).

    It inherits the front-end (rather than holding one) because the published checkpoint names the
    front-end's weights ``vgg7.spectrogram_extractor.*`` and ``vgg7.logmel_extractor.*``: with these
    attribute names its state dict loads strictly.
    """

    def __init__(self, config: Wav2SmallConfig):
        super().__init__(config.sampling_rate, config.n_fft, config.hop, config.n_mels, prenorm=config.prenorm,
                         prenorm_seconds=config.prenorm_seconds, prenorm_eps=config.prenorm_eps)
        if not 1 <= config.pool_after <= config.depth:  # after check_config: both are ints
            raise ValueError(f"pool_after must be between 1 and depth ({config.depth}), got {config.pool_after}")
        c = config.channels
        self.depth, self.pool_after = config.depth, config.pool_after
        for i in range(1, config.depth + 1):
            setattr(self, f"l{i}", ConvBlock(1 if i == 1 else c, c, config.norm))
        self.maxpool_A = nn.MaxPool2d(3, stride=2, padding=1)
        self.lin = nn.Conv2d(c, c, 1)
        self.sof = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = super().forward(x, mask)  # (B, 1, T, M) log-mel in dB
        for i in range(1, self.depth + 1):
            x = getattr(self, f"l{i}")(x)  # (B, C, T, M) before the pool
            if i == self.pool_after:
                x = self.maxpool_A(x)  # (B, C, T/2, M/2)
        # attention over time, with time as the last (contiguous) axis: reductions along it are cascaded
        # sums, accurate over hours of frames (along a strided axis they accumulate one frame at a time,
        # which drifts by ~1e-4 in float32 over 10 minutes of audio)
        logits, values = self.sof(x).transpose(2, 3), self.lin(x).transpose(2, 3)  # (B, C, M', T)
        return (values * torch.softmax(logits, dim=3)).sum(dim=3)  # (B, C, M')


class Wav2Small(Student):
    """Wav2Small speech-emotion regressor.

    Input: (B, N) float waveform, 16 kHz mono, any gain (normalised inside), N >= n_fft.
    Output: (B, 3) = [arousal, dominance, valence], nominally 0..1, no activation, unclipped.

    >>> model = Wav2Small().eval()
    >>> model(torch.zeros(2, 16000)).shape
    torch.Size([2, 3])
    """

    config_class = Wav2SmallConfig
    architecture = "wav2small"

    def __init__(self, config: Wav2SmallConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config.channels
        self.vgg7 = VGG7(self.config)
        pooled_mels = (self.config.n_mels + 1) // 2
        self.adv = nn.Linear(c * (pooled_mels + c), 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.vgg7(x, mask)  # (B, C, M')
        x = torch.cat([x, torch.bmm(x, x.transpose(1, 2))], dim=2)  # (B, C, M' + C): Gram across channels
        return self.adv(x.flatten(1))  # (B, 3)
