"""Stage 0 of distillation: the list of clips to label, from an audio folder or an MSP-Podcast root,
with each file's duration read from its header and unreadable files set aside with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .audio import AudioError, audio_duration, find_audio_files


def is_msp_podcast(root) -> bool:
    from .corpora import MSP_LABEL_FILE

    return (Path(root) / MSP_LABEL_FILE).is_file()


def write_manifest(source, out, *, splits=("Train",), progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``out`` (CSV: file, duration in seconds) for every readable audio file of ``source``.

    ``source`` is a folder of audio (searched recursively) or an MSP-Podcast root, whose ``splits``
    are taken (labels are not needed: the teacher writes them). Unreadable files go to
    ``<out stem>.errors.csv`` (file, reason). Returns (manifest, errors).
    """
    from tqdm.auto import tqdm

    source = Path(source)
    if is_msp_podcast(source):
        from .corpora import msp_podcast

        files = [f for split in splits for f in msp_podcast(source, split=split).clips["file"]]
    elif source.is_dir():
        files = [str(f.resolve()) for f in find_audio_files(source)]
    else:
        raise FileNotFoundError(f"{source}: neither an audio folder nor an MSP-Podcast root")
    if not files:
        raise ValueError(f"{source}: no audio files found")
    rows, errors = [], []
    for file in tqdm(files, desc="prepare", unit="file", disable=not progress):
        try:
            rows.append((file, audio_duration(file)))
        except AudioError as error:
            errors.append((file, error.problem))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = pd.DataFrame(rows, columns=["file", "duration"])
    failed = pd.DataFrame(errors, columns=["file", "reason"])
    manifest.to_csv(out, index=False)
    failed.to_csv(out.with_suffix(".errors.csv"), index=False)
    return manifest, failed
