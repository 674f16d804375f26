"""Locks between processes: one labelling job per label-store slot, one training per run folder,
one builder per audio cache.

A lock is ``flock(2)`` on a lock file beside what it guards. The kernel drops it when the holding
process ends, however it ends (SIGKILL and power loss included), so a lock left by a dead job never
blocks the next one. Where ``fcntl`` does not exist (Windows) locking is skipped.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class LockedError(OSError):
    """What a lock guards is in use by another live process; the message says which and by whom."""


@contextlib.contextmanager
def file_lock(path, *, what: str, advice: str, shared: bool = False, wait: bool = False) -> Iterator[None]:
    """Hold the lock file ``path`` (created) while the block runs.

    Args:
        path: the lock file.
        what: what is locked, for the message ("the label store labels/msp").
        advice: what to do instead, for the message.
        shared: take a shared lock (many holders) instead of an exclusive one.
        wait: block until the lock is free instead of raising.

    Raises:
        LockedError: the lock is held by another process (and ``wait`` is False). An exclusive
            holder's pid, host and start time are in the message.
    """
    if fcntl is None:
        yield
        return
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise LockedError(f"{what} is in use by another process ({holder or 'a job'}); {advice}") from None
        if not shared:  # say who holds it, for the message another process may print
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
