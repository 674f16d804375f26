"""The in-model log-mel front-end shared by every student: prenorm, conv-DFT power spectrum, mel, dB.

Built from fixed-kernel convolutions and a matmul (not ``torch.stft``) so that it exports to ONNX
with every exporter and stays exactly the published Wav2Small computation. The input normalisation
(*prenorm*) is per utterance (the published model) or running (causal, for streaming).
"""

from __future__ import annotations

import functools
import math

import librosa
import numpy as np
import torch
from torch import nn


PRENORMS = ("utterance", "running")
#: The prenorm's epsilon, added to the clip's power: the published card's value. It keeps silence
#: finite and makes outputs gain-invariant only while the clip's power is well above it (RMS above
#: about 10 log10(100 eps) = -50 dBFS); a smaller one (1e-14: -120 dBFS) is an opt-in per model.
PRENORM_EPS = 1e-7
#: Blocks per segment of the vectorised running average (a (256 x 256) matrix per segment).
SEGMENT_BLOCKS = 256


def prenorm(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = PRENORM_EPS) -> torch.Tensor:
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


def running_decay(hop: int, seconds: float, sampling_rate: int) -> float:
    """Per-block factor ``a`` of the running prenorm: exp(-hop / (seconds * sampling_rate))."""
    if not seconds > 0:
        raise ValueError(f"prenorm_seconds must be a positive number of seconds, got {seconds!r}")
    return math.exp(-hop / (seconds * sampling_rate))


