"""Stage 0 of distillation: which clips to learn from and which to hold out for the final test,
from an audio folder or an MSP-Podcast root, with unreadable files set aside with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .audio import AudioError, audio_duration, find_audio_files
from .corpora import is_msp_podcast, msp_podcast
from .holdout import TEST_SALT, held_out


def write_manifests(source, out_dir, *, splits=("Train",), test_split="Test1", test_fraction: float = 0.1,
                    progress: bool = True) -> dict[str, pd.DataFrame]:
    """Write ``train.csv`` and ``test.csv`` (file, duration in seconds) and ``errors.csv`` (file, reason).

    ``source`` is a folder of audio (searched recursively; ``test_fraction`` of the files are held
    out by :func:`wav2small.holdout.held_out`) or an MSP-Podcast root (train = ``splits``, test =
    ``test_split``; ratings are not needed: the teacher writes the labels).
    """
    from .progress import progress_bar

    source = Path(source)
    if is_msp_podcast(source):
        parts = {"train": [f for split in splits for f in msp_podcast(source, split=split, rated_only=False).clips["file"]],
                 "test": list(msp_podcast(source, split=test_split, rated_only=False).clips["file"])}
    elif source.is_dir():
        files = [os.path.abspath(f) for f in find_audio_files(source)]  # not resolved: a symlink loop costs that file alone
        test = held_out(files, test_fraction, salt=TEST_SALT)
        parts = {"train": [f for f in files if f not in test], "test": [f for f in files if f in test]}
    else:
        raise FileNotFoundError(f"{source}: neither an audio folder nor an MSP-Podcast root")
    if not parts["train"]:
        raise ValueError(f"{source}: no audio files found to train on")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables, errors = {}, []
    for part, files in parts.items():
        rows = []
        for file in progress_bar(files, desc=f"prepare {part}", unit="file", disable=not progress):
            try:
                rows.append((file, audio_duration(file)))
            except AudioError as error:
                errors.append((file, error.problem))
        tables[part] = pd.DataFrame(rows, columns=["file", "duration"])
        with atomic_path(out_dir / f"{part}.csv") as tmp:
            tables[part].to_csv(tmp, index=False)
    tables["errors"] = pd.DataFrame(errors, columns=["file", "reason"])
    with atomic_path(out_dir / "errors.csv") as tmp:
        tables["errors"].to_csv(tmp, index=False)
    return tables
