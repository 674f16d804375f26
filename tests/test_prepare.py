"""Stage 0: train/test manifests from an audio folder and from an MSP-Podcast root; bad files set aside."""

import pandas as pd
import pytest

from wav2small.cli import main


def test_folder_is_split_deterministically_and_bad_files_set_aside(make_audio_dir, tmp_path, capsys):
    folder = make_audio_dir(40, seconds=1.0)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVE")
    assert main(["prepare", str(folder), "--out", str(tmp_path / "m"), "--test-fraction", "0.25"]) == 0
    train, test = pd.read_csv(tmp_path / "m" / "train.csv"), pd.read_csv(tmp_path / "m" / "test.csv")
    errors = pd.read_csv(tmp_path / "m" / "errors.csv")
    assert len(train) + len(test) == 40 and 3 <= len(test) <= 20
    assert not set(train["file"]) & set(test["file"])
    assert train["duration"].tolist() == pytest.approx([1.0] * len(train))
    assert errors["file"].str.endswith("broken.wav").tolist() == [True]
    assert "1 unreadable" in capsys.readouterr().out
    assert main(["prepare", str(folder), "--out", str(tmp_path / "again"), "--test-fraction", "0.25"]) == 0
    assert pd.read_csv(tmp_path / "again" / "test.csv")["file"].tolist() == test["file"].tolist()


def test_msp_podcast_takes_the_chosen_splits(make_audio_dir, tmp_path):
    root = tmp_path / "MSP-PODCAST-1.11"
    audio = make_audio_dir(6, seconds=1.0, subdir="MSP-PODCAST-1.11/Audios")
    (root / "Labels").mkdir()
    names = sorted(p.name for p in audio.iterdir())
    splits = ["Train", "Train", "Development", "Test1", "Test2", "Test3"]
    pd.DataFrame({"FileName": names, "EmoClass": "N", "EmoAct": 4.0, "EmoVal": 4.0, "EmoDom": 4.0,
                  "SpkrID": 1, "Gender": "Female", "Split_Set": splits}).to_csv(root / "Labels" / "labels_consensus.csv", index=False)
    assert main(["prepare", str(root), "--splits", "Train,Development", "--test-split", "Test3", "--out", str(tmp_path / "m")]) == 0
    name = lambda f: f.rsplit("/", 1)[-1]
    assert sorted(pd.read_csv(tmp_path / "m" / "train.csv")["file"].map(name)) == names[:3]
    assert pd.read_csv(tmp_path / "m" / "test.csv")["file"].map(name).tolist() == [names[5]]  # unrated audio is still audio


def test_a_source_without_audio_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "m")]) == 2
    assert "no audio files" in capsys.readouterr().err