def block_moments(x: torch.Tensor, hop: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(B, N) -> (B, ceil(N / hop), 3) in ``dtype``: [1, mean, mean of squares] of each block of
    ``hop`` samples; a trailing partial block uses the samples it has."""
    blocks = (x.shape[1] + hop - 1) // hop  # ceil; no negative floor division (ONNX Div truncates)
    padded = nn.functional.pad(x.to(dtype), (0, blocks * hop - x.shape[1])).view(x.shape[0], blocks, hop)
    count = torch.clamp(x.shape[1] - hop * torch.arange(blocks, device=x.device, dtype=dtype), max=hop)
    return torch.stack([torch.ones_like(padded[..., 0]), padded.sum(-1) / count, padded.pow(2).sum(-1) / count], dim=-1)


def exponential_average(values: torch.Tensor, a: float, state: torch.Tensor | None = None) -> torch.Tensor:
    """s_k = a * s_{k-1} + (1 - a) * v_k along axis 1 of ``values`` (B, K, F), from s_{-1} = ``state``
    (B, F) (default zeros); returns every s_k, (B, K, F), in the dtype of ``values``.

    The recursion is evaluated without a loop over k: within segments of at most ``SEGMENT_BLOCKS``
    a lower-triangular matrix of a^(k - j), between segments the same on the segment ends (all
    entries <= 1, so any length and any ``a`` are safe).
    """
    batch, length, features = values.shape
    if state is None:
        state = values.new_zeros(batch, features)
    size = SEGMENT_BLOCKS  # for a traced, symbolic length (the ONNX export computes the matrix in the graph)
    if isinstance(length, int):
        size = min(SEGMENT_BLOCKS, 1 << max(0, length - 1).bit_length())  # a power of two >= K
    within, powers = (torch.as_tensor(m, dtype=values.dtype, device=values.device) for m in _decay_matrix(a, size))
    segments = (length + size - 1) // size
    v = nn.functional.pad(values, (0, 0, 0, segments * size - length)).view(batch, segments, size, features)
    local = (1 - a) * torch.matmul(within, v)  # (B, S, size, F): each segment's average from zero
    if segments == 1:  # (a fixed stream chunk: the graph needs no more)
        return (local[:, 0] + powers[None, :, None] * state[:, None])[:, :length]
    s = torch.arange(segments, device=values.device, dtype=values.dtype)
    seg_lag = s[:, None] - s[None, :]
    a_seg = torch.full_like(seg_lag, a**size)
    between = torch.where(seg_lag >= 0, torch.pow(a_seg, seg_lag.clamp(min=0)), torch.zeros_like(seg_lag))
    ends = torch.matmul(between, local[:, :, -1]) + torch.pow(a_seg[0], s + 1)[:, None] * state[:, None]  # (B, S, F)
    starts = torch.cat([state[:, None], ends[:, :-1]], dim=1)  # s_{-1} of each segment
    full = local + powers[None, None, :, None] * starts[:, :, None]
    return full.reshape(batch, segments * size, features)[:, :length]


@functools.lru_cache(maxsize=32)
def _decay_matrix(a: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size x size lower-triangular a^(k - j), a^(k + 1) for k < size) of :func:`exponential_average`,
    float64. numpy, not tensors: a tensor cached while a graph is traced would be a tracing stand-in."""
    k = np.arange(size, dtype=np.float64)
    lag = k[:, None] - k[None, :]
    return np.where(lag >= 0, a ** np.maximum(lag, 0), 0.0), a ** (k + 1)


def running_prenorm(x: torch.Tensor, *, hop: int, a: float, state: torch.Tensor | None = None,
                    eps: float = PRENORM_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal prenorm: each block of ``hop`` samples is normalised with the running mean and power
    of the input up to and including that block.

    Per block k: v_k = [1, mean, mean of squares], s_k = a s_{k-1} + (1 - a) v_k (``state`` = s_{-1},
    (B, 3), zeros at the start of a stream), mean_k = s_k[1] / s_k[0], var_k = max(s_k[2] / s_k[0] -
    mean_k^2, 0), y = (x - mean_k) / sqrt(var_k + eps). s_k[0] = 1 - a^(k+1) corrects the start:
    early on the statistics are those of the audio so far. The statistics are computed in the dtype
    of ``state`` (float64 when none is given).

    Returns (y like ``x``, the state after the last complete block). A trailing partial block is
    normalised with the samples it has, and the returned state leaves it out.
    """
    dtype = state.dtype if state is not None else torch.float64
    if state is None:
        state = x.new_zeros(x.shape[0], 3, dtype=dtype)
    if x.shape[1] == 0:
        return x, state
    moments = block_moments(x, hop, dtype)  # (B, K, 3)
    s = exponential_average(moments, a, state)
    mean = s[..., 1] / s[..., 0]
    var = torch.clamp(s[..., 2] / s[..., 0] - mean * mean, min=0.0)
    blocks = moments.shape[1]
    padded = nn.functional.pad(x.to(dtype), (0, blocks * hop - x.shape[1])).view(x.shape[0], blocks, hop)
    y = ((padded - mean[..., None]) / torch.sqrt(var[..., None] + eps)).reshape(x.shape[0], -1)[:, : x.shape[1]]
    complete = x.shape[1] // hop
    return y.to(x.dtype), (s[:, complete - 1] if complete else state)


def dft_basis(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of the DFT basis times a periodic Hann window, each (n_fft // 2 + 1,
    n_fft) float64: the fixed kernels of :class:`SpectrogramExtractor` (the ONNX export recognises
    them by these values).

    >>> real, imag = dft_basis(64)
    >>> real.shape, float(abs(imag[0]).max())  # bin 0 has no imaginary part
    ((33, 64), 0.0)
    """
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)  # periodic
    phase = 2 * np.pi * np.outer(np.arange(n_fft // 2 + 1), np.arange(n_fft)) / n_fft  # (bins, n_fft)
    return np.cos(phase) * window, -np.sin(phase) * window


class SpectrogramExtractor(nn.Module):
    """|DFT|^2 of frames cut by a strided convolution: (B, N) -> (B, n_fft // 2 + 1, frames).

    The kernels hold the real and imaginary DFT basis times a periodic Hann window
    (:func:`dft_basis`); they are frozen. No centring or padding: frames = (N - n_fft) // hop + 1.
    """

    def __init__(self, n_fft: int = 64, hop: int = 32):
        super().__init__()
        n_bins = n_fft // 2 + 1
        real, imag = dft_basis(n_fft)
        self.conv_real = nn.Conv1d(1, n_bins, n_fft, stride=hop, padding=0, bias=False)
        self.conv_imag = nn.Conv1d(1, n_bins, n_fft, stride=hop, padding=0, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(real)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(imag)[:, None, :])
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
    """Waveform (B, N) at 16 kHz -> log-mel image (B, 1, frames, n_mels), prenorm included.

    ``prenorm``: ``"utterance"`` (the published model: mean and power of the whole input) or
    ``"running"`` (causal: running mean and power with time constant ``prenorm_seconds``, updated
    every ``hop`` samples; see :func:`running_prenorm`), the one a stream can compute.
    ``prenorm_eps``: added to the power before the division (see ``PRENORM_EPS``).
    """

    def __init__(self, sampling_rate: int = 16000, n_fft: int = 64, hop: int = 32, n_mels: int = 26, *,
                 prenorm: str = "utterance", prenorm_seconds: float = 2.0, prenorm_eps: float = PRENORM_EPS):
        super().__init__()
        if prenorm not in PRENORMS:
            raise ValueError(f"prenorm must be one of {PRENORMS}, got {prenorm!r}")
        self.spectrogram_extractor = SpectrogramExtractor(n_fft, hop)
        self.logmel_extractor = LogmelExtractor(sampling_rate, n_fft, n_mels)
        self.prenorm, self.hop, self.prenorm_eps = prenorm, hop, prenorm_eps
        self.prenorm_decay = running_decay(hop, prenorm_seconds, sampling_rate)

    def normalise(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The prenorm of this front-end. ``mask`` restricts the per-utterance statistics; the running
        prenorm is causal, so padding after the audio cannot change it and ``mask`` is not needed."""
        if self.prenorm == "utterance":
            return prenorm(x, mask, eps=self.prenorm_eps)
        return running_prenorm(x, hop=self.hop, a=self.prenorm_decay, eps=self.prenorm_eps)[0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.logmel_extractor(self.spectrogram_extractor(self.normalise(x, mask)))
