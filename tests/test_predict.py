"""predict() and `wav2small predict`: waveforms, files, windows, model resolution and bad files."""

import importlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from wav2small import AudioError, Wav2Small, predict
from wav2small.cli import main
from wav2small.predict import windows
from wav2small.testing import synth_speech

predict_module = importlib.import_module("wav2small.predict")  # the package re-exports the function under the same name


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Wav2Small().eval()


def direct(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(x, np.float32))[None]).numpy()[0]


def test_waveform_gives_three_values_equal_to_the_model(model):
    x = synth_speech(2.0, seed=0)
    out = predict(x, 16000, model=model)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, direct(model, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict(torch.from_numpy(x), model=model), out, rtol=1e-6)


def test_other_rates_are_resampled_before_the_model(model):
    x = synth_speech(1.0, seed=1, sr=8000)
    import librosa

    expected = direct(model, librosa.resample(x, orig_sr=8000, target_sr=16000, res_type="soxr_hq"))
    np.testing.assert_allclose(predict(x, 8000, model=model), expected, rtol=1e-4, atol=1e-5)


def test_windows_cover_the_audio_and_end_at_its_end():
    assert windows(10.0, None) == [(0.0, 10.0)]
    assert windows(3.0, 4.0) == [(0.0, 3.0)]
    w = windows(10.0, 4.0)
    assert w[0] == (0.0, 4.0) and w[1] == (2.0, 6.0) and w[-1][1] == 10.0
    assert windows(10.0, 4.0, 4.0) == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]


def test_windowed_waveform_gives_one_row_per_window(model):
    x = synth_speech(5.0, seed=2)
    out = predict(x, 16000, model=model, win_dur=2.0, hop_dur=1.0, batch_size=3)
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out[1], direct(model, x[16000:48000]), rtol=1e-5, atol=1e-6)


def test_files_give_a_frame_indexed_by_file_start_end(tmp_path, model):
    paths = []
    for i, seconds in enumerate([1.0, 2.5, 2.5]):
        paths.append(tmp_path / f"f{i}.wav")
        sf.write(paths[-1], synth_speech(seconds, seed=i), 16000, subtype="FLOAT")
    frame = predict([str(p) for p in paths], model=model, batch_size=2)
    assert list(frame.columns) == ["arousal", "dominance", "valence"]
    assert list(frame.index.names) == ["file", "start", "end"]
    assert frame.index[1] == (str(paths[1]), pd.Timedelta(0), pd.Timedelta(seconds=2.5))
    for i, p in enumerate(paths):
        np.testing.assert_allclose(frame.iloc[i].to_numpy(), direct(model, sf.read(p, dtype="float32")[0]), rtol=1e-5, atol=1e-6)


def test_long_files_are_read_window_by_window(tmp_path, model, monkeypatch):
    path = tmp_path / "long.wav"
    x = synth_speech(12.0, seed=4)
    sf.write(path, x, 16000, subtype="FLOAT")
    lengths = []
    real = predict_module.read_segment

    def spy(file, start, end):
        lengths.append(end - start)
        return real(file, start, end)

    monkeypatch.setattr(predict_module, "read_segment", spy)
    frame = predict(path, model=model, win_dur=3.0)
    assert len(frame) == 7 and max(lengths) <= 3.0
    starts = frame.index.get_level_values("start").total_seconds()
    assert list(starts) == [0, 1.5, 3, 4.5, 6, 7.5, 9]
    np.testing.assert_allclose(frame.iloc[2].to_numpy(), direct(model, x[48000:96000]), rtol=1e-5, atol=1e-6)


def test_model_from_a_saved_folder_matches_the_object(tmp_path, model):
    model.save_pretrained(tmp_path / "student")
    x = synth_speech(1.0, seed=5)
    np.testing.assert_allclose(predict(x, model=str(tmp_path / "student")), predict(x, model=model), rtol=1e-6)


def test_bad_files_raise_or_are_skipped_without_losing_the_rest(tmp_path, model):
    good = tmp_path / "good.wav"
    sf.write(good, synth_speech(1.0, seed=6), 16000)
    (tmp_path / "bad.wav").write_text("not audio")
    with pytest.raises(AudioError, match="bad.wav"):
        predict(tmp_path / "bad.wav", model=model)
    with pytest.warns(UserWarning, match="bad.wav"):
        frame = predict([tmp_path / "bad.wav", good, tmp_path / "gone.wav"], model=model, on_error="skip")
    assert list(frame.index.get_level_values("file")) == [str(good)]
    assert set(frame.attrs["failed"]) == {str(tmp_path / "bad.wav"), str(tmp_path / "gone.wav")}


def test_cli_writes_csv_and_reports_skipped_files(tmp_path, model, capsys):
    model.save_pretrained(tmp_path / "student")
    for i in range(2):
        sf.write(tmp_path / f"g{i}.wav", synth_speech(3.0, seed=i), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF")
    out = tmp_path / "adv.csv"
    files = [str(tmp_path / "g0.wav"), str(tmp_path / "broken.wav"), str(tmp_path / "g1.wav")]
    assert main(["predict", *files, "--model", str(tmp_path / "student"), "--win-dur", "2", "--output", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "start", "end", "arousal", "dominance", "valence"]
    assert len(table) == 4 and table["end"].max() == pytest.approx(3.0)
    assert "skipped" in capsys.readouterr().err


def test_cli_explains_a_missing_model_without_a_traceback(tmp_path, capsys):
    sf.write(tmp_path / "g.wav", synth_speech(1.0, seed=0), 16000)
    assert main(["predict", str(tmp_path / "g.wav"), "--model", str(tmp_path / "nope")]) == 2
    assert "no such model folder" in capsys.readouterr().err
