"""The labelling job: a teacher writes arousal, dominance and valence for fixed-length crops of the
input audio and their augmented views into a label store (:mod:`wav2small.store`), resumable after
any kill and shardable across processes and machines: a restarted job skips every clip already in
a finished shard.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__
from .audio import AudioError, audio_duration, check_span, find_audio_files, readable_audio_files
from .contract import LABELS, SAMPLING_RATE
from .distributed import choose_device, environment
from .options import LabelConfig
from .store import FORMAT, LabelStore, clip_key, outermost
from .views import ViewSettings, make_view

def read_inputs(inputs) -> list[tuple[str, float | None, float | None]]:
    """Segments to label from folders (recursive), audio files, CSV manifests (columns ``file``
    and optionally ``start``, ``end`` in seconds; paths relative to the manifest's folder) or text
    lists (one path per line): sorted, duplicates removed, as (absolute file, start, end) with
    start/end None for whole files."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    segments = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            segments += [(os.path.abspath(f), None, None) for f in find_audio_files(path)]
        elif path.suffix.lower() == ".csv":
            table = pd.read_csv(path)
            if "file" not in table.columns:
                raise ValueError(f"{path}: a manifest needs a 'file' column (and optionally 'start', 'end' in seconds)")
            for row in table.itertuples(index=False):
                file = Path(row.file) if Path(row.file).is_absolute() else path.parent / row.file
                start = getattr(row, "start", None)
                end = getattr(row, "end", None)
                segments.append((os.path.abspath(file), None if pd.isna(start) else float(start), None if pd.isna(end) else float(end)))
        elif path.suffix.lower() in (".txt", ".lst"):
            for line in path.read_text().splitlines():
                if line.strip():
                    file = Path(line.strip())
                    segments.append((os.path.abspath(file if file.is_absolute() else path.parent / file), None, None))
        else:
            segments.append((os.path.abspath(path), None, None))
    key = lambda s: (s[0], -1.0 if s[1] is None else s[1], -1.0 if s[2] is None else s[2])
    return sorted(set(segments), key=key)


def _folders(inputs) -> list[str]:
    """The folders among ``inputs`` (a path or a list of them)."""
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    return [str(item) for item in inputs if Path(item).is_dir()]


def crop_positions(first: int, last: int, crop: int) -> list[tuple[int, int]]:
    """Fixed-length crops (in samples) covering [first, last): round(length / crop) crops spread
    evenly, the first at the start and the last at the end; one centred crop when that count is
    1; the whole stretch when it is shorter than one crop."""
    length = last - first
    if length <= crop:
        return [(first, last)]
    count = max(1, int(length / crop + 0.5))  # halves round up
    if count == 1:
        begin = first + (length - crop) // 2
        return [(begin, begin + crop)]
    return [(first + round(i * (length - crop) / (count - 1)), first + round(i * (length - crop) / (count - 1)) + crop) for i in range(count)]


def _shard_from(shard) -> tuple[int, int]:
    """(rank, world size) from "i/N", a tuple, or torchrun's RANK / WORLD_SIZE."""
    if shard is None:
        return environment()[:2]
    if isinstance(shard, str):
        try:
            rank, world = (int(v) for v in shard.split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {shard!r}") from None
    else:
        rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(f"shard {rank}/{world}: need 0 <= i < N")
    return rank, world


def _prefetch(function, items, *, workers: int, depth: int):
    """Yield function(item) in order, computing up to ``depth`` items ahead on ``workers`` threads.
    Audio decoding and numpy release the GIL, so reading overlaps the teacher's forward pass."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="wav2small-read") as pool:
        pending = deque()
        items = iter(items)
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= depth:
                break
        while pending:
            result = pending.popleft().result()
            for item in items:
                pending.append(pool.submit(function, item))
                break
            yield result


def _clips_of(segment, *, crop: int, min_samples: int) -> list[dict]:
    """The crops of one input segment (from the file header only), as clip dicts in seconds."""
    file, start, end = segment
    start, end = check_span(file, 0.0 if start is None else start, end)
    sr = SAMPLING_RATE
    total = int(round(audio_duration(file) * sr))
    first = int(round(start * sr))
    last = total if end is None else min(total, int(round(end * sr)))
    if last - first < min_samples:
        raise AudioError(file, f"too short: {max(0, last - first)} samples in {first / sr:.3f}-{last / sr:.3f} s, "
                               f"the teacher needs {min_samples}")
    return [{"file": file, "start": a / sr, "end": b / sr, "region_start": first / sr, "region_end": last / sr}
            for a, b in crop_positions(first, last, crop)]


class _Labeller:
    """Runs the teacher on views in batches of equal length and writes clips whose views are all
    labelled to the store, ``shard_size`` clips per shard, with the errors seen so far."""

    def __init__(self, teacher, store: LabelStore, *, views: int, batch_size: int, shard_size: int, rank: int, device, bar):
        self.teacher, self.store, self.rank, self.device, self.bar = teacher, store, rank, device, bar
        self.views, self.batch_size, self.shard_size = views, batch_size, shard_size
        self.waiting: dict[int, list] = {}  # clip index -> rows of the views labelled so far
        self.pending: dict[int, list] = {}  # samples -> [(clip, view, params, audio)] not yet run
        self.finished: list[dict] = []  # rows of clips with every view labelled
        self.errors: list[tuple[str, str]] = []
        self.counts = {"clips": 0, "rows": 0, "shards": 0, "errors": 0}

    def add(self, index: int, clip: dict, drawn):
        self.waiting[index] = []
        for view, (params, audio) in enumerate(drawn):
            self.pending.setdefault(len(audio), []).append((index, clip, view, params, audio))
        for length, items in self.pending.items():
            while len(items) >= self.batch_size:
                self._run(items[: self.batch_size])
                del items[: self.batch_size]
        if sum(map(len, self.pending.values())) > 4 * self.batch_size:  # odd lengths (short files): do not hoard them
            for length in sorted(self.pending, key=lambda k: len(self.pending[k])):
                self._run(self.pending.pop(length))
                if sum(map(len, self.pending.values())) <= 2 * self.batch_size:
                    break
        self._write()

    def fail(self, file: str, reason: str):
        self.errors.append((file, reason))
        self.counts["errors"] += 1
        self.bar.set_postfix(errors=self.counts["errors"], refresh=False)
        self.bar.update(1)

    def close(self):
        for items in self.pending.values():
            for i in range(0, len(items), self.batch_size):
                self._run(items[i : i + self.batch_size])
        self.pending = {}
        self._write(force=True)

    def _run(self, items):
        import torch

        batch = torch.from_numpy(np.stack([audio for *_, audio in items])).to(self.device)
        with torch.inference_mode():
            members = {name: out.float().cpu() for name, out in self.teacher.forward_members(batch).items()}
            combined = self.teacher.combine(members).numpy()
        for i, (index, clip, view, params, _) in enumerate(items):
            row = {"file": clip["file"], "start": clip["start"], "end": clip["end"], "view": view, "params": json.dumps(params)}
            row.update(zip(LABELS, combined[i].tolist()))
            for name, out in members.items():
                row.update((f"{name}.{label}", value) for label, value in zip(LABELS, out[i].tolist()))
            self.waiting[index].append(row)
            if len(self.waiting[index]) == self.views + 1:
                self.finished.extend(sorted(self.waiting.pop(index), key=lambda r: r["view"]))
                self.counts["clips"] += 1
                self.bar.update(1)

    def _write(self, force=False):
        if self.finished and (force or len(self.finished) >= self.shard_size * (self.views + 1)):
            frame = pd.DataFrame(self.finished)
            for column in frame.columns[5:]:
                frame[column] = frame[column].astype(np.float32)
            self.store.write_shard("labels", self.rank, frame)
            self.counts["rows"] += len(frame)
            self.counts["shards"] += 1
            self.finished, force = [], True
        if self.errors and force:
            self.store.write_shard("errors", self.rank, pd.DataFrame(self.errors, columns=["file", "reason"]))
            self.errors = []


def label_audio(inputs, teacher, out_dir, *, view_settings: ViewSettings | None = None, source=None, **options) -> dict:
    """Label audio with a teacher into a :class:`~wav2small.store.LabelStore`; run it again to resume.

    Args:
        inputs: folder(s) (recursive), audio files, CSV manifests (file[, start, end]) or text lists.
        teacher: a teacher spec for :func:`wav2small.teachers.load_teacher` or a loaded teacher.
        out_dir: the store directory (created; an existing one is resumed when the settings agree).
        view_settings: :class:`wav2small.options.ViewSettings` (gain, shift, SNR ranges, MixUp,
            reverberation, probabilities).
        source: ``source(file, start, end)`` serving audio (default: read from disk).
        options: the fields of :class:`wav2small.options.LabelConfig` (crop_dur, views, noise_dir,
            rir_dir, seed, batch_size, device, half, shard, shard_size, workers, weights, progress), with
            their defaults and meaning there.

    Returns:
        Summary dict: ``clips`` and ``rows`` labelled now, ``skipped`` (clips already in the store),
        ``errors`` (files the store lists as failed), ``seconds``, ``clips_per_s``, ``store_rows``.

    Example (it needs files or a download, so it is not run as a doctest)::

        label_audio("Audios", "dawn+odyssey", "labels/msp", views=4, device="cuda")
    """
    from .progress import progress_bar
    from .teachers import load_teacher

    started = time.perf_counter()
    config = LabelConfig(**options)
    crop_dur, views, noise_dir, rir_dir, seed, batch_size, shard_size, workers, progress = (
        config.crop_dur, config.views, config.noise_dir, config.rir_dir, config.seed, config.batch_size, config.shard_size,
        config.workers, config.progress)
    rank, world = _shard_from(config.shard)
    settings = view_settings or ViewSettings()
    if rir_dir and not settings.reverb_prob:
        raise ValueError(f"rir_dir {rir_dir} is given but no view is reverberated: set reverb_prob (--reverb-prob) above 0")
    # folders of noise and room responses: checked before anything slow, their readable files only
    noise_files = readable_audio_files(noise_dir, what="noise") if noise_dir else []
    rir_files = readable_audio_files(rir_dir, what="room impulse responses") if rir_dir else None
    crop = int(round(crop_dur * SAMPLING_RATE))
    device = choose_device(config.device)
    half = device.type == "cuda" if config.half is None else config.half
    if isinstance(teacher, (str, os.PathLike)):
        spec = str(teacher)
    elif isinstance(teacher, (list, tuple)):
        spec = "+".join(map(str, teacher))
    else:
        spec = None  # a loaded module
    store = LabelStore(out_dir)
    with store.lock(rank, world):  # before anything slow: a second job on this slot fails at once
        teacher = load_teacher(teacher, device=device, weights=config.weights)
        if half:
            teacher = teacher.half()

        segments = read_inputs(inputs)
        if not segments:
            raise ValueError(f"no audio found in {inputs}")
        store.create({
            "format": FORMAT, "teacher_spec": spec, "teacher": teacher.describe(),
            "members": [m.name for m in getattr(teacher, "members", [teacher])], "labels": list(LABELS),
            "sampling_rate": SAMPLING_RATE, "crop_dur": crop / SAMPLING_RATE, "views": int(views), "view_settings": settings.to_dict(),
            "seed": int(seed), "noise_dir": None if noise_dir is None else os.path.abspath(noise_dir), "noise_files": noise_files,
            **({"rir_dir": os.path.abspath(rir_dir), "rir_files": rir_files} if rir_dir else {}),
            "audio_roots": outermost([*(os.path.dirname(file) for file, _, _ in segments), *map(os.path.abspath, _folders(inputs)),
                                      *(os.path.abspath(folder) for folder in (noise_dir, rir_dir) if folder)]),
            "precision": "float16" if half else "float32", "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        store.remove_partial_shards(rank)

        # 1. the crops of this rank's segments, from file headers, less those already labelled
        def scan(segment):
            try:
                return _clips_of(segment, crop=crop, min_samples=teacher.min_samples), None
            except AudioError as error:
                return [], (error.source, error.problem)
            except Exception as error:  # a decoder failing in an unexpected way must not stop the job
                return [], (segment[0], f"{type(error).__name__}: {error}")

        done, clips, scan_errors = store.done(), {}, []
        mine = segments[rank::world]
        for found, error in progress_bar(_prefetch(scan, mine, workers=max(workers, 4), depth=64), total=len(mine), desc="scan",
                                         unit="file", disable=not progress, leave=False):
            scan_errors += [error] if error else []
            clips.update((clip_key(c["file"], c["start"], c["end"]), c) for c in found)  # overlapping manifest segments may repeat a crop
        skipped = sum(key in done for key in clips)
        clips = [c for key, c in clips.items() if key not in done]

        # 2. views of each clip, read and augmented on worker threads ahead of the teacher
        partners = segments if views else []

        def prepare(item):
            index, clip = item
            try:
                drawn = [make_view(clip, v, seed=seed, settings=settings, partners=partners, noise_files=noise_files,
                                   rir_files=rir_files or (), source=source) for v in range(views + 1)]
                return index, clip, drawn, None
            except AudioError as error:
                return index, clip, None, (error.source, error.problem)
            except Exception as error:  # a decoder failing in an unexpected way must not stop the job
                return index, clip, None, (clip["file"], f"{type(error).__name__}: {error}")

        depth = max(2 * batch_size // (views + 1), 2 * workers, 4)
        with progress_bar(total=len(clips), desc=f"label {rank}/{world}" if world > 1 else "label", unit="clip",
                          disable=not progress, dynamic_ncols=True) as bar:
            labeller = _Labeller(teacher, store, views=views, batch_size=batch_size, shard_size=shard_size, rank=rank,
                                 device=device, bar=bar)
            labeller.errors += scan_errors
            for index, clip, drawn, error in _prefetch(prepare, enumerate(clips), workers=workers, depth=depth):
                if error:
                    labeller.fail(*error)
                else:
                    labeller.add(index, clip, drawn)
            labeller.close()

        seconds = time.perf_counter() - started
        counts = labeller.counts
        return {"rank": rank, "world": world, "clips": counts["clips"], "rows": counts["rows"], "shards": counts["shards"],
                "skipped": skipped, "errors": len(store.errors()), "seconds": seconds, "clips_per_s": counts["clips"] / max(seconds, 1e-9),
                "store_rows": len(store.read(columns=["view"]))}
