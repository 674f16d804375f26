"""Atomic writes: the folder holding a renamed file or folder is synced after the rename, a swap
killed between its two renames is undone, and leftovers of killed writes are swept."""

from __future__ import annotations

import os

from wav2small.atomic import atomic_directory, recover_directory, remove_temporaries, write_text


def _synced_folders(monkeypatch) -> list[str]:
    """Record the paths of the folders os.fsync is called on, in order."""
    synced, real_fsync = [], os.fsync

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isdir(path):
            synced.append(path)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_the_parent_folder_is_synced_after_each_rename(tmp_path, monkeypatch):
    synced = _synced_folders(monkeypatch)
    write_text(tmp_path / "a.json", "{}")
    assert synced == [str(tmp_path)]
    synced.clear()
    with atomic_directory(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("1")
    assert synced[-1] == str(tmp_path) and (tmp_path / "model" / "weights").read_text() == "1"
    synced.clear()
    with atomic_directory(tmp_path / "model") as tmp:  # replacing: still synced after the swap
        (tmp / "weights").write_text("2")
    assert synced[-1] == str(tmp_path) and (tmp_path / "model" / "weights").read_text() == "2"


def test_a_swap_killed_between_its_renames_is_undone_and_leftovers_are_swept(tmp_path):
    with atomic_directory(tmp_path / "best") as tmp:
        (tmp / "weights").write_text("old")
    os.rename(tmp_path / "best", tmp_path / ".best.old")  # killed after moving the old one aside
    (tmp_path / ".best.1a2b3c4d.tmp").mkdir()  # ... with the new one not yet in place
    (tmp_path / ".state.json.5e6f7a8b.tmp").write_text("{")
    assert recover_directory(tmp_path / "best")
    assert (tmp_path / "best" / "weights").read_text() == "old"
    assert [p.name for p in remove_temporaries(tmp_path)] == [".best.1a2b3c4d.tmp", ".state.json.5e6f7a8b.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    (tmp_path / ".best.old").mkdir()  # killed after the swap, before the old one was removed
    assert not recover_directory(tmp_path / "best") and not (tmp_path / ".best.old").exists()
