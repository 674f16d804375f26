"""Corpus readers: MSP-Podcast splits and rating mapping, CSV corpora, label stores, clear errors."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wav2small.corpora import corpus_kind, csv_corpus, msp_podcast, open_corpus, ratings_to_unit
from wav2small.testing import MSP_SPLITS


def test_msp_split_filtering_and_mapping(make_msp_podcast):
    root = make_msp_podcast()
    labels = pd.read_csv(root / "Labels" / "labels_consensus.csv")
    for split in ("Train", "Development", "Test1", "Test2"):
        corpus = msp_podcast(root, split=split)
        expected = labels[labels["Split_Set"] == split]
        assert len(corpus) == MSP_SPLITS[split]
        assert [Path(f).name for f in corpus.clips["file"]] == list(expected["FileName"])
        assert all(Path(f).is_absolute() and Path(f).exists() for f in corpus.clips["file"])
        # EmoAct -> arousal, EmoDom -> dominance, EmoVal -> valence, each by (y - 1) / 6
        np.testing.assert_allclose(corpus.clips["arousal"], (expected["EmoAct"] - 1) / 6)
        np.testing.assert_allclose(corpus.clips["dominance"], (expected["EmoDom"] - 1) / 6)
        np.testing.assert_allclose(corpus.clips["valence"], (expected["EmoVal"] - 1) / 6)
        assert list(corpus.clips["gender"]) == list(expected["Gender"])
        assert list(corpus.clips["speaker"]) == [str(s) for s in expected["SpkrID"]]
        assert corpus.info["split"] == split and corpus.info["n_unrated"] == 0


def test_ratings_mapping_endpoints():
    np.testing.assert_allclose(ratings_to_unit([1, 4, 7], scale="1..7"), [0, 0.5, 1])
    np.testing.assert_allclose(ratings_to_unit([0.2, 1.1], scale="0..1"), [0.2, 1.1])
    with pytest.raises(ValueError, match="outside the declared 1..7"):
        ratings_to_unit([0.5, 0.7], scale="1..7")
    with pytest.raises(ValueError, match="look like 1..7 ratings"):
        ratings_to_unit([2.0, 5.5, 1.0], scale="0..1")


def test_msp_test3_rows_without_ratings_are_left_out_and_counted(make_msp_podcast):
    corpus = msp_podcast(make_msp_podcast(), split="Test3")
    assert len(corpus) == 0
    assert corpus.info["n_unrated"] == MSP_SPLITS["Test3"] == corpus.info["n_in_split"]


def test_msp_unrated_rows_on_request_and_unknown_speakers(make_msp_podcast):
    root = make_msp_podcast(splits={"Test1": 4, "Test3": 3})
    label_file = root / "Labels" / "labels_consensus.csv"
    table = pd.read_csv(label_file)
    table["SpkrID"] = table["SpkrID"].astype(str)
    table.loc[0, "SpkrID"] = "Unknown"
    table.to_csv(label_file, index=False)
    speakers = msp_podcast(root, split="Test1").clips["speaker"]
    assert speakers.isna().tolist() == [True, False, False, False]
    listed = msp_podcast(root, split="Test3", rated_only=False)
    assert len(listed) == 3 and listed.clips["arousal"].isna().all() and listed.info["n_unrated"] == 3


def test_msp_release_version_from_folder_or_flag(make_msp_podcast, tmp_path):
    root = make_msp_podcast(version="1.12", splits={"Test1": 2})
    assert msp_podcast(root).info["version"] == "1.12"
    assert msp_podcast(root, version="2.0").info["version"] == "2.0"
    renamed = root.rename(tmp_path / "podcast")
    assert msp_podcast(renamed).info["version"] == "unknown"


def test_msp_missing_label_file_or_columns(make_msp_podcast, tmp_path):
    with pytest.raises(FileNotFoundError, match="labels_consensus.csv"):
        msp_podcast(tmp_path)
    root = make_msp_podcast(splits={"Test1": 2})
    label_file = root / "Labels" / "labels_consensus.csv"
    pd.read_csv(label_file).drop(columns=["EmoDom"]).to_csv(label_file, index=False)
    with pytest.raises(ValueError, match="EmoDom"):
        msp_podcast(root)
    with pytest.raises(ValueError, match="split"):
        msp_podcast(root, split="test1")


def test_csv_corpus_relative_paths_custom_columns_and_scale(make_audio_dir, tmp_path):
    audio = make_audio_dir(3, seconds=0.3)
    table = pd.DataFrame({"path": [f"audio/clip{i:04d}.wav" for i in range(3)], "act": [1, 4, 7.0],
                          "dom": [2, 3, 4.0], "val": [7, np.nan, 1.0], "gender": ["f", "m", "f"]})
    table.to_csv(tmp_path / "ratings.csv", index=False)
    corpus = csv_corpus(tmp_path / "ratings.csv", file_column="path", scale="1..7",
                        columns={"arousal": "act", "dominance": "dom", "valence": "val"})
    assert [Path(f) for f in corpus.clips["file"]] == [audio / "clip0000.wav", audio / "clip0002.wav"]
    np.testing.assert_allclose(corpus.clips[["arousal", "dominance", "valence"]], [[0, 1 / 6, 1], [1, 0.5, 0]])
    assert list(corpus.clips["gender"]) == ["f", "f"] and corpus.info["n_unrated"] == 1
    with pytest.raises(ValueError, match="act"):
        csv_corpus(tmp_path / "ratings.csv", file_column="path")  # default column names are absent
    with pytest.raises(ValueError, match="look like 1..7"):
        csv_corpus(tmp_path / "ratings.csv", file_column="path", columns={"arousal": "act", "dominance": "dom", "valence": "val"})


def test_corpus_kind_detection(make_msp_podcast, tmp_path):
    root = make_msp_podcast(splits={"Test1": 2})
    assert corpus_kind(root) == "msp-podcast"
    assert corpus_kind(root / "Labels" / "labels_consensus.csv") == "csv"
    assert corpus_kind(root / "Audios") == "label-store"
    with pytest.raises(FileNotFoundError, match="no such corpus"):
        open_corpus(tmp_path / "nowhere")
    assert len(open_corpus(root, split="Test1")) == 2
