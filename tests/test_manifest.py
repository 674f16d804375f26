"""Stage 0: manifests from an audio folder and from an MSP-Podcast root; unreadable files set aside."""

import pandas as pd
import pytest

from wav2small.cli import main


def test_folder_manifest_lists_durations_and_sets_bad_files_aside(make_audio_dir, tmp_path, capsys):
    folder = make_audio_dir(5, seconds=2.0)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVE")
    assert main(["prepare", str(folder), "--out", str(tmp_path / "m.csv")]) == 0
    manifest = pd.read_csv(tmp_path / "m.csv")
    errors = pd.read_csv(tmp_path / "m.errors.csv")
    assert len(manifest) == 5 and manifest["duration"].tolist() == pytest.approx([2.0] * 5)
    assert errors["file"].str.endswith("broken.wav").tolist() == [True]
    assert "1 unreadable" in capsys.readouterr().out


def test_msp_podcast_manifest_takes_the_chosen_splits(make_audio_dir, tmp_path):
    root = tmp_path / "MSP-PODCAST-1.11"
    audio = make_audio_dir(6, seconds=1.0, subdir="MSP-PODCAST-1.11/Audios")
    (root / "Labels").mkdir()
    names = sorted(p.name for p in audio.iterdir())
    splits = ["Train", "Train", "Development", "Test1", "Test2", "Test3"]
    pd.DataFrame({"FileName": names, "EmoClass": "N", "EmoAct": 4.0, "EmoVal": 4.0, "EmoDom": 4.0,
                  "SpkrID": 1, "Gender": "Female", "Split_Set": splits}).to_csv(root / "Labels" / "labels_consensus.csv", index=False)
    assert main(["prepare", str(root), "--splits", "Train,Development", "--out", str(tmp_path / "m.csv")]) == 0
    manifest = pd.read_csv(tmp_path / "m.csv")
    assert sorted(manifest["file"].map(lambda f: f.rsplit("/", 1)[-1])) == names[:3]


def test_a_source_without_audio_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "m.csv")]) == 2
    assert "no audio files" in capsys.readouterr().err
