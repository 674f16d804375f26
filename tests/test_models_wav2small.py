"""Wav2Small as published: front-end against numpy/librosa, shapes, counts, checkpoint round trip."""

import json

import librosa
import numpy as np
import pytest
import scipy.signal
import torch
from safetensors.torch import save_file

from wav2small import Wav2Small, create_student
from wav2small.frontend import LogMelFrontEnd
from wav2small.testing import synth_speech

PUBLISHED_KEYS = (
    [f"vgg7.l{i}.conv.weight" for i in range(1, 8)]
    + [f"vgg7.l{i}.norm.{k}" for i in range(1, 8) for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    + ["vgg7.lin.weight", "vgg7.lin.bias", "vgg7.sof.weight", "vgg7.sof.bias"]
    + ["vgg7.spectrogram_extractor.conv_real.weight", "vgg7.spectrogram_extractor.conv_imag.weight"]
    + ["vgg7.logmel_extractor.melW", "vgg7.logmel_extractor.amin", "adv.weight", "adv.bias"]
)


def numpy_logmel(x: np.ndarray, n_fft=64, hop=32, n_mels=26, sr=16000) -> np.ndarray:
    """Textbook log-mel: prenorm, frames without padding, periodic Hann, |rfft|^2, Slaney mel, 10 log10."""
    x = x.astype(np.float64)
    x = x - x.mean()
    x = x / np.sqrt(np.mean(x**2) + 1e-7)
    frames = librosa.util.frame(x, frame_length=n_fft, hop_length=hop)  # (n_fft, T)
    window = scipy.signal.get_window("hann", n_fft)  # periodic by default
    power = np.abs(np.fft.rfft(frames * window[:, None], axis=0)) ** 2  # (bins, T)
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=sr / 2).astype(np.float64) @ power
    return 10 * np.log10(np.maximum(mel, 1e-10)).T  # (T, n_mels)


def test_frontend_matches_numpy_librosa_within_a_thousandth_of_a_db():
    x = synth_speech(2.0, seed=3) + np.random.default_rng(0).normal(0, 0.01, 32000).astype(np.float32)
    ours = LogMelFrontEnd()(torch.from_numpy(x)[None]).numpy()[0, 0]
    reference = numpy_logmel(x)
    assert ours.shape == reference.shape == ((32000 - 64) // 32 + 1, 26)
    assert np.abs(ours - reference).max() < 1e-3
    assert np.all(ours[:, 0] == -100.0)  # the empty first Slaney filter of the published model


def test_card_preset_has_exactly_the_published_trainable_count_and_keys():
    model = create_student("wav2small")
    assert model.num_parameters() == 10806
    assert sorted(model.state_dict()) == sorted(PUBLISHED_KEYS)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen == 2 * 33 * 64


def test_72k_preset_is_the_channel_count_closest_to_72k_state_values():
    counts = {c: create_student("wav2small", channels=c).num_state_values() for c in range(28, 38)}
    best = min(counts, key=lambda c: abs(counts[c] - 72000))
    assert create_student("wav2small-72k").config.channels == best
    assert abs(create_student("wav2small-72k").num_state_values() - 72000) < 1000


def test_every_stage_has_the_published_shape_for_five_seconds():
    model = Wav2Small().eval()
    v = model.vgg7
    x = torch.randn(2, 80000)
    with torch.no_grad():
        spec = v.spectrogram_extractor(x)
        assert spec.shape == (2, 33, 2499)
        mel = v.logmel_extractor(spec)
        assert mel.shape == (2, 1, 2499, 26)
        h = v.l3(v.l2(v.l1(mel)))
        assert h.shape == (2, 13, 2499, 26)
        h = v.maxpool_A(h)
        assert h.shape == (2, 13, 1250, 13)
        h = v.l7(v.l6(v.l5(v.l4(h))))
        assert h.shape == (2, 13, 1250, 13)
        assert v(x).shape == (2, 13, 13)
        assert model(x).shape == (2, 3)


def test_forward_leaves_the_callers_tensor_untouched():
    model = Wav2Small().eval()
    x = torch.randn(3, 16000) * 5 + 2
    before = x.clone()
    model(x)
    assert torch.equal(x, before)


def test_batch_gives_the_same_outputs_as_items_one_by_one():
    torch.manual_seed(0)
    model = Wav2Small().eval()
    x = torch.from_numpy(np.stack([synth_speech(1.5, seed=s) for s in range(4)]))
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_gain_does_not_change_the_output():
    model = Wav2Small().eval()
    x = torch.from_numpy(synth_speech(1.0, seed=1))[None]
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x * 7.5), rtol=1e-4, atol=1e-5)


