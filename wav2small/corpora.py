"""Evaluation corpora as one shape: a table of clips with A/D/V truth on the 0..1 scale, plus how
to read each clip's audio. Readers for MSP-Podcast, any CSV, and a teacher label store.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .audio import load_audio, read_segment
from .contract import LABELS

MSP_SPLITS = ("Train", "Development", "Test1", "Test2", "Test3")
MSP_LABEL_FILE = Path("Labels") / "labels_consensus.csv"
#: MSP-Podcast rating columns, in the package's order arousal, dominance, valence.
MSP_COLUMNS = {"arousal": "EmoAct", "dominance": "EmoDom", "valence": "EmoVal"}
SCALES = ("0..1", "1..7")
#: A description a corpus folder in the MSP-Podcast layout may carry: {"name", "reference", "caveat"}
#: (the demo corpus writes one, so that reports name it and say that its ratings are proxies).
ABOUT_FILE = "corpus.json"
#: What a report repeats from a label store's metadata (its noise file list can be long).
STORE_KEYS = ("teacher_spec", "teacher", "members", "crop_dur", "views", "seed", "precision", "package_version", "created")


@dataclass
class Corpus:
    """Clips to score and their truth.

    ``clips`` has one row per clip with columns ``file`` (absolute path), ``start``/``end``
    (seconds; NaN = the whole file), ``arousal``, ``dominance``, ``valence`` (0..1) and, when the
    corpus has them, ``gender`` and ``speaker``. ``read(row)`` returns the clip's 16 kHz float32
    audio. ``info`` holds what a report must say about the corpus (name, version, split, rows
    left out and why, ``reference``: what the truth is, "human ratings" or "teacher", and a
    ``caveat`` the report must carry, if any).
    """

    name: str
    clips: pd.DataFrame
    info: dict = field(default_factory=dict)
    read: Callable[[pd.Series], np.ndarray] = None

    def __post_init__(self):
        if self.read is None:
            self.read = read_clip

    def __len__(self) -> int:
        return len(self.clips)


def read_clip(row) -> np.ndarray:
    """Audio of a clip row: the whole file, or ``[start, end)`` seconds when both are given."""
    if pd.isna(row.get("start")) or pd.isna(row.get("end")):
        return load_audio(row["file"])
    return read_segment(row["file"], float(row["start"]), float(row["end"]))


def ratings_to_unit(values, *, scale: str, source="ratings"):
    """Map ratings on ``scale`` ("1..7", MSP-Podcast style, or "0..1") to 0..1 by (y - 1) / 6.

    Raises ValueError when the values cannot be on the declared scale: CCC is not invariant to
    rescaling one side, so a wrong scale would silently spoil every number.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown rating scale {scale!r}; use one of {', '.join(SCALES)}")
    values = np.asarray(values, dtype=np.float64)
    rated = values[~np.isnan(values)]
    if scale == "1..7":
        if rated.size and (rated.min() < 1 or rated.max() > 7):
            raise ValueError(f"{source}: values {rated.min():g}..{rated.max():g} lie outside the declared 1..7 scale")
        return (values - 1.0) / 6.0
    # Model outputs used as truth are unclipped and may leave 0..1; only a column that never goes
    # below 1 and reaches well above it looks like 1..7 ratings.
    if rated.size and rated.min() >= 1 and rated.max() > 1.5:
        raise ValueError(f"{source}: values {rated.min():g}..{rated.max():g} on the declared 0..1 scale look like 1..7 ratings (scale '1..7')")
    return values


def _drop_unrated(clips: pd.DataFrame, info: dict) -> pd.DataFrame:
    unrated = clips[list(LABELS)].isna().any(axis=1)
    info["n_unrated"] = int(unrated.sum())
    return clips[~unrated].reset_index(drop=True)


def msp_release(root) -> str | None:
    """The release version in an MSP-Podcast folder name (``MSP-PODCAST-1.11`` -> ``"1.11"``)."""
    match = re.search(r"msp[-_ ]?podcast[-_ ]?v?(\d+(?:\.\d+)*)", Path(root).resolve().name, re.IGNORECASE)
    return match.group(1) if match else None


