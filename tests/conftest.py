"""Fixtures around wav2small.testing: speech-like audio and corpora written to temporary folders."""

from __future__ import annotations

import pytest

from wav2small.testing import MSP_SPLITS, write_audio_dir, write_msp_podcast


@pytest.fixture
def make_audio_dir(tmp_path):
    """Factory: ``make_audio_dir(count, seconds=(1, 3), sr=16000, subdir="audio", seed=0)`` writes that
    many speech-like WAVs of random durations into ``tmp_path/subdir`` and returns the folder."""

    def make(count: int, seconds=(1.0, 3.0), sr: int = 16000, subdir: str = "audio", seed: int = 0):
        return write_audio_dir(tmp_path / subdir, count, seconds=seconds, sr=sr, seed=seed)

    return make


@pytest.fixture
def make_msp_podcast(tmp_path):
    """Factory: ``make_msp_podcast(version="1.11", splits=MSP_SPLITS, seconds=(0.4, 1.0))`` writes an
    MSP-Podcast-shaped corpus under ``tmp_path`` and returns its root."""

    def make(version: str = "1.11", splits: dict = MSP_SPLITS, seconds=(0.4, 1.0)):
        return write_msp_podcast(tmp_path, version=version, splits=splits, seconds=seconds)

    return make