def test_mask_restricts_prenorm_statistics_to_valid_samples():
    model = Wav2Small().eval()
    x = torch.from_numpy(synth_speech(1.0, seed=2))[None]
    padded = torch.cat([x, torch.zeros(1, 8000)], dim=1)
    mask = torch.cat([torch.ones(1, 16000), torch.zeros(1, 8000)], dim=1)
    from wav2small.frontend import prenorm

    torch.testing.assert_close(prenorm(padded, mask)[:, :16000], prenorm(x), rtol=1e-5, atol=1e-5)


def test_save_load_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    model = create_student("wav2small-72k")
    for p in model.parameters():  # make BN statistics non-default too
        p.data.add_(0.01)
    model.vgg7.l3.norm.running_mean.add_(0.5)
    model.save_pretrained(tmp_path / "m")
    loaded = Wav2Small.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x = torch.randn(1, 16000)
    model.eval()
    assert torch.equal(model(x), loaded(x))


def test_published_checkpoint_layout_loads_strictly(tmp_path):
    """A folder shaped like audeering/wav2small (foreign config.json, published key names)."""
    source = Wav2Small()
    folder = tmp_path / "card"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["Wav2Small"], "model_type": "wav2vec2", "half_mel": 13}))
    loaded = Wav2Small.from_pretrained(folder)
    assert loaded.num_parameters() == 10806
    save_file({"unexpected.weight": torch.zeros(1), **{k: v.contiguous() for k, v in source.state_dict().items()}}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="do not fit config.json.*Unexpected key.*unexpected.weight"):
        Wav2Small.from_pretrained(folder)


def test_unknown_hub_id_fails_fast_with_a_local_copy_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from wav2small.hub import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="local") as error:
        Wav2Small.from_pretrained("audeering/wav2small")
    # the suggested copy cannot shadow the package or the preset name "wav2small"
    assert "`hf download audeering/wav2small --local-dir ./models/wav2small`" in str(error.value)
    assert "--local-dir ./wav2small" not in str(error.value)
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        Wav2Small.from_pretrained(str(tmp_path / "missing"))


def test_gain_invariance_holds_above_the_documented_floor_and_the_opt_in_epsilon_extends_it():
    from wav2small.export import gain_floor_db
    from wav2small.testing import fit_student, synth_speech

    torch.manual_seed(0)
    clips = [synth_speech(1.0, seed) for seed in range(12)]
    card = fit_student(Wav2Small(), clips).eval()  # outputs spread across clips as a trained model's do
    opt_in = Wav2Small(prenorm_eps=1e-14).eval()
    opt_in.load_state_dict(card.state_dict())
    x = torch.from_numpy(np.stack(clips[:6])).double()
    x = x / x.pow(2).mean(1, keepdim=True).sqrt()  # 0 dBFS RMS

    def change(model, db):  # largest output change against the same clips at -20 dBFS
        with torch.no_grad():
            return (model((x * 10 ** (db / 20)).float()) - model((x * 0.1).float())).abs().max().item()

    assert gain_floor_db(1e-7) == pytest.approx(-50) and gain_floor_db(1e-14) == pytest.approx(-120)
    assert change(card, -50) < 0.003 and change(card, 60) < 1e-4
    assert change(card, -70) > 0.03  # below the floor the card's outputs drift, as the contract says
    assert change(opt_in, -90) < 1e-4 and change(opt_in, -110) < 1e-3
    with torch.no_grad():  # at speech levels the opt-in barely changes the card's outputs
        assert (card((x * 0.1).float()) - opt_in((x * 0.1).float())).abs().max() < 1e-4