def msp_podcast(root, *, split: str = "Test1", version: str | None = None, rated_only: bool = True) -> Corpus:
    """MSP-Podcast: ``root/Labels/labels_consensus.csv`` rows of ``split``, audio in ``root/Audios``.

    Ratings (1..7 means of EmoAct, EmoDom, EmoVal) map to 0..1 by (y - 1) / 6. Rows without
    ratings (Test3 hides them) are counted in ``info["n_unrated"]`` and left out, unless
    ``rated_only`` is False (to list audio for a teacher to label). ``version`` defaults to the
    one in the folder name; the report records it. Speaker "Unknown" counts as no speaker.

    Example (it needs files or a download, so it is not run as a doctest)::

        corpus = msp_podcast("MSP-PODCAST-1.11", split="Test1")
    """
    root = Path(root).expanduser()
    label_file = root / MSP_LABEL_FILE
    if not label_file.is_file():
        raise FileNotFoundError(f"{label_file}: MSP-Podcast label file not found (expected <root>/{MSP_LABEL_FILE.as_posix()})")
    if split not in MSP_SPLITS:
        raise ValueError(f"unknown MSP-Podcast split {split!r}; use one of {', '.join(MSP_SPLITS)}")
    table = pd.read_csv(label_file)
    required = ["FileName", "Split_Set", *MSP_COLUMNS.values()]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{label_file}: missing column(s) {', '.join(missing)} (found {', '.join(map(str, table.columns))})")
    table = table[table["Split_Set"] == split]
    about = json.loads((root / ABOUT_FILE).read_text()) if (root / ABOUT_FILE).is_file() else {}
    if about:  # a corpus made in this layout (the demo corpus), not a release of MSP-Podcast
        info = {"corpus": about.get("name", root.name), "version": version, "reference": about.get("reference", "human ratings")}
        if about.get("caveat"):
            info["caveat"] = about["caveat"]
    else:
        info = {"corpus": "MSP-Podcast", "version": version or msp_release(root) or "unknown", "reference": "human ratings"}
    info.update({"split": split, "labels": str(label_file), "scale": "1..7", "n_in_split": len(table)})
    audios = (root / "Audios").resolve()
    clips = pd.DataFrame({
        # absolute, not resolved: a symlink loop among the files must cost that file, not the corpus
        "file": [os.path.abspath(audios / name) for name in table["FileName"].astype(str)],
        "start": np.nan,
        "end": np.nan,
        **{dim: ratings_to_unit(table[col], scale="1..7", source=f"{label_file} {col}") for dim, col in MSP_COLUMNS.items()},
    })
    if "Gender" in table.columns:
        clips["gender"] = table["Gender"].to_numpy()
    if "SpkrID" in table.columns:
        # "Unknown" is many speakers, not one: leave those clips out of the per-speaker breakdown
        known = table["SpkrID"].notna() & (table["SpkrID"].astype(str) != "Unknown")
        clips["speaker"] = table["SpkrID"].astype(str).where(known).to_numpy()
    name = " ".join(str(part) for part in (info["corpus"], info["version"], split) if part)
    if not rated_only:
        info["n_unrated"] = int(clips[list(LABELS)].isna().any(axis=1).sum())
        return Corpus(name, clips, info)
    return Corpus(name, _drop_unrated(clips, info), info)


