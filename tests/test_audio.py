"""The one audio loader: formats, mixing, resampling, scaling, and a clear error for bad input."""

import numpy as np
import pytest
import soundfile as sf

from wav2small import AudioError, load_audio
from wav2small.audio import audio_duration, check_waveform, find_audio_files, read_segment, resample
from wav2small.testing import AUDIO_FORMATS, synth_speech, write_bad_audio, write_truncated


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


@pytest.mark.parametrize("ext", AUDIO_FORMATS)
def test_truncated_files_of_every_format_are_refused_on_every_read_path(tmp_path, ext):
    kind, subtype = AUDIO_FORMATS[ext]
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, synth_speech(2.0, seed=0), 16000, format=kind, subtype=subtype)
    assert len(load_audio(whole)) > 30000 and len(read_segment(whole, 1.5, audio_duration(whole))) > 7000
    cut = write_truncated(tmp_path / f"cut.{ext}", seconds=2.0, keep=0.6)
    reads = {"load_audio": load_audio, "audio_duration": audio_duration,
             "a window before the cut": lambda path: read_segment(path, 0.0, 0.25)}
    for name, read in reads.items():
        with pytest.raises(AudioError, match="truncated") as info:
            read(cut)
        assert f"cut.{ext}" in str(info.value), name


def test_every_kind_of_bad_file_gets_one_error_naming_it(tmp_path):
    for name, words in write_bad_audio(tmp_path).items():
        with pytest.raises(AudioError) as info:
            load_audio(tmp_path / name)
        assert name in str(info.value) and words in info.value.problem, str(info.value)


def test_a_header_claiming_one_hertz_is_refused_before_anything_is_allocated(tmp_path):
    write_bad_audio(tmp_path)  # rate1hz.wav: 40 KB that would resample to 11 hours (3 GB)
    for read in (load_audio, audio_duration):
        with pytest.raises(AudioError, match="implausible sampling rate 1 Hz"):
            read(tmp_path / "rate1hz.wav")


def test_os_errors_become_audio_errors_naming_the_file(tmp_path, monkeypatch):
    import builtins

    path = tmp_path / "locked.wav"
    sf.write(path, synth_speech(1.0, seed=0), 16000, subtype="PCM_16")
    path.chmod(0)
    real_open = builtins.open

    def refuse(file, *args, **kwargs):  # what the OS says to a user without read permission (root is never refused)
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse)
    with pytest.raises(AudioError, match="permission denied") as info:
        load_audio(path)
    assert info.value.source == str(path)


def test_a_segment_must_lie_inside_the_file_and_be_finite(tmp_path):
    sf.write(tmp_path / "a.wav", synth_speech(1.0, seed=0, sr=44100), 44100, subtype="PCM_16")
    assert len(read_segment(tmp_path / "a.wav", 0.5, 1.0)) == 8000  # ends exactly at the end: fine
    with pytest.raises(AudioError, match="ends after the end of the file"):
        read_segment(tmp_path / "a.wav", 0.5, 1.5)  # would be zero-padded by whoever asked for 1 s
    for start, end in ((0.0, float("inf")), (float("nan"), 1.0), (-1.0, 0.5), (0.5, 0.5)):
        with pytest.raises(AudioError, match="finite"):
            read_segment(tmp_path / "a.wav", start, end)


def test_waveforms_of_any_float_type_are_read_and_absurd_amplitudes_refused():
    import torch

    x = synth_speech(0.5, seed=0)
    np.testing.assert_allclose(check_waveform(torch.from_numpy(x).to(torch.bfloat16)), x, atol=0.01)
    assert check_waveform(x * 3e4).dtype == np.float32  # int16 values passed as floats are fine
    with pytest.raises(AudioError, match="implausible amplitude"):
        check_waveform(x * 1e20)
    with pytest.raises(AudioError, match="not a waveform"):
        check_waveform([np.zeros(100), np.zeros(50)])


def test_find_audio_files_lists_unreadable_entries_so_they_are_reported(tmp_path):
    (tmp_path / "dangling.wav").symlink_to("nowhere.wav")
    (tmp_path / "loop.flac").symlink_to("loop.flac")
    sf.write(tmp_path / "good.wav", synth_speech(0.5, seed=0), 16000)
    assert [p.name for p in find_audio_files(tmp_path)] == ["dangling.wav", "good.wav", "loop.flac"]
