"""The label store and the labelling loop: columns, crops, errors, views the teacher really heard,
resume after a real SIGKILL, and two processes sharing the work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from wav2small.audio import read_segment
from wav2small.labels import crop_positions, label_audio, read_inputs
from wav2small.store import LabelStore
from wav2small.teachers import Teacher, load_teacher
from wav2small.testing import save_tiny_teacher
from wav2small.cli import main
from wav2small.options import ViewSettings
from wav2small.views import render_view, synthetic_room_response

SR = 16000
LABELS = ["arousal", "dominance", "valence"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {"dawn": save_tiny_teacher(root / "dawn", "dawn", seed=0), "odyssey": save_tiny_teacher(root / "odyssey", "odyssey", seed=1)}


def expected_clips(folder, crop_dur):
    """(file, first sample, last sample) of every clip the store should hold, from the files' lengths."""
    clips = set()
    for path in sorted(folder.rglob("*.wav")):
        if path.stat().st_size < 100:
            continue  # a broken file
        samples = sf.info(path).frames
        clips |= {(str(path), a, b) for a, b in crop_positions(0, samples, int(crop_dur * SR))}
    return clips


def keys(frame, with_view=True):
    first = np.round(frame["start"].to_numpy() * SR).astype(int)
    last = np.round(frame["end"].to_numpy() * SR).astype(int)
    columns = [frame["file"].tolist(), first.tolist(), last.tolist()] + ([frame["view"].tolist()] if with_view else [])
    return list(zip(*columns))


def test_crop_positions():
    assert crop_positions(0, 10, 16) == [(0, 10)]  # shorter than a crop: whole
    assert crop_positions(0, 20, 16) == [(2, 18)]  # one crop, centred
    assert crop_positions(100, 140, 16) == [(100, 116), (112, 128), (124, 140)]  # 2.5 crops: 3, spread from start to end
    assert crop_positions(0, 60, 16) == [(0, 16), (15, 31), (29, 45), (44, 60)]


def test_store_columns_crops_errors_and_metadata(tiny, make_audio_dir):
    audio = make_audio_dir(3, seconds=(1.2, 2.6))
    sf.write(audio / "short.wav", np.random.default_rng(0).normal(0, 0.1, 5000).astype(np.float32), SR)
    sf.write(audio / "tiny.wav", np.zeros(200, np.float32), SR)  # fewer samples than the teacher's 400
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = audio.parent / "labels"
    teacher = f"{tiny['dawn']}+{tiny['odyssey']}"
    summary = label_audio(audio, teacher, out, crop_dur=1.0, views=1, batch_size=4, shard_size=2, progress=False)

    store = LabelStore(out)
    frame = store.read()
    members = [f"{m}.{label}" for m in ("dawn", "odyssey") for label in LABELS]
    assert list(frame.columns) == ["file", "start", "end", "view", "params", *LABELS, *members]
    assert sorted(set(keys(frame, with_view=False))) == sorted(expected_clips(audio, 1.0) - {(str(audio / "tiny.wav"), 0, 200)})
    assert summary["clips"] == len(frame) // 2 and summary["rows"] == len(frame)
    assert all(sorted(views) == [0, 1] for views in frame.groupby(["file", "start"])["view"].apply(list))
    assert all(os.path.isabs(f) for f in frame["file"])
    short = frame[frame["file"] == str(audio / "short.wav")]
    assert short["start"].tolist() == [0.0, 0.0] and short["end"].tolist() == [5000 / SR] * 2  # labelled whole
    long = frame[frame["file"] != str(audio / "short.wav")]
    assert np.allclose(long["end"] - long["start"], 1.0)
    # combined = equal-weight mean of the members, never clipped
    for label in LABELS:
        assert np.allclose(frame[label], (frame[f"dawn.{label}"] + frame[f"odyssey.{label}"]) / 2, atol=1e-6)
    assert all(json.loads(p)["samples"] in (16000, 5000) for p in frame["params"])

    errors = store.errors()
    assert sorted(errors["file"]) == [str(audio / "broken.wav"), str(audio / "tiny.wav")]
    assert errors.set_index("file").loc[str(audio / "tiny.wav"), "reason"].startswith("too short")

    meta = store.metadata
    assert meta["teacher"]["weights"] == [0.5, 0.5] and meta["members"] == ["dawn", "odyssey"]
    assert [m["revision"] for m in meta["teacher"]["members"]] == ["local", "local"]
    assert meta["crop_dur"] == 1.0 and meta["views"] == 1 and meta["sampling_rate"] == SR
    assert meta["package_version"] and meta["view_settings"]["gain_db"] == [-12.0, 6.0]


