"""predict(): arousal, dominance, valence for a waveform, a file or many files, long audio included
(windows), with any model the package can load (see :func:`wav2small.runners.load_model`).
"""

from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy as np
import pandas as pd

from .audio import AudioError, audio_duration, read_segment, resample
from .contract import LABELS, MIN_SAMPLES, SAMPLING_RATE
from .runners import EqualLengthBatcher, load_model, run_clips

DEFAULT_MODEL = "audeering/wav2small"


def windows(duration: float, win_dur: float | None, hop_dur: float | None = None) -> list[tuple[float, float]]:
    """(start, end) seconds covering ``duration``: one window if ``win_dur`` is None, else windows of
    ``win_dur`` every ``hop_dur`` (default win_dur / 2); the last one ends at the end of the audio.
    Both must be finite and at least one analysis frame (64 samples, 4 ms)."""
    if win_dur is None:
        return [(0.0, duration)]
    hop_dur = win_dur / 2 if hop_dur is None else hop_dur
    shortest = MIN_SAMPLES / SAMPLING_RATE
    for name, value in (("win_dur", win_dur), ("hop_dur", hop_dur)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < shortest:
            raise ValueError(f"{name} must be a finite number of seconds, at least one analysis frame ({shortest:g} s), got {value!r}")
    if duration <= win_dur:
        return [(0.0, duration)]
    count = math.ceil((duration - win_dur) / hop_dur - 1e-9) + 1
    return [(i * hop_dur, min(i * hop_dur + win_dur, duration)) for i in range(count)]


def _is_path(item) -> bool:
    return isinstance(item, (str, os.PathLike))


def _segments_of_waveform(x, win_dur, hop_dur):
    duration = len(x) / SAMPLING_RATE
    for start, end in windows(duration, win_dur, hop_dur):
        yield start, end, x[int(round(start * SAMPLING_RATE)) : int(round(end * SAMPLING_RATE))]


def predict(
    x,
    sampling_rate: int | None = None,
    *,
    model=DEFAULT_MODEL,
    win_dur: float | None = None,
    hop_dur: float | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    on_error: str = "raise",
    progress: bool = False,
):
    """Arousal, dominance and valence for a waveform, a file, or a list of files.

    Args:
        x: a mono waveform (numpy or torch, shape (samples,)), a file path, or a list of paths.
        sampling_rate: rate of a waveform in Hz (default 16000); resampled to 16 kHz. Files carry
            their own rate.
        model: hub id (default ``audeering/wav2small``, the published weights), a local model or
            export folder, an ``.onnx`` file, or a loaded model object.
        win_dur, hop_dur: seconds. With ``win_dur``, long audio is cut into windows (hop
            defaults to win_dur / 2; the last window ends at the end of the audio) and each
            window gets a row; files are then read window by window, so memory stays bounded.
        batch_size: windows or clips per forward pass (only clips of equal length are batched).
        device: ``cpu`` or ``cuda``.
        on_error: for lists of files, ``raise`` stops at the first bad file, ``skip`` warns,
            leaves it out, and goes on.
        progress: show a progress bar over files.

    Returns:
        For a waveform: array (3,), or (windows, 3) when ``win_dur`` is set. For files: a
        DataFrame indexed by (file, start, end) (start/end as Timedelta) with columns arousal,
        dominance, valence. Columns are always in that order. Values are nominally 0..1 (the
        MSP-Podcast 1..7 ratings mapped by (y - 1) / 6), never clipped, so they may leave that
        range. Input gain does not matter (each clip is normalised inside the model); silence or
        any constant signal gives one fixed output, the model's answer to an empty spectrum,
        not a neutral rating: remove silence before drawing conclusions.

    >>> from wav2small.models import Wav2Small
    >>> predict(np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000, model=Wav2Small()).shape
    (3,)
    """
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
    windows(0.0, win_dur, hop_dur)  # bad window settings fail before a model is loaded
    if isinstance(x, (list, tuple)) and any(map(_is_path, x)) and not all(map(_is_path, x)):
        other = next(i for i, item in enumerate(x) if not _is_path(item))
        raise ValueError(f"a list passed to predict must hold file paths only; item {other} is a {type(x[other]).__name__} "
                         "(predict waveforms one at a time)")
    runner = load_model(model, device=device)
    if _is_path(x):
        return _predict_files([x], runner, win_dur, hop_dur, batch_size, "raise", progress)
    if isinstance(x, (list, tuple)) and all(map(_is_path, x)):
        return _predict_files(list(x), runner, win_dur, hop_dur, batch_size, on_error, progress)
    x = resample(x, SAMPLING_RATE if sampling_rate is None else sampling_rate)
    clips = [clip for _, _, clip in _segments_of_waveform(x, win_dur, hop_dur) if len(clip) >= runner.min_samples]
    if not clips:
        raise AudioError("waveform", f"too short: {len(x)} samples, the model needs at least {runner.min_samples}")
    out = run_clips(runner, clips, batch_size=batch_size)
    return out if win_dur is not None else out[0]


def _predict_files(files, runner, win_dur, hop_dur, batch_size, on_error, progress):
    from .progress import progress_bar

    batcher = EqualLengthBatcher(runner, batch_size)
    keys = []
    failed = {}
    for file in progress_bar(files, desc="predict", unit="file", disable=not progress):
        file_keys = []
        try:
            duration = audio_duration(file)
            for start, end in windows(duration, win_dur, hop_dur):
                if (end - start) * SAMPLING_RATE < runner.min_samples and file_keys:
                    continue  # a tail shorter than one frame; the audio is covered by the previous window
                key = (str(file), start, end)
                batcher.add(key, read_segment(file, start, end))
                file_keys.append(key)
        except AudioError as error:
            if on_error == "raise":
                raise
            failed[str(file)] = error.problem
            warnings.warn(str(error), stacklevel=3)
            continue
        keys.extend(file_keys)  # only files read to the end give rows
    batcher.flush()
    index = pd.MultiIndex.from_tuples(
        [(f, pd.to_timedelta(s, unit="s"), pd.to_timedelta(e, unit="s")) for f, s, e in keys],
        names=["file", "start", "end"],
    )
    values = np.stack([batcher.results[k] for k in keys]) if keys else np.zeros((0, 3), np.float32)
    frame = pd.DataFrame(values, index=index, columns=list(LABELS))
    frame.attrs["failed"] = failed
    return frame
