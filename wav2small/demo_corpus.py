"""A small synthetic speech corpus made with espeak-ng, in the MSP-Podcast layout, for smoke runs.

Its "ratings" are rule-based proxies computed from the synthesis settings (faster, louder, higher
speech -> higher arousal, ...), NOT human judgements: they only let the recipe exercise the
human-label evaluation path end to end.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from .atomic import atomic_path, write_json
from .audio import load_audio
from .contract import SAMPLING_RATE

SENTENCES = {
    1: [  # pleasant
        "What a wonderful surprise, thank you so much!",
        "I am really happy that we finally made it.",
        "This is the best news I have heard all year.",
        "We won the game and everyone is celebrating.",
        "I love the way the morning light fills the room.",
        "Your kindness made my whole week better.",
    ],
    0: [  # neutral
        "The meeting starts at ten in the second room.",
        "Please put the files on the shelf by the door.",
        "The train to the city leaves every twenty minutes.",
        "I will check the numbers and send them later.",
        "The report has four chapters and an appendix.",
        "Turn left at the bridge and walk for two blocks.",
    ],
    -1: [  # unpleasant
        "I cannot believe you lost it again, this is terrible.",
        "Nothing works and I am tired of all these problems.",
        "That was the worst evening of my entire life.",
        "Stop shouting at me, I have had enough of this.",
        "The news about the accident made everyone miserable.",
        "I am afraid we have failed and it is all my fault.",
    ],
}
VOICES = {  # espeak-ng voice variant -> gender
    "m1": "Male", "m2": "Male", "m3": "Male", "m4": "Male", "m5": "Male", "m7": "Male",
    "f1": "Female", "f2": "Female", "f3": "Female", "f4": "Female", "f5": "Female", "klatt": "Male",
}
LANGUAGES = ("en", "en-us", "en-gb-x-rp")
CAVEAT = ("Demo corpus: synthetic espeak-ng speech whose ratings are rule-based proxies of the synthesis settings, "
          "not human labels. It shows the pipeline working; its numbers say nothing about emotion.")


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise OSError(
            "espeak-ng not found: the demo corpus is synthesised with it. Install it with "
            "`apt-get install espeak-ng` (Debian/Ubuntu), `dnf install espeak-ng` or `brew install espeak-ng`."
        )
    return binary


def _proxy_ratings(rate, pitch, amplitude, polarity, rng) -> tuple[float, float, float]:
    """Rule-based 1..7 proxies: arousal from rate, loudness and pitch; dominance from loudness and
    low pitch; valence from the sentence's polarity and pitch. Noise keeps them from being exact."""
    r, p, a = (rate - 80) / 180, pitch / 99, (amplitude - 40) / 80  # each 0..1
    arousal = 1 + 6 * np.clip(0.45 * r + 0.35 * a + 0.2 * p + rng.normal(0, 0.05), 0, 1)
    dominance = 1 + 6 * np.clip(0.6 * a + 0.4 * (1 - p) + rng.normal(0, 0.05), 0, 1)
    valence = 1 + 6 * np.clip(0.5 + 0.35 * polarity + 0.15 * (p - 0.5) + rng.normal(0, 0.05), 0, 1)
    return round(float(arousal), 2), round(float(dominance), 2), round(float(valence), 2)


def make_demo_corpus(directory, *, n_clips: int = 200, seed: int = 0, progress: bool = True) -> Path:
    """Synthesise ``n_clips`` utterances into ``directory`` in the MSP-Podcast layout.

    Writes ``Audios/demo_XXXXX.wav`` (16 kHz mono PCM), ``Labels/labels_consensus.csv`` with
    FileName, EmoClass, EmoAct, EmoVal, EmoDom (proxy ratings on 1..7), SpkrID, Gender, Split_Set,
    and ``corpus.json`` (its name and the proxy-rating caveat, which evaluation reports repeat).
    Speakers (voice x language) are split speaker-independently into Train, Development and Test1.
    Files already present are kept, so an interrupted run can simply be started again.
    """
    from .progress import progress_bar

    binary = espeak_binary()
    directory = Path(directory)
    (directory / "Audios").mkdir(parents=True, exist_ok=True)
    (directory / "Labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    speakers = [(lang, voice) for lang in LANGUAGES for voice in VOICES]
    split_of = {}
    for i, speaker in enumerate(rng.permutation(len(speakers))):
        split_of[speakers[speaker]] = "Test1" if i % 6 == 0 else "Development" if i % 6 == 1 else "Train"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in progress_bar(range(n_clips), desc="demo corpus", unit="clip", disable=not progress):
            lang, voice = speakers[rng.integers(len(speakers))]
            polarity = int(rng.integers(-1, 2))
            text = SENTENCES[polarity][rng.integers(len(SENTENCES[polarity]))]
            rate, pitch, amplitude = int(rng.integers(80, 261)), int(rng.integers(0, 100)), int(rng.integers(40, 121))
            name = f"demo_{i:05d}.wav"
            target = directory / "Audios" / name
            if not target.exists():
                raw = Path(tmp) / "raw.wav"
                command = [binary, "-v", f"{lang}+{voice}", "-s", str(rate), "-p", str(pitch), "-a", str(amplitude), "-w", str(raw), text]
                subprocess.run(command, check=True, capture_output=True, timeout=60)
                with atomic_path(target) as partial:
                    sf.write(partial, load_audio(raw), SAMPLING_RATE, format="WAV", subtype="PCM_16")
            arousal, dominance, valence = _proxy_ratings(rate, pitch, amplitude, polarity, rng)
            emotion = {1: "H", 0: "N", -1: "S"}[polarity]
            rows.append((name, emotion, arousal, valence, dominance, f"{lang}+{voice}", VOICES[voice], split_of[(lang, voice)]))
    # reports name the corpus and carry the caveat (see corpora.ABOUT_FILE)
    write_json(directory / "corpus.json", {"name": "wav2small demo corpus", "reference": "proxy ratings", "caveat": CAVEAT})
    columns = ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]
    with atomic_path(directory / "Labels" / "labels_consensus.csv") as tmp:
        pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)
    return directory
