"""predict(): arousal, dominance, valence for a waveform, a file or many files, long audio included,
with any model the package can load (student checkpoint, teacher, exported ONNX file).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .audio import AudioError, audio_duration, read_segment, resample
from .contract import CONTRACT_FILE, LABELS, MIN_SAMPLES, MODEL_FILES, SAMPLING_RATE
DEFAULT_MODEL = "audeering/wav2small"


class TorchPredictor:
    """Runs any torch module mapping (B, N) 16 kHz waveforms to (B, 3), in eval mode, no grad."""

    def __init__(self, module: torch.nn.Module, *, device="cpu"):
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.min_samples = int(getattr(module, "min_samples", MIN_SAMPLES))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.module(x).float().cpu().numpy()


class OnnxPredictor:
    """Runs an exported model with onnxruntime: input ``signal`` (B, N) float32 at 16 kHz -> (B, 3).

    ``path`` is an ``.onnx`` file or an export folder (see :func:`wav2small.export_onnx`); in a
    folder, ``precision`` picks ``model.onnx`` (``fp32``, the default) or ``model.int8.onnx``
    (``int8``), and ``contract.json`` gives the shortest input. ``threads`` sets onnxruntime's
    intra-op threads (default: its own choice).
    """

    def __init__(self, path, *, device="cpu", threads: int | None = None, precision: str = "fp32"):
        import onnxruntime as ort

        path = Path(path)
        contract = {}
        if path.is_dir():
            files = MODEL_FILES
            if precision not in files:
                raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
            if (path / CONTRACT_FILE).exists():
                contract = json.loads((path / CONTRACT_FILE).read_text())
            if not (path / files[precision]).exists():
                raise FileNotFoundError(f"{path}: no {files[precision]} in the export folder (export with --int8 for int8)")
            path = path / files[precision]
        elif (path.parent / CONTRACT_FILE).exists():
            contract = json.loads((path.parent / CONTRACT_FILE).read_text())
        self.path = path
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if str(device).startswith("cuda") else ["CPUExecutionProvider"]
        available = set(ort.get_available_providers())
        self.session = ort.InferenceSession(str(self.path), options, providers=[p for p in providers if p in available])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.min_samples = int(contract.get("input", {}).get("min_samples", MIN_SAMPLES))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: batch})[0]


def _is_student_config(raw: dict) -> bool:
    from .models.registry import ARCHITECTURES

    if raw.get("architecture") in ARCHITECTURES:
        return True
    return any("wav2small" in str(a).lower() for a in raw.get("architectures") or [])


def load_model(model=DEFAULT_MODEL, *, device="cpu"):
    """Turn what a user passes as ``model`` into a predictor: a callable (B, N) float32 -> (B, 3).

    Accepts a predictor, a torch module, an ``.onnx`` file, an export folder holding
    ``model.onnx``, a student or teacher folder, or a hub id.
    """
    if isinstance(model, (TorchPredictor, OnnxPredictor)):
        return model
    if isinstance(model, torch.nn.Module):
        return TorchPredictor(model, device=device)
    path = Path(str(model)).expanduser()
    if path.suffix == ".onnx" and path.is_file():
        return OnnxPredictor(path, device=device)
    if path.is_dir() and (path / MODEL_FILES["fp32"]).exists() and not (path / "model.safetensors").exists():
        return OnnxPredictor(path, device=device)
    from .hub import resolve_pretrained
    from .teachers import ALIASES, load_teacher

    if not path.exists() and (str(model) in ALIASES or "+" in str(model)):  # "dawn", "dawn+odyssey", "dirA+dirB"
        return TorchPredictor(load_teacher(str(model)), device=device)
    folder = resolve_pretrained(model, allow_patterns=("config.json",))
    config_path = folder / "config.json"
    raw = json.loads(config_path.read_text()) if config_path.exists() else {}
    if _is_student_config(raw) or not raw.get("model_type"):
        from .models import Student

        return TorchPredictor(Student.from_pretrained(model), device=device)
    return TorchPredictor(load_teacher(model), device=device)


def windows(duration: float, win_dur: float | None, hop_dur: float | None = None) -> list[tuple[float, float]]:
    """(start, end) seconds covering ``duration``: one window if ``win_dur`` is None, else windows of
    ``win_dur`` every ``hop_dur`` (default win_dur / 2); the last one ends at the end of the audio."""
    if win_dur is None:
        return [(0.0, duration)]
    hop_dur = win_dur / 2 if hop_dur is None else hop_dur
    if win_dur <= 0 or hop_dur <= 0:
        raise ValueError(f"win_dur and hop_dur must be positive seconds, got {win_dur} and {hop_dur}")
    if duration <= win_dur:
        return [(0.0, duration)]
    count = math.ceil((duration - win_dur) / hop_dur - 1e-9) + 1
    return [(i * hop_dur, min(i * hop_dur + win_dur, duration)) for i in range(count)]


class _EqualLengthBatcher:
    """Collects clips and runs them in batches of equal length (padding would change the output)."""

    def __init__(self, predictor, batch_size: int):
        self.predictor, self.batch_size = predictor, max(1, int(batch_size))
        self.pending: dict[int, list[tuple[object, np.ndarray]]] = {}
        self.results: dict[object, np.ndarray] = {}

    def add(self, key, clip: np.ndarray):
        self.pending.setdefault(len(clip), []).append((key, clip))
        if sum(len(v) for v in self.pending.values()) >= self.batch_size:
            self.flush()

    def flush(self):
        for items in self.pending.values():
            for i in range(0, len(items), self.batch_size):
                chunk = items[i : i + self.batch_size]
                out = self.predictor(np.stack([clip for _, clip in chunk]))
                for (key, _), row in zip(chunk, out):
                    self.results[key] = row
        self.pending.clear()


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

    >>> predict(np.zeros(16000, np.float32), 16000, model=Wav2Small()).shape  # doctest: +SKIP
    (3,)
    """
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
    predictor = load_model(model, device=device)
    if isinstance(x, (str, Path)):
        return _predict_files([x], predictor, win_dur, hop_dur, batch_size, "raise", progress)
    if isinstance(x, (list, tuple)) and all(isinstance(f, (str, Path)) for f in x):
        return _predict_files(list(x), predictor, win_dur, hop_dur, batch_size, on_error, progress)
    x = resample(x, SAMPLING_RATE if sampling_rate is None else sampling_rate)
    batcher = _EqualLengthBatcher(predictor, batch_size)
    segments = list(_segments_of_waveform(x, win_dur, hop_dur))
    for i, (_, _, clip) in enumerate(segments):
        if len(clip) >= predictor.min_samples:
            batcher.add(i, clip)
    batcher.flush()
    out = np.stack([batcher.results[i] for i in sorted(batcher.results)])
    return out if win_dur is not None else out[0]


def _predict_files(files, predictor, win_dur, hop_dur, batch_size, on_error, progress):
    from tqdm.auto import tqdm

    batcher = _EqualLengthBatcher(predictor, batch_size)
    keys = []
    failed = {}
    for file in tqdm(files, desc="predict", unit="file", disable=not progress):
        file_keys = []
        try:
            duration = audio_duration(file)
            for start, end in windows(duration, win_dur, hop_dur):
                if (end - start) * SAMPLING_RATE < predictor.min_samples and file_keys:
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
