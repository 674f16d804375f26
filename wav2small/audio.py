"""The one audio loader of the package, and its error type.

Every clip enters wav2small through :func:`load_audio` (whole files), :func:`read_segment`
(a stretch of a long file) or :func:`check_waveform` (arrays already in memory).
"""

from __future__ import annotations

import errno
import functools
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from .containers import container_problem
from .contract import MIN_SAMPLES, SAMPLING_RATE

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au")
#: Plausible sampling rates in Hz, of files and of arrays alike; anything else is refused.
MIN_RATE, MAX_RATE = 4000, 384000
#: The most audio one read may hold, in seconds (4 h: 230 M samples, 0.9 GB of float32 at 16 kHz):
#: longer files are read in windows.
MAX_SECONDS = 4 * 3600.0
#: The largest sample magnitude accepted (float audio is nominally within +-1). Squares of larger
#: values overflow float32 in the models' normalisation, which then returns the silence output.
MAX_AMPLITUDE = 1e12


class AudioError(ValueError):
    """A file or waveform that cannot be used; the message names the source and the problem."""

    def __init__(self, source, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


def os_problem(error: OSError) -> str:
    """A few words for an OS error met while reading a file (the file's name goes beside them)."""
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not an audio file"
    if error.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    return f"cannot read the file ({error.strerror or error})"


def check_rate(rate, source="waveform", *, where: str = "") -> int:
    """``rate`` as an int if it is a plausible sampling rate in Hz (``MIN_RATE``..``MAX_RATE``), else
    AudioError; ``where`` (e.g. " in the file header") goes into the message."""
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate <= 0:
        raise AudioError(source, f"invalid sampling rate {rate!r}{where}: give a positive integer in Hz")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(source, f"implausible sampling rate {rate} Hz{where} (expected {MIN_RATE}-{MAX_RATE} Hz)")
    return int(rate)


def check_span(source, start, end) -> tuple[float, float | None]:
    """(start, end) in seconds as floats if they describe a stretch of audio (start a finite number
    >= 0; end None for "to the end of the file", else finite and after start), else AudioError."""
    try:
        start = float(start)
        end = None if end is None else float(end)
    except (TypeError, ValueError):
        raise AudioError(source, f"segment {start!r}-{end!r}: start and end must be numbers of seconds") from None
    if not math.isfinite(start) or start < 0 or (end is not None and (not math.isfinite(end) or end <= start)):
        raise AudioError(source, f"segment {start}-{end} s: need 0 <= start < end, both finite seconds")
    return start, end


@functools.lru_cache(maxsize=4096)
def _integrity(path: str, identity: tuple) -> str | None:
    """Why a file is shorter than it promises, or None; cached per version of the file (``identity``
    holds its inode, size and modification time), since windows of one file open it many times."""
    problem = container_problem(path)
    if problem:
        return problem
    with sf.SoundFile(path) as f:
        if f.frames <= 0 or not f.seekable():
            return None
        # FLAC and counted MP3s promise a sample count that libsndfile reports: decode the last samples
        count = min(f.frames, 64)
        try:
            f.seek(f.frames - count)
            decoded = len(f.read(count, dtype="float32"))
        except (sf.LibsndfileError, RuntimeError):
            decoded = 0
        if decoded < count:
            return f"truncated file: header announces {f.frames} samples, the last of them cannot be decoded"
    return None


def _soundfile(path: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as error:
        with open(path, "rb"):  # libsndfile says "System error" where the OS refused: let the OS say why
            pass
        reason = str(error).split(":", 1)[-1].strip() or "unreadable"
        raise AudioError(path, f"not a readable audio file ({reason})") from None


def _open(path) -> sf.SoundFile:
    """Open an audio file whose header is plausible and whose container is whole; AudioError otherwise."""
    path = Path(path)
    try:
        stat = path.stat()
        if path.is_dir():
            raise AudioError(path, "is a directory, not an audio file")
        if stat.st_size == 0:
            raise AudioError(path, "empty file (0 bytes)")
        f = _soundfile(path)
        try:
            check_rate(f.samplerate, path, where=" in the file header")
            problem = _integrity(str(path), (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except BaseException:
            f.close()
            raise
    except OSError as error:
        raise AudioError(path, os_problem(error)) from None
    if problem:
        f.close()
        raise AudioError(path, problem)
    return f


def audio_duration(path) -> float:
    """Duration of an audio file in seconds, from its header (checked against the file's length)."""
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
    memory. Integer PCM is scaled to [-1, 1]; several channels are averaged. ``end`` None reads
    to the end of the file; an ``end`` after the end of the file (by more than one sample at 16
    kHz) is an error, as is a file cut shorter than its header says (checked on every read,
    whatever the stretch) and a stretch longer than ``MAX_SECONDS``.

    Example (it needs files or a download, so it is not run as a doctest)::

        read_segment("speech.wav", 1.0, 3.0).shape
        # -> (32000,)
    """
    start, end = check_span(path, start, end)
    with _open(path) as f:
        frames, rate = f.frames, f.samplerate
        if frames <= 0:
            raise AudioError(path, "zero-length audio (no samples)")
        if end is not None and end > frames / rate + 1.0 / SAMPLING_RATE + 1e-9:
            raise AudioError(path, f"segment {start:.3f}-{end:.3f} s ends after the end of the file ({frames / rate:.3f} s)")
        first = int(round(start * rate))
        last = frames if end is None else min(frames, int(round(end * rate)))
        if first >= frames or last <= first:
            raise AudioError(path, f"segment {start:.3f}-{end} s lies outside the file ({frames / rate:.3f} s)")
        if (last - first) / rate > MAX_SECONDS:
            raise AudioError(path, f"{(last - first) / rate / 3600:.1f} h of audio in one read, more than the "
                                   f"{MAX_SECONDS / 3600:g} h one read may hold; read it in windows (win_dur, --win-dur)")
        try:
            f.seek(first)
            data = f.read(last - first, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise AudioError(path, f"corrupt audio data ({error})") from None
        except OSError as error:
            raise AudioError(path, os_problem(error)) from None
        if len(data) < last - first:
            raise AudioError(path, f"truncated file: header announces {frames} samples, only {first + len(data)} decoded")
    return check_waveform(_to_mono_16k(data, rate, sampling_rate), source=path)


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

    Example (it needs files or a download, so it is not run as a doctest)::

        x = load_audio("speech.flac")
    """
    return read_segment(path, 0.0, None, sampling_rate=sampling_rate)


def check_waveform(x, *, source="waveform", sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Validate a mono waveform and return it as a contiguous float32 array.

    Raises AudioError for anything but a 1-D array of at least one analysis frame of finite values
    no larger in magnitude than ``MAX_AMPLITUDE``. Torch tensors of any float type (bfloat16
    included) and integer PCM (scaled to [-1, 1]) are accepted.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() else x).numpy()
    try:
        x = np.asarray(x)
    except (TypeError, ValueError) as error:
        raise AudioError(source, f"not a waveform ({error})") from None
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
    peak = float(np.abs(x).max())
    if peak > MAX_AMPLITUDE:
        raise AudioError(source, f"implausible amplitude: peak {peak:.3g} (float audio is nominally within +-1; "
                                 f"above {MAX_AMPLITUDE:g} the models' float32 arithmetic overflows)")
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x: np.ndarray, sampling_rate: int, *, source="waveform", target_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Validate a waveform given at ``sampling_rate`` Hz and bring it to ``target_rate`` Hz."""
    sampling_rate = check_rate(sampling_rate, source)
    x = check_waveform(x, source=source, sampling_rate=sampling_rate)
    return check_waveform(_to_mono_16k(x, sampling_rate, target_rate), source=source, sampling_rate=target_rate)


def find_audio_files(root) -> list[Path]:
    """Every entry below ``root`` (recursive) named like an audio file, sorted. Entries that cannot be
    read (a dangling link, a symlink loop, no permission) are listed too, so that the job reading
    them records why instead of passing over them in silence."""
    root = Path(root)
    if not root.is_dir():
        raise AudioError(root, "not a directory")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_dir())


def readable_audio_files(folder, *, what: str = "audio") -> list[str]:
    """The audio files below ``folder`` whose header reads (absolute paths, sorted); ValueError
    naming the folder when there is none, so that a job using them as ``what`` (noise, room
    responses) fails before any work rather than quietly doing without."""
    try:
        found = find_audio_files(folder)
    except AudioError as error:
        raise ValueError(f"{folder}: the folder of {what} is {error.problem}") from None
    readable, problems = [], []
    for path in found:
        try:
            audio_duration(path)
            readable.append(os.path.abspath(path))
        except AudioError as error:
            problems.append(f"{path.name}: {error.problem}")
    if not readable:
        reason = f"{len(found)} audio files, none readable (e.g. {problems[0]})" if found else "no audio files"
        raise ValueError(f"{folder}: the folder of {what} holds {reason}")
    return readable