def csv_corpus(
    path,
    *,
    file_column: str = "file",
    columns: dict | None = None,
    scale: str = "0..1",
    gender_column: str | None = "gender",
    speaker_column: str | None = "speaker",
) -> Corpus:
    """Any corpus as a CSV: a file column (paths relative to the CSV or absolute) and one rating
    column per dimension.

    Args:
        path: the CSV file.
        file_column: column with the audio paths.
        columns: rating column of each dimension, e.g. ``{"arousal": "act", "dominance": "dom",
            "valence": "val"}`` (default: columns named arousal, dominance, valence).
        scale: "0..1" (used as is) or "1..7" (mapped by (y - 1) / 6).
        gender_column, speaker_column: used for breakdowns when present.

    Optional ``start`` and ``end`` columns (seconds) restrict a row to that stretch of the file, so
    the CSV written by ``wav2small predict`` is a corpus as it is. Rows with a missing rating are
    left out and counted in ``info["n_unrated"]``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: corpus CSV not found")
    columns = {dim: dim for dim in LABELS} | dict(columns or {})
    table = pd.read_csv(path)
    missing = [c for c in [file_column, *(columns[d] for d in LABELS)] if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(map(str, table.columns))})")
    base = path.resolve().parent
    clips = pd.DataFrame({
        "file": [os.path.abspath(base / Path(f).expanduser()) for f in table[file_column].astype(str)],
        "start": table["start"].astype(float) if "start" in table.columns else np.nan,
        "end": table["end"].astype(float) if "end" in table.columns else np.nan,
        **{dim: ratings_to_unit(table[columns[dim]], scale=scale, source=f"{path} {columns[dim]}") for dim in LABELS},
    })
    for key, column in (("gender", gender_column), ("speaker", speaker_column)):
        if column and column in table.columns:
            clips[key] = table[column].astype(str).where(table[column].notna()).to_numpy()
    info = {"corpus": path.stem, "version": None, "split": None, "labels": str(path), "scale": scale, "n_in_split": len(table),
            "reference": "ratings"}
    return Corpus(path.stem, _drop_unrated(clips, info), info)


def label_store_corpus(root, *, target: str = "combined", views=None, source=None, allow_outside_paths: bool = False) -> Corpus:
    """A teacher label store as ground truth, to measure how faithfully a student follows its teacher.

    Args:
        root: the store folder written by ``wav2small label``.
        target: ``combined`` (the teacher ensemble's output) or the name of one member.
        views: view numbers to keep (0 = the clean crop); None keeps every row.
        source: optional ``source(file, start, end)`` serving clean audio (see ``views.render_view``).
        allow_outside_paths: read rows whose audio lies outside the folders the store was labelled
            from (by default such a row is an unreadable clip, as is one with implausible parameters).

    Each clip is rebuilt exactly as the teacher heard it, by ``views.render_view(row.params)``.
    """
    from .store import LabelStore
    from .views import render_view

    store = LabelStore(root, allow_outside_paths=allow_outside_paths)
    table = store.read()
    if target == "combined":
        names = {dim: dim for dim in LABELS}
    else:
        names = {dim: f"{target}.{dim}" for dim in LABELS}
        if names["arousal"] not in table.columns:
            members = sorted({c.split(".")[0] for c in table.columns if c.endswith(".arousal")})
            raise ValueError(f"{root}: label store has no member {target!r}; choose combined or one of {', '.join(members) or '(none)'}")
    if views is not None:
        table = table[table["view"].isin(list(views))]
    clips = pd.DataFrame({
        "file": table["file"].astype(str).to_numpy(),
        "start": table["start"].astype(float).to_numpy(),
        "end": table["end"].astype(float).to_numpy(),
        "view": table["view"].astype(int).to_numpy(),
        "params": table["params"].to_numpy(),
        **{dim: table[names[dim]].astype(float).to_numpy() for dim in LABELS},
    })
    described = store.metadata.get("teacher")
    teacher = target if target != "combined" else described.get("name", "?") if isinstance(described, dict) else str(described)
    info = {"corpus": "label store", "version": None, "split": None, "labels": str(Path(root)), "scale": "0..1",
            "reference": "teacher", "teacher_name": teacher,
            "target": target, "views": None if views is None else sorted(int(v) for v in views),
            "n_in_split": len(table), "store": {k: v for k, v in store.metadata.items() if k in STORE_KEYS}}

    def read(row):
        return render_view(store.check_view(row["params"]), source=source)

    # quoted: a teacher made here is often a folder named "teacher" ("outputs of teacher 'teacher'")
    return Corpus(f"label store {Path(root).name}, outputs of teacher '{teacher}'", _drop_unrated(clips, info), info, read)


def is_msp_podcast(root) -> bool:
    """Whether ``root`` is an MSP-Podcast folder (it holds Labels/labels_consensus.csv)."""
    return (Path(root).expanduser() / MSP_LABEL_FILE).is_file()


def corpus_kind(path) -> str:
    """What ``path`` holds: "csv" (a file), "msp-podcast" (a folder with Labels/labels_consensus.csv)
    or "label-store" (any other folder)."""
    path = Path(path).expanduser()
    if path.is_file():
        return "csv"
    if is_msp_podcast(path):
        return "msp-podcast"
    if path.is_dir():
        return "label-store"
    raise FileNotFoundError(f"{path}: no such corpus (give an MSP-Podcast folder, a CSV file or a label store folder)")


def open_corpus(path, *, kind: str = "auto", **options) -> Corpus:
    """Open ``path`` as a corpus of ``kind`` msp-podcast, csv, label-store, or auto (see
    :func:`corpus_kind`); ``options`` go to that reader."""
    readers = {"msp-podcast": msp_podcast, "csv": csv_corpus, "label-store": label_store_corpus}
    kind = corpus_kind(path) if kind == "auto" else kind
    if kind not in readers:
        raise ValueError(f"unknown corpus kind {kind!r}; use auto, {', '.join(readers)}")
    return readers[kind](path, **options)
