"""The packed audio cache training reads from: every stretch of audio a label store's views need,
decoded and resampled once into one array file that each epoch (and each later run) memory-maps.

A cache is a folder ``<cache root>/<key>/`` holding ``audio.bin`` (the stretches end to end, float32
or int16) and ``index.json`` (per file: first and last sample at 16 kHz and offset of each stretch;
files that failed to decode; each source's size and modification time). The key is a hash of the
store's view parameters, so a cache is reused by every run on the same store and rebuilt when the
store changes; a source file that changed since (another size or modification time) is decoded
again when the cache is next opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .atomic import atomic_directory, remove_temporaries
from .audio import AudioError, read_segment
from .contract import SAMPLING_RATE
from .locks import file_lock
from .views import render_view

DATA_FILE = "audio.bin"
INDEX_FILE = "index.json"
#: Stretches of one file closer than this (samples) are decoded as one, saving seeks and decodes.
MERGE_GAP = SAMPLING_RATE
_INT16_SCALE = 32768.0


def cache_key(params) -> str:
    """Hash of a store's view parameters (JSON strings): what the cache holds depends on nothing else."""
    digest = hashlib.sha1()
    for p in sorted(params):
        digest.update(p.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:20]


def _samples(seconds: float) -> int:
    return int(round(float(seconds) * SAMPLING_RATE))


def needed_stretches(params, *, progress: bool = False) -> dict[str, list[tuple[int, int]]]:
    """Per file, the merged [first, last) sample ranges that rendering these views reads.

    Each view is rendered once with a stand-in source that returns silence and records the
    request, so every read ``render_view`` makes (crop, mixing partner, noise file) is covered
    without knowing the parameter schema.
    """
    from .progress import progress_bar

    reads: dict[str, list[tuple[int, int]]] = {}

    def record(file, start, end):
        first, last = _samples(start), _samples(end)
        reads.setdefault(str(file), []).append((first, last))
        return np.zeros(max(0, last - first), np.float32)

    for p in progress_bar(params, desc="scan views", unit="view", disable=not progress, leave=False):
        render_view(p, source=record)
    merged = {}
    for file, ranges in reads.items():
        ranges.sort()
        out = [list(ranges[0])]
        for first, last in ranges[1:]:
            if first <= out[-1][1] + MERGE_GAP:
                out[-1][1] = max(out[-1][1], last)
            else:
                out.append([first, last])
        merged[file] = [tuple(r) for r in out]
    return merged


def _decode(item):
    """Decode one file's stretches; returns (file, [(first, array)], error or None)."""
    file, ranges = item
    try:
        return file, [(first, read_segment(file, first / SAMPLING_RATE, last / SAMPLING_RATE)) for first, last in ranges], None
    except AudioError as error:
        return file, [], error.problem
    except Exception as error:  # a decoder failing in an unexpected way costs one file, not the run
        return file, [], f"{type(error).__name__}: {error}"


def cache_folder(params, root, *, dtype: str = "float32") -> Path:
    """Where the cache of these view parameters lives under ``root``."""
    return Path(root) / f"{cache_key(params)}-{dtype}"


def source_stamp(file) -> list[int] | None:
    """[size in bytes, modification time in ns] of a source file, None if it cannot be seen: what
    tells a cache that its copy of the audio is out of date."""
    try:
        stat = os.stat(file)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def wait_for_audio_cache(params, root, *, dtype: str = "float32", poll: float = 2.0) -> "AudioCache":
    """Open the cache another process is building or refreshing (DDP: rank 0 builds, the others wait)."""
    folder = cache_folder(params, root, dtype=dtype)
    while not (folder / INDEX_FILE).exists() or AudioCache(folder).changed_sources():
        time.sleep(poll)
    return AudioCache(folder)


def build_audio_cache(params, root, *, dtype: str = "float32", workers: int = 2, progress: bool = True) -> "AudioCache":
    """The cache for these view parameters under ``root``: opened if it exists and is up to date,
    else built (or refreshed: only the files that changed are decoded again).

    Args:
        params: the ``params`` column of a label store (JSON strings or dicts).
        root: folder holding caches, one sub-folder per key.
        dtype: "float32" (bit-exact for every source) or "int16" (half the disk; exact for 16-bit
            PCM sources at 16 kHz, about -96 dB quantisation noise otherwise).
        workers: threads decoding files (decoding and resampling release the GIL).
        progress: progress bars.

    Every file is decoded once, stretch by stretch. Files that fail are listed in
    :attr:`AudioCache.errors` instead of stopping the build. Processes building the same cache
    take turns (a lock file beside it); a build killed midway leaves a temporary folder that the
    next build removes.
    """
    if dtype not in ("float32", "int16"):
        raise ValueError(f"cache dtype must be 'float32' or 'int16', got {dtype!r}")
    params = [p if isinstance(p, str) else json.dumps(p) for p in params]
    root = Path(root)
    folder = cache_folder(params, root, dtype=dtype)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{folder.name}.lock", what=f"the audio cache {folder}", advice="", wait=True):
        remove_temporaries(root, folder.name)
        old = AudioCache(folder) if (folder / INDEX_FILE).exists() else None
        changed = None if old is None else old.changed_sources()
        if changed == set():
            return old
        stretches = needed_stretches(params, progress=progress)
        _write_cache(folder, stretches, dtype=dtype, workers=workers, progress=progress, reuse=old,
                     fresh=set(stretches) if changed is None else changed)
    return AudioCache(folder)


