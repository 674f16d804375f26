"""The label store as data from disk: one writing job per shard slot, and rows that cannot make a
reader open files outside the folders the store was labelled from."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wav2small.audio import AudioError
from wav2small.labels import label_audio
from wav2small.locks import LockedError
from wav2small.store import LabelStore, is_inside, outermost
from wav2small.testing import save_tiny_teacher


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return save_tiny_teacher(tmp_path_factory.mktemp("teacher") / "dawn", "dawn", seed=0)


def _hold_lock(store, rank: int, world: int) -> subprocess.Popen:
    """Another process holding ``store``'s lock for a slot, until it is killed."""
    code = (f"import time; from wav2small.store import LabelStore\n"
            f"with LabelStore({str(store)!r}).lock({rank}, {world}):\n    print('held', flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_job_on_a_slot_fails_at_once_and_a_dead_holder_blocks_nothing(teacher, make_audio_dir, tmp_path):
    audio = make_audio_dir(3, seconds=(1.0, 1.5))
    store = tmp_path / "store"
    holder = _hold_lock(store, 0, 1)  # a job over the whole input, running
    try:
        started = time.perf_counter()
        with pytest.raises(LockedError, match=rf"label store {store} is in use by another process \(pid {holder.pid} "):
            label_audio(audio, teacher, store, crop_dur=1.0, progress=False)
        assert time.perf_counter() - started < 10  # at once, not after labelling
        with pytest.raises(LockedError):  # a slice of the input would overlap it too
            label_audio(audio, teacher, store, crop_dur=1.0, shard="1/2", progress=False)
    finally:
        holder.kill()  # SIGKILL: no chance to clean up
        holder.wait()
    summary = label_audio(audio, teacher, store, crop_dur=1.0, progress=False)
    assert summary["clips"] > 0 and summary["store_rows"] == summary["rows"]


def test_shards_of_one_job_run_side_by_side_but_a_slot_takes_one_job(teacher, make_audio_dir, tmp_path):
    audio = make_audio_dir(4, seconds=(1.0, 1.5))
    store = tmp_path / "store"
    holder = _hold_lock(store, 0, 2)  # slot 0 of 2, running
    try:
        other = label_audio(audio, teacher, store, crop_dur=1.0, shard="1/2", progress=False)
        assert other["clips"] > 0
        with pytest.raises(LockedError, match="shard slot 0/2"):
            label_audio(audio, teacher, store, crop_dur=1.0, shard="0/2", progress=False)
        with pytest.raises(LockedError):  # the whole input would overlap slot 0
            label_audio(audio, teacher, store, crop_dur=1.0, progress=False)
    finally:
        holder.kill()
        holder.wait()
    label_audio(audio, teacher, store, crop_dur=1.0, shard="0/2", progress=False)
    frame = LabelStore(store).read()
    assert not frame.duplicated(["file", "start", "end", "view"]).any()


def test_paths_stay_inside_their_roots():
    assert outermost(["/a/b", "/a", "/c/d", "/c/d/e", "/cd"]) == ["/a", "/c/d", "/cd"]
    assert is_inside("/a/b/x.wav", ["/a"]) and not is_inside("/a/../etc/passwd", ["/a"]) and not is_inside("/ab/x.wav", ["/a"])


def test_store_rows_cannot_point_outside_the_store_folders_unless_allowed(teacher, make_audio_dir, tmp_path):
    audio = make_audio_dir(2, seconds=(1.0, 1.2))
    store = tmp_path / "store"
    label_audio(audio, teacher, store, crop_dur=1.0, progress=False)
    assert LabelStore(store).audio_roots == [str(audio)]
    good = json.loads(LabelStore(store).read()["params"][0])
    outside = tmp_path / "elsewhere" / "secret.wav"
    for params in ({**good, "file": str(outside)}, {**good, "file": str(audio / ".." / "elsewhere" / "x.wav")},
                   {**good, "noise": {"file": str(outside), "start": 0.0, "end": 1.0, "gain": 0.1}}):
        with pytest.raises(AudioError, match="outside the folders the store was labelled from") as info:
            LabelStore(store).check_view(params)
        assert "elsewhere" in info.value.source
        assert LabelStore(store, allow_outside_paths=True).check_view(params)["file"]  # the user's explicit choice


@pytest.mark.parametrize("change, words", [
    ({"samples": 10**10}, "not the crop's length"),
    ({"end": float("inf")}, "finite"),
    ({"start": -1.0}, "finite"),
    ({"gain": float("nan")}, "not a finite number"),
    ({"noise": {"colour": "purple", "seed": 1, "gain": 0.1}}, "colour"),
])
def test_implausible_view_parameters_are_refused_before_anything_is_allocated(tmp_path, change, words):
    from wav2small.views import render_view

    params = {"file": str(tmp_path / "a.wav"), "start": 0.0, "end": 1.0, "samples": 16000, **change}
    with pytest.raises(AudioError, match=words):
        render_view(json.dumps(params), source=lambda *_: pytest.fail("nothing may be read"))


def test_a_resumed_job_with_more_folders_records_them(teacher, make_audio_dir, tmp_path):
    first, second = make_audio_dir(2, subdir="a"), make_audio_dir(2, subdir="b", seed=1)
    store = tmp_path / "store"
    label_audio(first, teacher, store, crop_dur=1.0, progress=False)
    label_audio([first, second], teacher, store, crop_dur=1.0, progress=False)
    assert LabelStore(store).audio_roots == sorted([str(first), str(second)])
    frame = LabelStore(store).read()
    assert {str(Path(f).parent) for f in frame["file"]} == {str(first), str(second)}
    assert all(problem == "" for problem in LabelStore(store).view_problems(frame["params"]))
