"""Reinforced views: parameters -> exactly the audio that was drawn, from disk or from any source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wav2small.audio import AudioError, read_segment
from wav2small.cache import build_audio_cache
from wav2small.views import (ViewSettings, check_view, generated_noise, make_view, render_view, synthetic_room_response,
                             view_files, view_seed)

SR = 16000
ALWAYS = ViewSettings(noise_prob=1.0, mix_prob=1.0)


@pytest.fixture
def corpus(make_audio_dir, tmp_path):
    audio = make_audio_dir(4, seconds=(2.0, 3.0))
    noise = tmp_path / "noise"
    noise.mkdir()
    rng = np.random.default_rng(5)
    sf.write(noise / "hum.wav", (0.1 * np.sin(np.arange(8000) / 10) + 0.01 * rng.normal(size=8000)).astype(np.float32), SR)
    sf.write(noise / "hiss.flac", (0.05 * rng.normal(size=40000)).astype(np.float32), SR)
    files = sorted(str(p) for p in audio.glob("*.wav"))
    return files, sorted(str(p) for p in noise.iterdir())


def clip_of(file, start=0.5, seconds=1.0):
    duration = len(sf.read(file)[0]) / SR
    return {"file": file, "start": start, "end": start + seconds, "region_start": 0.0, "region_end": duration}


def test_view_zero_is_the_clean_crop(corpus):
    files, _ = corpus
    params, audio = make_view(clip_of(files[0]), 0)
    assert (params["file"], params["start"], params["end"], params["samples"]) == (files[0], 0.5, 1.5, 16000)
    assert np.array_equal(audio, read_segment(files[0], 0.5, 1.5))
    assert np.array_equal(render_view(json.dumps(params)), audio)


@pytest.mark.parametrize("with_noise_files", [False, True])
def test_rebuilt_views_are_bit_identical(corpus, with_noise_files):
    files, noise = corpus
    partners = [(f, None, None) for f in files]
    kinds = set()
    for view in range(1, 9):
        params, audio = make_view(clip_of(files[1]), view, seed=3, settings=ALWAYS, partners=partners,
                                  noise_files=noise if with_noise_files else ())
        stored = json.loads(json.dumps(params))  # what a label store keeps
        rebuilt = render_view(stored)
        assert rebuilt.dtype == np.float32 and rebuilt.shape == (16000,)
        assert np.array_equal(rebuilt, audio)  # bit for bit
        assert stored["mix"]["file"] != files[1]
        kinds.add("file" if "file" in stored["noise"] else stored["noise"]["colour"])
        assert not np.array_equal(audio, read_segment(files[1], 0.5, 1.5))
    assert kinds <= ({"file"} if with_noise_files else {"white", "pink", "brown"})


def test_render_reads_every_stretch_through_the_source(corpus):
    files, noise = corpus
    params, audio = make_view(clip_of(files[2]), 4, settings=ALWAYS, partners=[(f, None, None) for f in files], noise_files=noise)
    cache = {}
    for part in (params, params["mix"], params["noise"]):
        cache[(part["file"], part["start"], part["end"])] = read_segment(part["file"], part["start"], part["end"])
    asked = []

    def source(file, start, end):
        asked.append(file)
        return cache[(file, start, end)]

    assert np.array_equal(render_view(params, source), audio)
    assert sorted(asked) == sorted([params["file"], params["mix"]["file"], params["noise"]["file"]])


def test_gains_and_snrs_are_what_the_params_say(corpus):
    files, _ = corpus
    settings = ViewSettings(noise_prob=1.0, mix_prob=0.0, noise_snr_db=(10.0, 10.0), gain_db=(-6.0, -6.0), shift=0.0)
    params, audio = make_view(clip_of(files[3]), 1, settings=settings)
    clean = read_segment(files[3], 0.5, 1.5) * np.float32(params["gain"])
    assert params["start"] == 0.5 and params["gain"] == pytest.approx(10 ** (-6 / 20))
    noise = audio - clean
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.05)


def test_views_depend_only_on_seed_clip_and_index(corpus):
    files, _ = corpus
    clip = clip_of(files[0], start=1.0)
    first, audio = make_view(clip, 2, seed=7, settings=ALWAYS)
    again, audio_again = make_view(dict(clip), 2, seed=7, settings=ALWAYS)
    assert first == again and np.array_equal(audio, audio_again)
    assert make_view(clip, 3, seed=7, settings=ALWAYS)[0]["seed"] != first["seed"]
    assert make_view(clip, 2, seed=8, settings=ALWAYS)[0]["seed"] != first["seed"]
    assert first["seed"] == view_seed(7, files[0], 16000, 2)
    # the crop moves at most half its length and stays inside the file
    for view in range(1, 12):
        params, _ = make_view(clip, view, seed=7)
        assert 0.5 <= params["start"] <= 1.5 and params["end"] - params["start"] == pytest.approx(1.0)


def test_generated_noise_is_reproducible_and_roughly_unit_variance():
    for colour in ("white", "pink", "brown"):
        a, b = generated_noise(colour, 11, 48000), generated_noise(colour, 11, 48000)
        assert np.array_equal(a, b) and a.dtype == np.float32
        assert 0.3 < np.std(a) < 3.0
    with pytest.raises(ValueError, match="colour"):
        generated_noise("purple", 0, 10)


def _level(x) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


@pytest.mark.parametrize("gain_db", [(-12.0, 6.0), (0.0, 0.0)])
def test_mixup_views_are_rebuilt_bit_exactly_at_the_crop_level(corpus, gain_db):
    files, _ = corpus
    settings = ViewSettings(mixup_prob=1.0, noise_prob=0.0, gain_db=gain_db, shift=0.0)
    ratios = []
    for view in range(1, 7):
        params, audio = make_view(clip_of(files[0]), view, seed=1, settings=settings, partners=[(f, None, None) for f in files])
        stored = json.loads(json.dumps(params))
        assert np.array_equal(render_view(stored), audio)
        mix = stored["mix"]
        assert mix["file"] != files[0] and 0.5 <= mix["mixup"] <= 1 and "snr_db" not in mix
        crop = read_segment(files[0], 0.5, 1.5)
        partner = read_segment(mix["file"], mix["start"], mix["end"])
        # lam * crop + (1 - lam) * partner brought to the crop's level, the mixture at the crop's level times the view's gain
        assert mix["gain"] / stored["gain"] == pytest.approx((1 - mix["mixup"]) / mix["mixup"] * np.sqrt(_level(crop) / _level(partner)))
        gain = 10 ** (np.random.default_rng(stored["seed"]).uniform(*gain_db) / 20)  # without shift the gain is the first draw
        assert _level(audio) == pytest.approx(_level(crop) * gain**2, rel=1e-4)
        ratios.append(mix["mixup"])
    assert len(set(ratios)) == len(ratios)
    if gain_db == (0.0, 0.0):  # gain-free: the level of a view is the level of its crop
        assert all(abs(10 * np.log10(_level(make_view(clip_of(files[1]), v, settings=settings, partners=[(f, None, None) for f in files])[1])
                                     / _level(read_segment(files[1], 0.5, 1.5)))) < 0.01 for v in range(1, 4))


def test_synthetic_reverberation_is_rebuilt_bit_exactly_and_has_its_rt60_and_drr(corpus):
    files, _ = corpus
    settings = ViewSettings(reverb_prob=1.0, noise_prob=0.0, mix_prob=0.0, gain_db=(0.0, 0.0), shift=0.0)
    params, audio = make_view(clip_of(files[2]), 1, seed=4, settings=settings)
    stored = json.loads(json.dumps(params))
    reverb = stored["reverb"]
    assert 0.2 <= reverb["rt60"] <= 0.8 and 0.0 <= reverb["drr_db"] <= 12.0 and isinstance(reverb["seed"], int)
    assert np.array_equal(render_view(stored), audio)
    dry = read_segment(files[2], 0.5, 1.5)
    assert not np.allclose(audio, dry, atol=1e-3) and abs(10 * np.log10(_level(audio) / _level(dry))) < 3

    response = synthetic_room_response(0.5, 6.0, 3)
    assert response[0] == 1.0 and np.array_equal(response, synthetic_room_response(0.5, 6.0, 3))
    assert 10 * np.log10(1.0 / np.sum(response[1:] ** 2)) == pytest.approx(6.0)
    # Schroeder's backward integral falls 60 dB in rt60 (fitted between -5 and -35 dB, as T30 is)
    decay = 10 * np.log10(np.cumsum(response[1:][::-1] ** 2)[::-1] / np.sum(response[1:] ** 2))
    t = np.arange(len(decay)) / SR
    fit = (decay <= -5) & (decay >= -35)
    slope = np.polyfit(t[fit], decay[fit], 1)[0]
    assert -60 / slope == pytest.approx(0.5, rel=0.1)


def test_reverberation_from_a_folder_of_room_responses(corpus, tmp_path):
    files, _ = corpus
    rirs = tmp_path / "rirs"
    rirs.mkdir()
    sf.write(rirs / "hall.wav", synthetic_room_response(1.2, 0.0, 1).astype(np.float32) * 0.5, SR)  # 1.2 s, level arbitrary
    sf.write(rirs / "long.flac", np.r_[np.zeros(10), synthetic_room_response(2.0, 3.0, 2)[: 3 * SR]].astype(np.float32) * 0.2, 48000)
    settings = ViewSettings(reverb_prob=1.0, noise_prob=0.0, mix_prob=0.0)
    seen = set()
    for view in range(1, 25):  # the file is drawn per view from a seed of the clip's path: 24 draws miss one of two files with odds 2^-23
        params, audio = make_view(clip_of(files[3]), view, settings=settings, rir_files=sorted(str(p) for p in rirs.iterdir()))
        reverb = params["reverb"]
        assert reverb["start"] == 0.0 and reverb["end"] <= 2.0 and reverb["file"] in view_files(params)
        assert np.array_equal(render_view(json.loads(json.dumps(params))), audio)
        seen.add(Path(reverb["file"]).name)
    assert seen == {"hall.wav", "long.flac"}


def test_every_new_kind_replays_exactly_from_the_packed_audio_cache(corpus, tmp_path):
    files, noise = corpus
    rirs = tmp_path / "rirs"
    rirs.mkdir()
    sf.write(rirs / "room.wav", synthetic_room_response(0.4, 3.0, 5).astype(np.float32), SR)
    partners = [(f, None, None) for f in files]
    kinds = {"mixup": ViewSettings(mixup_prob=1.0), "reverb": ViewSettings(reverb_prob=1.0, mix_prob=1.0),
             "both": ViewSettings(mixup_prob=1.0, reverb_prob=1.0, noise_prob=1.0)}
    params = []
    for name, settings in kinds.items():
        for view in range(1, 4):
            params.append(make_view(clip_of(files[view]), view, settings=settings, partners=partners, noise_files=noise,
                                    rir_files=[str(rirs / "room.wav")] if name != "reverb" else ())[0])
    stored = [json.dumps(p) for p in params]
    cache = build_audio_cache(stored, tmp_path / "cache", progress=False)
    for p in stored:
        assert np.array_equal(render_view(p, source=cache.read), render_view(p))
    assert cache.misses == 0
    assert any("mixup" in p.get("mix", {}) for p in params) and any("file" in p.get("reverb", {}) for p in params)
    assert any("rt60" in p.get("reverb", {}) for p in params)


def test_kinds_left_off_keep_the_settings_and_draws_of_earlier_stores(corpus):
    assert set(ViewSettings().to_dict()) == {"gain_db", "shift", "noise_prob", "noise_snr_db", "mix_prob", "mix_snr_db"}
    assert {"mixup_prob", "mixup_alpha"} <= set(ViewSettings(mixup_prob=0.5).to_dict())
    files, _ = corpus
    clip, partners = clip_of(files[0]), [(f, None, None) for f in files]
    for view in range(1, 5):  # a kind with probability 0 draws nothing: the other kinds' draws do not move
        plain = make_view(clip, view, settings=ViewSettings(), partners=partners)[0]
        assert make_view(clip, view, settings=ViewSettings(mixup_alpha=2.0, rt60=(0.3, 0.3)), partners=partners)[0] == plain


@pytest.mark.parametrize("params, problem", [
    ({"reverb": {"rt60": 0.0, "drr_db": 3.0, "seed": 1}}, "rt60"),
    ({"reverb": {"rt60": 0.5, "drr_db": float("nan"), "seed": 1}}, "rt60"),
    ({"reverb": {"file": "/x/rir.wav", "start": 0.0, "end": 5.0}}, "longer than"),
])
def test_implausible_room_parameters_are_refused(params, problem):
    with pytest.raises(AudioError, match=problem):
        check_view({"file": "/x/a.wav", "start": 0.0, "end": 1.0, "samples": 16000, **params})
    with pytest.raises(ValueError, match="reverb|rt60"):
        ViewSettings(rt60=(0.0, 0.5))
