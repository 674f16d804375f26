"""Shared test data: speech-like synthetic audio written to temporary folders."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def synth_speech(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A speech-like clip: a harmonic voice with a wandering pitch contour, a syllable-rate
    loudness envelope and breath noise. Its seed sets pitch, rate, brightness and loudness, so
    clips differ the way emotional speech does (higher, faster, louder, noisier)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0_base = rng.uniform(90, 260)
    contour = f0_base * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(contour) / sr
    tilt = rng.uniform(0.5, 1.5)
    voice = sum(np.sin(k * phase) / k**tilt for k in range(1, 12) if k * f0_base * 1.2 < sr / 2)
    syllables = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 7) * t + rng.uniform(0, 6)))
    noise = rng.normal(0, rng.uniform(0.02, 0.3), n)
    x = (voice * syllables**2 + noise) * rng.uniform(0.05, 0.4)
    return (x / max(1.0, np.abs(x).max() / 0.99)).astype(np.float32)


@pytest.fixture
def make_audio_dir(tmp_path):
    """Factory: ``make_audio_dir(count, seconds=(1, 3), sr=16000, subdir="audio")`` writes that many
    speech-like WAVs of random durations and returns the folder."""

    def make(count: int, seconds=(1.0, 3.0), sr: int = SR, subdir: str = "audio", seed: int = 0):
        folder = tmp_path / subdir
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for i in range(count):
            duration = rng.uniform(*seconds) if isinstance(seconds, tuple) else seconds
            sf.write(folder / f"clip{i:04d}.wav", synth_speech(duration, seed * 100003 + i, sr), sr, subtype="PCM_16")
        return folder

    return make


MSP_SPLITS = {"Train": 6, "Development": 6, "Test1": 24, "Test2": 6, "Test3": 4}


@pytest.fixture
def make_msp_podcast(tmp_path):
    """Factory: ``make_msp_podcast(version="1.11", splits=MSP_SPLITS)`` writes an MSP-Podcast-shaped
    corpus (``MSP-PODCAST-<version>/Audios/*.wav``, ``Labels/labels_consensus.csv`` with every
    column, 1..7 ratings, 3 speakers, both genders, Test3 without ratings) and returns its root."""

    def make(version: str = "1.11", splits: dict = MSP_SPLITS, seconds=(0.4, 1.0)):
        import pandas as pd

        root = tmp_path / f"MSP-PODCAST-{version}"
        (root / "Audios").mkdir(parents=True)
        (root / "Labels").mkdir()
        rng = np.random.default_rng(7)
        rows = []
        for split, count in splits.items():
            for _ in range(count):
                i = len(rows)
                name = f"MSP-PODCAST_{i // 10:04d}_{i % 10:04d}.wav"
                sf.write(root / "Audios" / name, synth_speech(rng.uniform(*seconds), 1000 + i), SR, subtype="PCM_16")
                act, val, dom = (np.nan,) * 3 if split == "Test3" else np.round(rng.uniform(1, 7, 3), 1)
                rows.append({"FileName": name, "EmoClass": "N", "EmoAct": act, "EmoVal": val, "EmoDom": dom,
                             "SpkrID": i % 3, "Gender": ("Male", "Female")[i % 2], "Split_Set": split})
        pd.DataFrame(rows).to_csv(root / "Labels" / "labels_consensus.csv", index=False)
        return root

    return make
