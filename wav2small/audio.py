"""The one audio loader of the package, and its error type.

Every clip enters wav2small through :func:`load_audio` (whole files), :func:`read_segment`
(a stretch of a long file) or :func:`check_waveform` (arrays already in memory).
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from .contract import MIN_SAMPLES, SAMPLING_RATE

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au")


class AudioError(ValueError):
    """A file or waveform that cannot be used; the message names the source and the problem."""

    def __init__(self, source, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


def _riff_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, say whether its data chunk is cut short (libsndfile hides this)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                available = size - f.tell()
                if clen != 0xFFFFFFFF and available < clen:
                    return f"truncated file: header announces {clen} bytes of audio, only {available} present"
                return None
            f.seek(clen + (clen & 1), os.SEEK_CUR)


def _open(path) -> sf.SoundFile:
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    problem = _riff_truncation(path)
    if problem:
        raise AudioError(path, problem)
    try:
        return sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as error:
        reason = str(error).split(":", 1)[-1].strip() or "unreadable"
        raise AudioError(path, f"not a readable audio file ({reason})") from None


def audio_duration(path) -> float:
    """Duration of an audio file in seconds, from its header."""
    with _open(path) as f:
        if f.frames <= 0:
            raise AudioError(path, "zero-length audio (no samples)")
        return f.frames / f.samplerate


def _to_mono_16k(data: np.ndarray, source_rate: int, sampling_rate: int) -> np.ndarray:
    if data.ndim == 2:
        data = data.mean(axis=1)
    data = data.astype(np.float32, copy=False)
    if source_rate != sampling_rate:
        import librosa

        data = librosa.resample(data, orig_sr=source_rate, target_sr=sampling_rate, res_type="soxr_hq")
    return np.ascontiguousarray(data, dtype=np.float32)


def read_segment(path, start: float = 0.0, end: float | None = None, *, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Read ``[start, end)`` seconds of a file as float32 mono at ``sampling_rate`` Hz.

    Only that stretch is decoded, so long files can be processed window by window in bounded
    memory. Integer PCM is scaled to [-1, 1]; several channels are averaged.

    >>> read_segment("speech.wav", 1.0, 3.0).shape  # doctest: +SKIP
    (32000,)
    """
    with _open(path) as f:
        if f.frames <= 0:
            raise AudioError(path, "zero-length audio (no samples)")
        first = int(round(start * f.samplerate))
        last = f.frames if end is None else min(f.frames, int(round(end * f.samplerate)))
        if first < 0 or first >= f.frames or last <= first:
            raise AudioError(path, f"segment {start:.3f}-{end} s lies outside the file ({f.frames / f.samplerate:.3f} s)")
        try:
            f.seek(first)
            data = f.read(last - first, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise AudioError(path, f"corrupt audio data ({error})") from None
        if len(data) < last - first and end is None:
            raise AudioError(path, f"truncated file: header announces {f.frames} samples, only {first + len(data)} decoded")
        source_rate = f.samplerate
    return check_waveform(_to_mono_16k(data, source_rate, sampling_rate), source=path)


def load_audio(path, *, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Load a whole audio file (WAV, FLAC, OGG, MP3, ...) as a float32 mono array.

    Args:
        path: the file.
        sampling_rate: output rate in Hz; other rates are resampled with soxr (high quality).

    Returns:
        float32 array of shape (samples,), integer PCM scaled to [-1, 1], channels averaged.

    Raises:
        AudioError: missing, empty, truncated, corrupt or non-audio file; NaN or inf samples;
            fewer samples than one analysis frame (64 at 16 kHz).

    >>> x = load_audio("speech.flac")  # doctest: +SKIP
    """
    return read_segment(path, 0.0, None, sampling_rate=sampling_rate)


def check_waveform(x, *, source="waveform", sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Validate a mono waveform and return it as a contiguous float32 array.

    Raises AudioError for anything but a 1-D array of at least one analysis frame of finite values.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise AudioError(source, f"expected a mono waveform of shape (samples,), got shape {x.shape}; mix channels down first")
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise AudioError(source, f"expected numeric samples, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    min_samples = math.ceil(MIN_SAMPLES * sampling_rate / SAMPLING_RATE)
    if x.size == 0:
        raise AudioError(source, "zero-length audio (no samples)")
    if x.size < min_samples:
        raise AudioError(source, f"too short: {x.size} samples, fewer than one analysis frame ({min_samples} samples at {sampling_rate} Hz)")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(source, f"{bad} NaN or infinite samples")
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x: np.ndarray, sampling_rate: int, *, source="waveform", target_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Validate a waveform given at ``sampling_rate`` Hz and bring it to ``target_rate`` Hz."""
    if not isinstance(sampling_rate, (int, np.integer)) or isinstance(sampling_rate, bool) or sampling_rate <= 0:
        raise AudioError(source, f"invalid sampling rate {sampling_rate!r}: give a positive integer in Hz")
    if sampling_rate < 4000 or sampling_rate > 384000:
        raise AudioError(source, f"implausible sampling rate {sampling_rate} Hz (expected 4000-384000 Hz)")
    x = check_waveform(x, source=source, sampling_rate=sampling_rate)
    return check_waveform(_to_mono_16k(x, sampling_rate, target_rate), source=source, sampling_rate=target_rate)


def find_audio_files(root) -> list[Path]:
    """All audio files below ``root`` (recursive), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise AudioError(root, "not a directory")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
