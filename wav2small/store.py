"""The label store: teacher arousal, dominance and valence per clip and view, as Parquet shards plus
metadata. The labelling job writes it; training, evaluation and export calibration read it.

A store is a folder::

    metadata.json                       teacher ids and revisions, crop and view settings, versions
    labels-r<rank>-<seq>.parquet        one row per (file, start, end, view), see LabelStore.read
    errors-r<rank>-<seq>.parquet        files that could not be labelled: file, reason

Every file is written atomically (aside, synced, renamed), so a shard exists whole or not at
all; each rank numbers its own shards, so processes and machines write into one store without
coordination; a clip's views always share one shard, so a finished shard means finished clips.
A writing job holds :meth:`LabelStore.lock` for its shard slot, so two jobs can never write
the same slot at once.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .atomic import atomic_path, write_json
from .audio import AudioError
from .contract import LABELS, SAMPLING_RATE
from .locks import file_lock
from .views import check_view, view_files

METADATA_FILE = "metadata.json"
FORMAT = "wav2small-labels/1"
#: Settings that must agree between a store and a job that resumes it.
RESUME_KEYS = ("format", "teacher", "crop_dur", "views", "view_settings", "seed", "noise_files", "rir_files", "sampling_rate")
SHARD_KINDS = ("labels", "errors")


def is_label_store(path) -> bool:
    """Whether ``path`` is a label store folder (it holds ``metadata.json``)."""
    return (Path(path) / METADATA_FILE).is_file()


def is_inside(path, roots) -> bool:
    """Whether ``path`` lies in one of the folders ``roots`` (compared as written, after normalising
    ``..``: a store row cannot climb out of its roots)."""
    roots = set(roots)
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        if folder in roots:
            return True
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent


def outermost(folders) -> list[str]:
    """The absolute folders of ``folders`` that lie in no other one of them, sorted."""
    folders = {os.path.abspath(f) for f in folders}
    return sorted(f for f in folders if not is_inside(f, folders))


def clip_key(file, start: float, end: float) -> tuple[str, int, int]:
    """(file, first sample, last sample) of a clip given in seconds: how the store tells clips apart."""
    return str(file), int(round(start * SAMPLING_RATE)), int(round(end * SAMPLING_RATE))


class LabelStore:
    """A label store folder (see the module docstring); written by :func:`wav2small.labels.label_audio`.

    Example (it needs files or a download, so it is not run as a doctest)::

        store = LabelStore("labels/msp")
        store.read()[["file", "start", "end", "view", "arousal", "dominance", "valence"]]

    ``read()`` columns: ``file`` (absolute path), ``start``, ``end`` (seconds of the clean crop),
    ``view`` (0 = the clean crop), ``params`` (JSON for :func:`wav2small.views.render_view`),
    ``arousal``, ``dominance``, ``valence`` (the combined teacher output, unclipped) and per
    member ``<member>.arousal``, ``<member>.dominance``, ``<member>.valence``.
    """

    def __init__(self, root, *, allow_outside_paths: bool = False):
        self.root = Path(root)
        self.allow_outside_paths = allow_outside_paths
        self._roots = None  # audio_roots as a set, read once

    # reading

    @property
    def metadata(self) -> dict:
        """Teacher ids and revisions, member names and weights, crop and view settings, sampling rate, package version."""
        path = self.root / METADATA_FILE
        if not path.exists():
            raise FileNotFoundError(f"{self.root}: not a label store (no {METADATA_FILE})")
        return json.loads(path.read_text())

    @property
    def audio_roots(self) -> list[str]:
        """The folders the store was labelled from (inputs, folders of listed files, noise); empty
        for a store written before wav2small recorded them."""
        return list(self.metadata.get("audio_roots") or [])

    def check_view(self, params) -> dict:
        """A row's ``params`` as a dict if the view can be rendered (:func:`wav2small.views.check_view`)
        and every file it reads lies in :attr:`audio_roots` (unless ``allow_outside_paths``);
        AudioError naming the file otherwise. A store is data from disk: a row must not make a
        reader open files elsewhere."""
        params = check_view(params)
        if self.allow_outside_paths:
            return params
        if self._roots is None:
            self._roots = set(self.audio_roots)
        for file in view_files(params):
            if not is_inside(file, self._roots):
                roots = sorted(self._roots)
                named = ", ".join(roots[:3]) + (f" and {len(roots) - 3} more" if len(roots) > 3 else "")
                raise AudioError(file, f"a row of the label store {self.root} reads this file, outside the folders the store "
                                       f"was labelled from ({named or 'none recorded: the store was made by an older wav2small'}); "
                                       "pass allow_outside_paths=True (--allow-outside-paths) if you trust the store")
        return params

    def view_problems(self, params) -> list[str]:
        """For each entry of ``params`` (a store's ``params`` column), why its view cannot be used
        (see :meth:`check_view`), or "" when it can."""
        problems = []
        for p in params:
            try:
                self.check_view(p)
                problems.append("")
            except AudioError as error:
                problems.append(str(error))
        return problems

    def shards(self, kind: str = "labels") -> list[Path]:
        """The finished shards of ``kind`` ("labels" or "errors"), in name order."""
        return sorted(self.root.glob(f"{kind}-*.parquet"))

    def read(self, columns=None) -> pd.DataFrame:
        """All labelled rows (``columns`` only, if given), sorted by file, start and view."""
        frames = [pd.read_parquet(p, columns=columns) for p in self.shards()]
        if not frames:
            names = ["file", "start", "end", "view", "params", *LABELS] if columns is None else list(columns)
            return pd.DataFrame({c: [] for c in names})
        frame = pd.concat(frames, ignore_index=True)
        order = [c for c in ("file", "start", "view") if c in frame.columns]
        return frame.sort_values(order, kind="stable").reset_index(drop=True) if order else frame

    def errors(self) -> pd.DataFrame:
        """Files that could not be labelled: columns file, reason (each failure once)."""
        frames = [pd.read_parquet(p) for p in self.shards("errors")]
        if not frames:
            return pd.DataFrame({"file": pd.Series([], dtype=str), "reason": pd.Series([], dtype=str)})
        return pd.concat(frames, ignore_index=True).drop_duplicates().reset_index(drop=True)

    def done(self) -> set[tuple[str, int, int]]:
        """:func:`clip_key` of every clip in a finished shard."""
        frame = self.read(columns=["file", "start", "end"])
        first = np.round(frame["start"].to_numpy(float) * SAMPLING_RATE).astype(np.int64)
        last = np.round(frame["end"].to_numpy(float) * SAMPLING_RATE).astype(np.int64)
        return set(zip(frame["file"].astype(str), first.tolist(), last.tolist()))

    # writing

    def create(self, metadata: dict) -> dict:
        """Create the store with ``metadata``, or check that an existing one was made with the same
        settings (``RESUME_KEYS``) and return its metadata; raises ValueError naming what differs."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / METADATA_FILE
        if path.exists():
            old = json.loads(path.read_text())
            changed = [k for k in RESUME_KEYS if old.get(k) != metadata.get(k)]
            if changed:
                raise ValueError(f"{self.root}: this label store was made with other settings ({', '.join(changed)}: "
                                 f"{[old.get(k) for k in changed]} here, {[metadata.get(k) for k in changed]} now); "
                                 "use another --out or the same settings to resume")
            roots = outermost([*(old.get("audio_roots") or []), *(metadata.get("audio_roots") or [])])
            if old.get("audio_roots") and roots != old["audio_roots"]:  # a resumed job with more input folders
                old["audio_roots"] = roots
                write_json(path, old)
            return old
        write_json(path, metadata)
        return metadata

    def write_shard(self, kind: str, rank: int, frame: pd.DataFrame) -> Path:
        """Add ``frame`` as the next shard of ``kind`` ("labels" or "errors") of ``rank``, atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if kind not in SHARD_KINDS:
            raise ValueError(f"unknown shard kind {kind!r}; use one of {SHARD_KINDS}")
        seq = 1 + max((int(p.stem.split("-")[-1]) for p in self.root.glob(f"{kind}-r{rank:04d}-*.parquet")), default=0)
        path = self.root / f"{kind}-r{rank:04d}-{seq:06d}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        return path

    @contextlib.contextmanager
    def lock(self, rank: int = 0, world: int = 1) -> Iterator[None]:
        """Hold the right to write shard slot ``rank`` of ``world`` while the block runs.

        A job over the whole input (``world`` 1) locks the whole store; a job over a slice locks
        the store shared and its slot exclusively, so the slices of a sharded job run side by side
        while a second job on a slot already taken (or over the whole store) fails at once with
        :class:`wav2small.locks.LockedError`. Locks die with their process.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        advice = ("two jobs on one slot would label the same clips twice and overwrite each other's shards; wait for it "
                  "to finish, or give each job its own --shard i/N")
        with file_lock(self.root / ".lock", what=f"the label store {self.root}", advice=advice, shared=world > 1):
            if world == 1:
                yield
                return
            with file_lock(self.root / f".lock-r{rank:04d}", what=f"shard slot {rank}/{world} of the label store {self.root}",
                           advice=advice):
                yield

    def remove_partial_shards(self, rank: int) -> None:
        """Delete the temporary files of shards ``rank`` was writing when it was killed."""
        for stale in self.root.glob(f".*-r{rank:04d}-*.tmp"):
            stale.unlink(missing_ok=True)
