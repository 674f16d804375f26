"""Test material: a tiny teacher fitted to a corpus's ratings learns them, is saved in the real
checkpoint format, and is the same for the same seed; the command says what it is and fails clearly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from wav2small.cli import main
from wav2small.corpora import csv_corpus
from wav2small.teachers import DawnTeacher, OdysseyTeacher, load_teacher
from wav2small.testing import FIT_FILE, acoustic_targets, fit_tiny_teacher, synth_speech, teacher_ccc, tiny_teacher

LABELS = ["arousal", "dominance", "valence"]


@pytest.fixture(scope="module")
def rated_corpus(tmp_path_factory):
    """48 speech-like clips of 1.2 s with ratings that are functions of the audio (brightness,
    pitch-like zero-crossing rate, noisiness), as a CSV corpus; the last 16 are held out."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("rated")
    clips = [synth_speech(1.2, seed) for seed in range(48)]
    for i, x in enumerate(clips):
        sf.write(root / f"c{i:02d}.wav", x, 16000, subtype="FLOAT")
    table = pd.DataFrame(acoustic_targets(clips), columns=LABELS)
    table.insert(0, "file", [f"c{i:02d}.wav" for i in range(48)])
    table.iloc[:32].to_csv(root / "fit.csv", index=False)
    table.iloc[32:].to_csv(root / "held.csv", index=False)
    return csv_corpus(root / "fit.csv"), csv_corpus(root / "held.csv")


@pytest.mark.parametrize("kind", ["dawn", "odyssey"])
def test_fitted_teacher_learns_the_ratings_and_loads_as_a_real_teacher(rated_corpus, tmp_path, kind):
    torch.set_num_threads(1)
    corpus, held_out = rated_corpus
    summary = fit_tiny_teacher(tmp_path / kind, corpus, kind=kind, held_out=held_out, steps=60, batch_size=8,
                               crop_dur=1.0, lr=3e-3)
    teacher = load_teacher(tmp_path / kind)
    assert isinstance(teacher, DawnTeacher if kind == "dawn" else OdysseyTeacher)
    assert teacher.licence.startswith("not applicable: a tiny dawn-format teacher fitted".replace("dawn", kind))
    assert set(load_file(str(tmp_path / kind / "model.safetensors"))) == set(tiny_teacher(kind).state_dict())

    audio = [corpus.read(row) for row in corpus.clips.to_dict("records")]
    truth = corpus.clips[LABELS].to_numpy()
    fitted = teacher_ccc(teacher, audio, truth)
    random = teacher_ccc(tiny_teacher(kind, seed=0).eval(), audio, truth)
    assert fitted.mean() > random.mean() + 0.3, (random, fitted)
    assert summary["train_ccc"]["mean"] == pytest.approx(fitted.mean(), abs=1e-5)  # the loaded teacher is the fitted one
    assert summary["held_out_ccc"]["mean"] > 0.2 and summary["clips"] == 32 and summary["held_out"]["clips"] == 16
    assert json.loads((tmp_path / kind / FIT_FILE).read_text())["held_out_ccc"] == summary["held_out_ccc"]


def test_the_same_seed_gives_the_same_teacher(rated_corpus, tmp_path):
    torch.set_num_threads(1)
    corpus, _ = rated_corpus
    options = dict(kind="odyssey", steps=4, batch_size=4, crop_dur=0.5)
    folders = [tmp_path / name for name in ("a", "b", "c")]
    for folder, seed in zip(folders, (3, 3, 4)):
        fit_tiny_teacher(folder, corpus, seed=seed, **options)
    a, b, c = (load_file(str(f / "model.safetensors")) for f in folders)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_command_fits_with_a_banner_and_refuses_unusable_corpora(rated_corpus, tmp_path, capsys):
    corpus, _ = rated_corpus
    csv = corpus.info["labels"]
    assert main(["make-tiny-teacher", str(tmp_path / "t"), "--kind", "both", "--fit", csv, "--steps", "2", "--crop-dur", "1"]) == 0
    err = capsys.readouterr().err
    assert "NOT an emotion model" in err and "held-out clips" in err
    assert load_teacher(f"{tmp_path / 't' / 'dawn'}+{tmp_path / 't' / 'odyssey'}").name == "dawn+odyssey"
    assert json.loads((tmp_path / "t" / "odyssey" / FIT_FILE).read_text())["kind"] == "odyssey"

    short = tmp_path / "short.csv"
    pd.DataFrame({"file": [str(tmp_path / "s.wav")], **{k: [0.5] for k in LABELS}}).to_csv(short, index=False)
    import soundfile as sf

    sf.write(tmp_path / "s.wav", np.zeros(4000, np.float32), 16000)
    assert main(["make-tiny-teacher", str(tmp_path / "u"), "--fit", str(short)]) == 2
    assert "rated clips of at least 1.5 s" in capsys.readouterr().err