def _write_cache(folder: Path, stretches: dict, *, dtype: str, workers: int, progress: bool, reuse: "AudioCache | None",
                 fresh: set) -> None:
    """Write the cache folder: the ``fresh`` files decoded from disk, the others copied from ``reuse``."""
    from .progress import progress_bar

    index, errors, stamps, offset = {}, {}, {}, 0
    total = sum(last - first for ranges in stretches.values() for first, last in ranges)

    def source(item):
        file, ranges = item
        stamps[file] = source_stamp(file)  # before reading: a change during the build shows next time
        if file in fresh:
            return _decode(item)
        if file in reuse.errors:
            return file, [], reuse.errors[file]
        return file, [(first, reuse.read(file, first / SAMPLING_RATE, last / SAMPLING_RATE)) for first, last in ranges], None

    with atomic_directory(folder) as tmp:
        with open(tmp / DATA_FILE, "wb") as out, ThreadPoolExecutor(max(1, workers), thread_name_prefix="wav2small-cache") as pool, \
                progress_bar(total=total / SAMPLING_RATE, desc="cache audio", unit="s", unit_scale=True, disable=not progress,
                             leave=False, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]") as bar:
            for file, decoded, error in pool.map(source, sorted(stretches.items())):
                if error:
                    errors[file] = error
                    continue
                entries = []
                for first, audio in decoded:
                    data = np.round(audio * _INT16_SCALE).clip(-32768, 32767).astype(np.int16) if dtype == "int16" else audio
                    out.write(data.tobytes())
                    entries.append([first, first + len(audio), offset])
                    offset += len(audio)
                    bar.update(len(audio) / SAMPLING_RATE)
                index[file] = entries
        meta = {"dtype": dtype, "samples": offset, "sampling_rate": SAMPLING_RATE, "files": index, "errors": errors,
                "sources": stamps, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / INDEX_FILE).write_text(json.dumps(meta))


class AudioCache:
    """A built cache; :meth:`read` is the ``source(file, start, end)`` callback of ``render_view``.

    The array file is memory-mapped lazily in each process that reads (DataLoader workers each
    map it themselves), so nothing large is copied between processes.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        meta = json.loads((self.folder / INDEX_FILE).read_text())
        self.dtype = meta["dtype"]
        self.errors: dict[str, str] = meta["errors"]
        self.files = {file: np.asarray(entries, dtype=np.int64).reshape(-1, 3) for file, entries in meta["files"].items()}
        self.samples = meta["samples"]
        self.sources: dict[str, list | None] = meta.get("sources", {})
        self._data = None
        self._pid = None
        self.misses = 0

    def changed_sources(self) -> set[str]:
        """Files whose size or modification time differ from when they were cached (all of them for
        a cache that recorded none)."""
        return {file for file in [*self.files, *self.errors] if file not in self.sources or source_stamp(file) != self.sources[file]}

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLING_RATE

    def _array(self) -> np.ndarray:
        if self._data is None or self._pid != os.getpid():
            self._data = np.memmap(self.folder / DATA_FILE, dtype=self.dtype, mode="r", shape=(self.samples,)) if self.samples else np.zeros(0, self.dtype)
            self._pid = os.getpid()
        return self._data

    def read(self, file, start: float, end: float) -> np.ndarray:
        """Clean 16 kHz float32 audio of ``file`` from ``start`` to ``end`` seconds, as ``read_segment`` gives it.

        Requests the cache does not hold (views with reads of a kind this cache did not record)
        are read from disk, with a warning the first time.
        """
        first, last = _samples(start), _samples(end)
        entries = self.files.get(str(file))
        if entries is not None:
            inside = np.flatnonzero((entries[:, 0] <= first) & (first < entries[:, 1]))
            if len(inside):
                a, b, offset = entries[inside[0]]
                data = self._array()[offset + first - a : offset + min(last, b) - a]
                return data.astype(np.float32) / np.float32(_INT16_SCALE) if self.dtype == "int16" else np.array(data)
        if str(file) in self.errors:
            raise AudioError(file, self.errors[str(file)])
        self.misses += 1
        if self.misses == 1:
            warnings.warn(f"{self.folder}: {file} {start:.3f}-{end:.3f} s is not in the audio cache; reading from disk", stacklevel=2)
        return read_segment(file, start, end)
