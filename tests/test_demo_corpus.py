"""The espeak-ng demo corpus: MSP-Podcast layout, varied voices, readable audio, a clear error without espeak-ng."""

import json
import shutil

import pandas as pd
import pytest

from wav2small import load_audio
from wav2small.cli import main


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="needs the espeak-ng program (Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)")
def test_demo_corpus_has_the_msp_podcast_layout_and_varied_speech(tmp_path, capsys):
    assert main(["demo-corpus", str(tmp_path / "demo"), "--clips", "24"]) == 0
    labels = pd.read_csv(tmp_path / "demo" / "Labels" / "labels_consensus.csv")
    assert list(labels.columns) == ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]
    assert len(labels) == 24 and labels["SpkrID"].nunique() > 5
    assert labels[["EmoAct", "EmoVal", "EmoDom"]].stack().between(1, 7).all()
    assert set(labels["Split_Set"]) <= {"Train", "Development", "Test1"}
    assert labels.groupby("SpkrID")["Split_Set"].nunique().max() == 1  # speaker-independent splits
    durations = [len(load_audio(tmp_path / "demo" / "Audios" / f)) / 16000 for f in labels["FileName"]]
    assert min(durations) > 0.8 and max(durations) < 12
    assert "not human labels" in capsys.readouterr().out
    about = json.loads((tmp_path / "demo" / "corpus.json").read_text())  # what reports name it and repeat
    assert about["name"] == "wav2small demo corpus" and "not human labels" in about["caveat"]


def test_missing_espeak_ng_is_explained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["demo-corpus", str(tmp_path / "d"), "--clips", "2"]) == 2
    assert "apt-get install espeak-ng" in capsys.readouterr().err
