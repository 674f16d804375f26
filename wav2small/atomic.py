"""Atomic writes: a file or a folder appears whole, with its content on disk, or not at all.

Everything the package writes that a later run reads (label store shards and metadata, training
state, log and model folders, the audio cache, export files, manifests, reports) goes through
here: written under a temporary name beside the target, synced to disk, renamed over the target,
and the parent folder synced, so that a kill or a power cut leaves the old version or the new
one, never a part. Temporary names are ``.<name>.<random>.tmp``; a job sweeps its own leftovers
with :func:`remove_temporaries`, and :func:`recover_directory` undoes a replacement killed halfway.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator


def temporary_name(path) -> Path:
    """A fresh hidden name beside ``path`` for writing it aside: ``.<name>.<random>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def _old_name(path: Path) -> Path:
    """Where :func:`atomic_directory` keeps the version it replaces, for the moment of the swap."""
    return path.with_name(f".{path.name}.old")


def remove_temporaries(folder, name: str = "*") -> list[Path]:
    """Delete what writes killed midway left in ``folder``: temporary files and folders
    ``.<name>.<random>.tmp`` (``name`` may be a glob). Only for a folder no other live process
    writes into (hold its lock). Returns what was removed."""
    removed = sorted(Path(folder).glob(f".{name}.*.tmp"))
    for stale in removed:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return removed


def recover_directory(path) -> bool:
    """Finish a replacement by :func:`atomic_directory` that a kill interrupted: when ``path`` is
    missing but the old version moved aside is there (killed between the two renames), put the
    old version back; when both are there (killed before the old one was removed), remove it.
    Returns whether ``path`` was restored."""
    path = Path(path)
    old = _old_name(path)
    if not old.exists():
        return False
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        return False
    os.rename(old, path)
    fsync_directory(path.parent)
    return True


def fsync_directory(folder) -> None:
    """Make the entries of ``folder`` (a rename into it) durable. A no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Write a file aside and put it in place whole.

    Yields a temporary path beside ``path``; whatever is written there replaces ``path`` when the
    block ends without an error (and is removed when it raises).

    Example (it needs files or a download, so it is not run as a doctest)::

        with atomic_path("train.csv") as tmp:
            table.to_csv(tmp, index=False)
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode())


def write_json(path, data, **options) -> Path:
    """Write ``data`` as indented JSON (and a final newline) atomically; ``options`` go to :func:`json.dumps`."""
    return write_text(path, json.dumps(data, indent=2, **options) + "\n")


@contextlib.contextmanager
def atomic_directory(path, *, replace: bool = True) -> Iterator[Path]:
    """Write a folder aside and put it in place whole.

    Yields a temporary folder beside ``path``. When the block ends without an error, every file in
    it is synced and the folder becomes ``path``. With ``replace`` an existing ``path`` is
    replaced (moved aside, then removed); without, a ``path`` that exists by then (another
    process finished the same work first) is kept and this folder is discarded. An error removes
    the temporary folder.
    """
    path = Path(path)
    tmp = temporary_name(path)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                _fsync_file(Path(root) / name)
            fsync_directory(root)
        if replace:
            old = _old_name(path)
            shutil.rmtree(old, ignore_errors=True)
            if path.exists():
                os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, path)
            except OSError:  # someone else's folder is there already
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_directory(path.parent)