def test_whole_short_files_get_the_label_of_the_file_alone(tiny, make_audio_dir):
    audio = make_audio_dir(5, seconds=(0.3, 0.9))  # all shorter than a crop, all of different lengths
    out = audio.parent / "labels"
    label_audio(audio, tiny["dawn"], out, crop_dur=1.0, batch_size=4, progress=False)
    frame = LabelStore(out).read()
    teacher = load_teacher(tiny["dawn"])
    assert len(frame) == 5
    with torch.inference_mode():
        for row in frame.itertuples():
            alone = teacher(torch.from_numpy(read_segment(row.file))[None])[0].numpy()
            assert np.allclose([row.arousal, row.dominance, row.valence], alone, atol=1e-5)
            assert np.allclose([getattr(row, "_9"), getattr(row, "_10"), getattr(row, "_11")], alone, atol=1e-5)


class RecordingTeacher(Teacher):
    """A teacher that keeps every waveform it is given."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.name, self.heard = inner, inner.name, []

    @property
    def min_samples(self):
        return self.inner.min_samples

    def forward(self, x):
        self.heard.extend(x.cpu().numpy().copy())
        return self.inner(x)


@pytest.mark.parametrize("kinds", ["mix and noise", "mixup and reverberation"])
def test_views_rebuilt_from_the_store_are_what_the_teacher_heard(tiny, make_audio_dir, tmp_path, kinds):
    audio = make_audio_dir(4, seconds=(1.5, 2.5))
    noise, rirs = tmp_path / "noise", tmp_path / "rirs"
    noise.mkdir()
    rirs.mkdir()
    sf.write(noise / "n.wav", np.random.default_rng(1).normal(0, 0.05, 20000).astype(np.float32), SR)
    sf.write(rirs / "room.wav", synthetic_room_response(0.3, 6.0, 1).astype(np.float32), SR)
    options, settings = {}, None
    if kinds == "mixup and reverberation":
        options = {"rir_dir": rirs}
        settings = ViewSettings(mixup_prob=0.7, reverb_prob=0.7)
    teacher = RecordingTeacher(load_teacher(tiny["odyssey"]))
    label_audio(audio, teacher, tmp_path / "labels", crop_dur=1.0, views=3, noise_dir=noise, batch_size=5, progress=False,
                view_settings=settings, **options)
    frame = LabelStore(tmp_path / "labels").read()
    heard = sorted(x.tobytes() for x in teacher.heard)
    rebuilt = [render_view(p) for p in frame["params"]]
    assert sorted(x.tobytes() for x in rebuilt) == heard  # bit for bit, each heard once
    with torch.inference_mode():
        again = teacher.inner(torch.from_numpy(np.stack(rebuilt))).numpy()
    assert np.allclose(again, frame[LABELS].to_numpy(), atol=1e-5)
    params = [json.loads(p) for p in frame.loc[frame["view"] > 0, "params"]]
    assert any("mix" in p for p in params) and any("noise" in p for p in params)
    if settings is not None:
        assert any("mixup" in p.get("mix", {}) for p in params) and any(p.get("reverb", {}).get("file") for p in params)
        metadata = LabelStore(tmp_path / "labels").metadata
        assert metadata["rir_files"] == [str(rirs / "room.wav")] and metadata["view_settings"]["reverb_prob"] == 0.7


def test_empty_noise_or_room_folders_fail_before_any_work(tiny, make_audio_dir, tmp_path):
    audio = make_audio_dir(2, seconds=1.0)
    empty, broken = tmp_path / "empty", tmp_path / "broken"
    empty.mkdir()
    broken.mkdir()
    (broken / "hiss.wav").write_bytes(b"RIFF....WAVEfmt not really")
    (empty / "notes.txt").write_text("no audio here")
    store = tmp_path / "labels"
    reverb = ViewSettings(reverb_prob=0.5)
    for options, problem in [({"noise_dir": empty}, "folder of noise holds no audio files"),
                             ({"noise_dir": broken}, "folder of noise holds 1 audio files, none readable \\(e.g. hiss.wav"),
                             ({"noise_dir": tmp_path / "missing"}, "folder of noise is not a directory"),
                             ({"rir_dir": empty, "view_settings": reverb}, "room impulse responses holds no audio files"),
                             ({"rir_dir": audio}, "no view is reverberated")]:
        with pytest.raises(ValueError, match=problem):
            label_audio(audio, tiny["dawn"], store, views=2, progress=False, **options)
        assert not (store / "metadata.json").exists()
    assert main(["label", str(audio), "--teacher", str(tiny["dawn"]), "--out", str(store), "--views", "1",
                 "--rir-dir", str(empty), "--reverb-prob", "1", "--quiet"]) == 2
    assert not (store / "metadata.json").exists()


def test_manifest_with_segments_and_relative_paths(tiny, make_audio_dir):
    audio = make_audio_dir(2, seconds=3.0)
    manifest = audio.parent / "manifest.csv"
    pd.DataFrame({"file": ["audio/clip0000.wav", "audio/clip0001.wav", "audio/clip0000.wav"],
                  "start": [0.5, np.nan, 0.5], "end": [1.5, np.nan, 1.5]}).to_csv(manifest, index=False)
    assert read_inputs(manifest) == [(str(audio / "clip0000.wav"), 0.5, 1.5), (str(audio / "clip0001.wav"), None, None)]
    label_audio(manifest, tiny["dawn"], audio.parent / "labels", crop_dur=1.0, progress=False)
    frame = LabelStore(audio.parent / "labels").read()
    first = frame[frame["file"] == str(audio / "clip0000.wav")]
    assert first[["start", "end"]].values.tolist() == [[0.5, 1.5]]
    assert len(frame[frame["file"] == str(audio / "clip0001.wav")]) == 3


def test_resume_skips_done_clips_and_refuses_other_settings(tiny, make_audio_dir):
    audio = make_audio_dir(3, seconds=(1.0, 2.0))
    out = audio.parent / "labels"
    first = label_audio(audio, tiny["dawn"], out, crop_dur=1.0, progress=False)
    before = LabelStore(out).read()
    again = label_audio(audio, tiny["dawn"], out, crop_dur=1.0, progress=False)
    assert first["clips"] > 0 and again["clips"] == 0 and again["skipped"] == first["clips"]
    pd.testing.assert_frame_equal(LabelStore(out).read(), before)
    with pytest.raises(ValueError, match="crop_dur"):
        label_audio(audio, tiny["dawn"], out, crop_dur=2.0, progress=False)


def test_rank_and_world_size_come_from_torchrun_environment(tiny, make_audio_dir, monkeypatch):
    audio = make_audio_dir(5, seconds=0.8)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    summary = label_audio(audio, tiny["dawn"], audio.parent / "labels", crop_dur=1.0, progress=False)
    assert (summary["rank"], summary["world"]) == (1, 2)
    files = sorted(LabelStore(audio.parent / "labels").read()["file"])
    assert files == [str(audio / f"clip{i:04d}.wav") for i in (1, 3)]
    assert all(p.name.startswith("labels-r0001-") for p in LabelStore(audio.parent / "labels").shards())
    with pytest.raises(ValueError, match="i/N"):
        label_audio(audio, tiny["dawn"], audio.parent / "other", shard="2")


def cli(*args):
    return [sys.executable, "-m", "wav2small", "label", *map(str, args), "--quiet"]


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_labels_every_clip_once(tiny, make_audio_dir):
    audio = make_audio_dir(16, seconds=(1.2, 2.4), seed=3)
    out = audio.parent / "labels"
    args = [audio, "--teacher", tiny["dawn"], "--out", out, "--crop-dur", 1, "--views", 1, "--batch-size", 2, "--shard-size", 1]
    job = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not list(out.glob("labels-*.parquet")) and job.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(np.random.default_rng().uniform(0, 0.1))  # somewhere in the middle of the job, maybe mid-write
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, job.stderr.read().decode()[-2000:]
    expected = expected_clips(audio, 1.0)
    assert len(LabelStore(out).read()) < 2 * len(expected)  # killed before the end

    # resume in this process (the same settings as the command line's)
    resumed = label_audio(audio, str(tiny["dawn"]), out, crop_dur=1, views=1, batch_size=2, shard_size=1, progress=False)
    assert resumed["skipped"] > 0 and resumed["clips"] > 0
    frame = LabelStore(out).read()
    rows = keys(frame)
    assert len(rows) == len(set(rows))  # nothing labelled twice
    assert set(keys(frame, with_view=False)) == expected  # nothing lost
    assert sorted(frame["view"].value_counts().tolist()) == [len(expected)] * 2
    assert not frame[LABELS].isna().any().any()


@pytest.mark.slow
def test_two_processes_share_the_input_without_overlap(tiny, make_audio_dir):
    audio = make_audio_dir(6, seconds=(0.6, 2.2), seed=4)
    out = audio.parent / "labels"
    # rank 1 in a second process, rank 0 in this one, at the same time
    other = subprocess.Popen(cli(audio, "--teacher", tiny["dawn"], "--out", out, "--crop-dur", 1, "--shard-size", 2, "--shard", "1/2"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    label_audio(audio, str(tiny["dawn"]), out, crop_dur=1, shard_size=2, shard="0/2", progress=False)
    assert other.wait(timeout=120) == 0, other.stderr.read().decode()[-2000:]
    store = LabelStore(out)
    by_rank = {rank: pd.concat([pd.read_parquet(p) for p in store.shards() if p.name.startswith(f"labels-r{rank:04d}-")])
               for rank in (0, 1)}
    files = [set(by_rank[rank]["file"]) for rank in (0, 1)]
    assert files[0] and files[1] and not files[0] & files[1]  # disjoint slices
    rows = keys(store.read())
    assert len(rows) == len(set(rows)) and set(keys(store.read(), with_view=False)) == expected_clips(audio, 1.0)
