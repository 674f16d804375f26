"""The in-model log-mel front-end shared by every student: prenorm, conv-DFT power spectrum, mel, dB.

Built from fixed-kernel convolutions and a matmul (not ``torch.stft``) so that it exports to ONNX
with every exporter and stays exactly the published Wav2Small computation (REFERENCE section 1).
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn


def prenorm(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-7) -> torch.Tensor:
    """Per-utterance zero mean, unit power: (x - mean) / sqrt(mean((x - mean)^2) + eps).

    ``mask`` (B, N) of 0/1 restricts the statistics to the valid samples. Returns a new tensor;
    the caller's ``x`` is left untouched.
    """
    if mask is None:
        mean = x.mean(dim=1, keepdim=True)
        centred = x - mean
        power = centred.pow(2).mean(dim=1, keepdim=True)
    else:
        mask = mask.to(x.dtype)
        count = mask.sum(dim=1, keepdim=True).clamp_min(1.0)
        mean = (x * mask).sum(dim=1, keepdim=True) / count
        centred = x - mean
        power = (centred.pow(2) * mask).sum(dim=1, keepdim=True) / count
    return centred / torch.sqrt(power + eps)


class SpectrogramExtractor(nn.Module):
    """|DFT|^2 of frames cut by a strided convolution: (B, N) -> (B, n_fft // 2 + 1, frames).

    The kernels hold the real and imaginary DFT basis times a periodic Hann window; they are
    frozen. No centring or padding: frames = (N - n_fft) // hop + 1.
    """

    def __init__(self, n_fft: int = 64, hop: int = 32):
        super().__init__()
        n_bins = n_fft // 2 + 1
        window = librosa.filters.get_window("hann", n_fft, fftbins=True)  # periodic
        phase = 2 * np.pi * np.outer(np.arange(n_bins), np.arange(n_fft)) / n_fft  # (bins, n_fft)
        self.conv_real = nn.Conv1d(1, n_bins, n_fft, stride=hop, padding=0, bias=False)
        self.conv_imag = nn.Conv1d(1, n_bins, n_fft, stride=hop, padding=0, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(np.cos(phase) * window)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(-np.sin(phase) * window)[:, None, :])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None, :]  # (B, 1, N)
        return self.conv_real(x).pow(2) + self.conv_imag(x).pow(2)  # (B, bins, frames)


class LogmelExtractor(nn.Module):
    """Power spectrum -> 10 log10(max(mel, amin)) as a one-channel image (B, 1, frames, n_mels).

    ``melW`` is librosa's Slaney mel filterbank (transposed); with n_fft 64 its first filter is
    empty, so that channel is a constant -100 dB. It is kept: it is part of the published model.
    """

    def __init__(self, sampling_rate: int = 16000, n_fft: int = 64, n_mels: int = 26, amin: float = 1e-10):
        super().__init__()
        mel = librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sampling_rate / 2)
        self.register_buffer("melW", torch.from_numpy(mel.T.astype(np.float32)))  # (bins, n_mels)
        self.register_buffer("amin", torch.tensor(amin, dtype=torch.float32))

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(power.transpose(1, 2), self.melW)  # (B, frames, n_mels)
        return (10.0 * torch.log10(torch.maximum(mel, self.amin)))[:, None]  # (B, 1, frames, n_mels)


class LogMelFrontEnd(nn.Module):
    """Waveform (B, N) at 16 kHz -> log-mel image (B, 1, frames, n_mels), prenorm included."""

    def __init__(self, sampling_rate: int = 16000, n_fft: int = 64, hop: int = 32, n_mels: int = 26):
        super().__init__()
        self.spectrogram_extractor = SpectrogramExtractor(n_fft, hop)
        self.logmel_extractor = LogmelExtractor(sampling_rate, n_fft, n_mels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.logmel_extractor(self.spectrogram_extractor(prenorm(x, mask)))
