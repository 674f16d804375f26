"""Audio for int8 calibration and for the int8-versus-fp32 check, from an audio folder or a label store,
split by the package's one hold-out rule so that no file both calibrates and checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import AudioError, find_audio_files, read_segment
from ..contract import SAMPLING_RATE
from ..holdout import CALIBRATION_SALT, held_out
from ..store import LabelStore, is_label_store

# Fewer held-out clips make the int8 correlation check meaningless.
MIN_HELD_OUT = 8


def calibration_clips(source, *, clip_seconds: float = 2.0, max_clips: int = 256, holdout: float = 0.25, seed: int = 0,
                      progress: bool = False) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """(calibration clips, held-out clips, description) from an audio folder or a label store.

    Files are split by :func:`wav2small.holdout.held_out`: a ``holdout`` fraction (at least one
    file) is used only for checking. From an audio folder, each file gives consecutive crops of
    ``clip_seconds`` (a shorter file gives itself); from a label store, each row's view is rendered
    as the teacher heard it. Each side's files are read in an order shuffled with ``seed`` (so that
    the budget draws across the whole corpus) until it has its share of ``max_clips``. A file that
    cannot be read (or a store row that cannot be rendered, see ``LabelStore.check_view``) is
    recorded in the description's ``skipped`` and the next one is read.
    """
    from ..progress import progress_bar

    root = Path(source)
    if is_label_store(root):
        from ..views import render_view

        store = LabelStore(root)
        rows = store.read(columns=["file", "params"])
        views = rows.groupby("file", sort=True)["params"].apply(list)
        files = list(views.index)
        kind = "label store"

        def clips_of(file):
            return [render_view(store.check_view(p)) for p in views[file]]
    else:
        files = [str(f) for f in find_audio_files(root)]
        kind = "audio folder"

        def clips_of(file):
            x = read_segment(file)
            n = int(clip_seconds * SAMPLING_RATE)
            return [x] if len(x) <= n else [x[i:i + n] for i in range(0, len(x) - n + 1, n)]
    if len(files) < 2:
        raise ValueError(f"{root}: calibration needs at least 2 audio files ({len(files)} found): some calibrate, some check")
    checking = held_out(files, holdout, salt=CALIBRATION_SALT)
    order = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    held_files, calib_files = [f for f in order if f in checking], [f for f in order if f not in checking]
    budget = {"calibration": max(1, int(round(max_clips * (1 - holdout)))), "held_out": max(1, int(round(max_clips * holdout)))}
    out, used, skipped = {}, {}, {}
    for split, split_files in (("calibration", calib_files), ("held_out", held_files)):
        clips, used[split] = [], []
        for file in progress_bar(split_files, desc=f"read {split}", unit="file", disable=not progress):
            try:
                clips.extend(clips_of(file))
            except AudioError as error:
                skipped[error.source] = error.problem
                continue
            used[split].append(file)
            if len(clips) >= budget[split]:
                break
        out[split] = clips[: budget[split]]
    if len(out["held_out"]) < MIN_HELD_OUT:
        raise ValueError(f"{root}: only {len(out['held_out'])} held-out clips for the int8 check from {len(held_files)} files; "
                         f"give more audio or a larger --holdout (at least {MIN_HELD_OUT} clips)")
    info = {"source": str(root), "kind": kind, "clip_seconds": clip_seconds, "skipped": skipped}
    for split in out:
        info.update({f"{split}_files": len(used[split]), f"{split}_clips": len(out[split]),
                     f"{split}_seconds": round(sum(len(c) for c in out[split]) / SAMPLING_RATE, 2),
                     f"{split}_file_list": sorted(used[split])})
    return out["calibration"], out["held_out"], info
