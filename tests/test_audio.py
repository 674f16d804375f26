"""The one audio loader: formats, mixing, resampling, scaling, and a clear error for bad input."""

import numpy as np
import pytest
import soundfile as sf

from wav2small import AudioError, load_audio
from wav2small.testing import synth_speech
from wav2small.audio import check_waveform, find_audio_files, read_segment, resample


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_formats_load_as_float32_mono_at_16k(tmp_path, ext, subtype):
    x = synth_speech(1.0, seed=0)
    sf.write(tmp_path / f"a.{ext}", x, 16000, subtype=subtype)
    y = load_audio(tmp_path / f"a.{ext}")
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 16000) < 2000  # lossy codecs add priming samples
    if ext in ("wav", "flac"):
        np.testing.assert_allclose(y, x, atol=2e-4)


def test_integer_pcm_is_scaled_to_unit_range(tmp_path):
    sf.write(tmp_path / "full.wav", np.array([32767, -32768, 0, 16384] * 100, dtype=np.int16), 16000, subtype="PCM_16")
    y = load_audio(tmp_path / "full.wav")
    assert y.max() == pytest.approx(32767 / 32768) and y.min() == -1.0
    assert y[3] == pytest.approx(0.5)


def test_stereo_is_mixed_down_and_other_rates_resampled(tmp_path):
    t = np.arange(44100) / 44100
    left, right = np.sin(2 * np.pi * 440 * t), np.zeros_like(t)
    sf.write(tmp_path / "st.wav", np.stack([left, right], 1).astype(np.float32), 44100, subtype="FLOAT")
    y = load_audio(tmp_path / "st.wav")
    assert len(y) == 16000
    assert np.abs(y).max() == pytest.approx(0.5, abs=0.01)  # mean of the channels
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)  # 1 Hz per bin at 16000 samples


def test_read_segment_decodes_only_the_stretch(tmp_path):
    x = synth_speech(3.0, seed=1)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_segment(tmp_path / "a.wav", 1.0, 2.5), x[16000:40000])


def _bad_files(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, synth_speech(1.0, seed=0), 16000, subtype="PCM_16")
    data = good.read_bytes()
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "truncated.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "header_only.wav").write_bytes(data[:30])
    (tmp_path / "text.wav").write_text("this is not audio\n" * 50)
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    sf.write(tmp_path / "short.wav", np.zeros(40, np.float32), 16000)
    nan = synth_speech(0.5, seed=0)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    return {
        "missing.wav": "not found",
        "empty.wav": "empty file",
        "truncated.wav": "truncated",
        "header_only.wav": "not a readable audio file",
        "text.wav": "not a readable audio file",
        "zero.wav": "zero-length",
        "short.wav": "too short",
        "nan.wav": "NaN",
    }


def test_bad_files_raise_one_error_type_naming_file_and_problem(tmp_path):
    for name, problem in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as info:
            load_audio(tmp_path / name)
        assert name in str(info.value) and problem in str(info.value), str(info.value)


def test_bad_waveforms_are_refused_with_the_reason():
    with pytest.raises(AudioError, match="mono"):
        check_waveform(np.zeros((2, 16000)))
    with pytest.raises(AudioError, match="too short"):
        check_waveform(np.zeros(63))
    with pytest.raises(AudioError, match="NaN or infinite"):
        check_waveform(np.array([0.0] * 100 + [np.inf]))
    with pytest.raises(AudioError, match="sampling rate"):
        resample(np.zeros(16000), 0)
    assert len(resample(np.zeros(8000, np.float32), 8000)) == 16000


def test_find_audio_files_is_recursive_and_sorted(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    for p in ["z.wav", "b/a.flac", "b/c/x.mp3", "notes.txt"]:
        (tmp_path / p).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)] == ["b/a.flac", "b/c/x.mp3", "z.wav"]
