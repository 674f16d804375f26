"""Streaming Wav2Small: every estimate equals the offline model on the audio received so far."""

import copy
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from wav2small.testing import synth_speech
from wav2small import AudioError, Stream, create_student
from wav2small.cli import main
from wav2small.streaming import StreamingWav2Small

SR = 16000


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_looking(preset: str = "wav2small", seed: int = 0, *, spread: float | None = 0.1, **overrides):
    """A running-prenorm student that behaves like a trained one: BatchNorm statistics far from their
    defaults and, with ``spread``, a head scaled so that its outputs are about 0.5 +- ``spread``
    across clips (a fresh model's outputs barely move). Returned in float64: the stream is then
    compared with the offline model without float32 rounding in the way (see the float32 tests)."""
    torch.manual_seed(seed)
    model = create_student(preset, prenorm="running", **overrides)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5, generator=g)
                module.running_var.uniform_(0.5, 2.0, generator=g)
                module.weight.uniform_(0.5, 1.5, generator=g)
                module.bias.normal_(0, 0.2, generator=g)
        model = model.eval().double()
        if spread:
            clips = torch.from_numpy(np.stack([synth_speech(2.0, 100 + i) * (i + 1) for i in range(6)])).double()
            out = model(clips)
            scale = spread / out.std(0)
            model.adv.weight.mul_(scale[:, None])
            model.adv.bias.copy_(0.5 - scale * (out.mean(0) - model.adv.bias))
    return model


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like audio whose loudness changes every few seconds (the running prenorm must follow)."""
    rng = np.random.default_rng(seed)
    pieces = [synth_speech(4.0, seed * 1000 + i) * rng.uniform(0.1, 3.0) for i in range(8)]
    clip = np.concatenate(pieces)
    reps = int(np.ceil(seconds * SR / len(clip)))
    gains = np.repeat(rng.uniform(0.3, 2.0, reps), len(clip))
    return (np.tile(clip, reps) * gains)[: int(seconds * SR)]


def feed_randomly(stream: Stream, x: np.ndarray, seed: int, sizes=(1, 37, 512, SR)) -> list:
    """Feed ``x`` in chunks of random sizes: the given ones and arbitrary ones."""
    rng = np.random.default_rng(seed)
    estimates, start = [], 0
    while start < len(x):
        size = int(rng.choice([*sizes, rng.integers(1, 5000)]))
        estimates += stream.feed(x[start : start + size])
        start += size
    return estimates


def offline(model, x: np.ndarray, end_time: float) -> np.ndarray:
    """The offline model on the first ``end_time`` seconds, in the model's dtype."""
    dtype = next(model.parameters()).dtype
    with torch.inference_mode():
        return model(torch.from_numpy(x[: int(round(end_time * SR))]).to(dtype)[None])[0].numpy()


@pytest.mark.parametrize("preset,seed,seconds", [("wav2small", 0, 6), ("wav2small", 1, 6), ("wav2small-72k", 2, 4)])
def test_every_estimate_equals_the_offline_model_on_the_audio_so_far(preset, seed, seconds):
    model = trained_looking(preset, seed)
    x = speech(seconds + 0.013, seed)  # an end that is not a whole hop
    stream = Stream(model, hop=0.5)
    estimates = feed_randomly(stream, x, seed)
    estimates.append(stream.flush())
    assert [e.time for e in estimates] == [0.5 * (i + 1) for i in range(2 * seconds)] + [len(x) / SR]
    expected = np.stack([offline(model, x, e.time) for e in estimates])
    got = np.array([e[1:] for e in estimates])
    np.testing.assert_allclose(got, expected, atol=1e-8, rtol=0)
    assert np.ptp(expected, axis=0).min() > 0.01  # the outputs move: the comparison means something
    # the newest 24 ms matter: the offline model on less audio is far off
    assert np.abs(offline(model, x, estimates[-1].time - 0.024) - got[-1]).max() > 1e-4


@pytest.mark.parametrize("preset", ["wav2small", "wav2small-72k"])
def test_in_float32_the_stream_is_as_close_to_the_exact_answer_as_the_offline_model(preset):
    exact = trained_looking(preset, 2, spread=None)
    model = copy.deepcopy(exact).float()
    x = speech(10.0, 2)
    estimates = feed_randomly(Stream(model, hop=0.5), x, 2)
    for e in estimates[::4]:
        truth = offline(exact, x, e.time)
        np.testing.assert_allclose(e[1:], truth, atol=1e-5, rtol=0)
        assert np.abs(e[1:] - truth).max() <= 2 * np.abs(offline(model, x, e.time) - truth).max() + 1e-6


@pytest.mark.parametrize("overrides", [dict(n_fft=400, hop=160, n_mels=40, channels=6),
                                       dict(n_fft=100, hop=30, n_mels=21, channels=5)])
def test_other_front_end_settings_stream_exactly(overrides):
    model = trained_looking("wav2small", 3, **overrides)
    x = speech(3.0, 3)[:-77]
    stream = Stream(model, hop=0.37)
    estimates = feed_randomly(stream, x, 3) + [stream.flush()]
    for e in estimates:
        np.testing.assert_allclose(e[1:], offline(model, x, e.time), atol=1e-8, rtol=0)


@pytest.mark.parametrize("preset", ["wav2small", "wav2small-72k"])
def test_a_minute_stream_is_exact_at_sampled_hops(preset):
    model = trained_looking(preset, 5, spread=None).float()
    x = speech(60.0, 5)
    stream = Stream(model, hop=0.5)
    estimates = feed_randomly(stream, x, 5, sizes=(512, 1000, 8000, SR))
    assert len(estimates) == 120
    for e in [estimates[i] for i in (0, 7, 59, 119)]:
        np.testing.assert_allclose(e[1:], offline(model, x, e.time), atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["wav2small", "wav2small-72k"])
def test_a_ten_minute_stream_is_exact_and_its_state_does_not_grow(preset):
    """float32, as deployed."""
    model = trained_looking(preset, 6, spread=None).float()
    x = speech(600.0, 6)
    stream = Stream(model, hop=0.5)
    shapes = {k: (v.shape, v.dtype) for k, v in StreamingWav2Small(model).initial_state().items()}
    chunk = 10 * SR + 123  # big chunks keep the test fast; small ones are covered above
    estimates, sizes = [], {}
    for start, stop in ((0, 60 * SR), (60 * SR, len(x))):
        for first in range(start, stop, chunk):
            estimates += stream.feed(x[first : min(first + chunk, stop)])
        sizes[stop // SR] = stream.state_bytes
    assert sizes[60] == sizes[600] == sum(torch.empty(s, dtype=d).nbytes for s, d in shapes.values())
    assert {k: (v.shape, v.dtype) for k, v in stream.state.items()} == shapes
    assert len(estimates) == 1200
    for e in (estimates[120], estimates[-1]):
        np.testing.assert_allclose(e[1:], offline(model, x, e.time), atol=1e-5, rtol=0)


def attention_pooled_with_decay(model, x: np.ndarray, age_logit: float) -> np.ndarray:
    """Offline Wav2Small whose attention logits lose ``age_logit`` per pooled position of age."""
    v = model.vgg7
    with torch.inference_mode():
        h = v.logmel_extractor(v.spectrogram_extractor(v.normalise(torch.from_numpy(x).double()[None])))
        h = v.l7(v.l6(v.l5(v.l4(v.maxpool_A(v.l3(v.l2(v.l1(h))))))))
        t = h.shape[2]
        logits = v.sof(h) - age_logit * (t - 1 - torch.arange(t))[None, None, :, None]
        pooled = (v.lin(h) * torch.softmax(logits, dim=2)).sum(dim=2)
        features = torch.cat([pooled, torch.bmm(pooled, pooled.transpose(1, 2))], dim=2)
        return model.adv(features.flatten(1))[0].numpy()


def test_decay_weights_positions_by_their_age():
    model = trained_looking("wav2small", 7)
    x = speech(8.0, 7)
    stream = Stream(model, hop=1.0, decay_seconds=2.0)
    estimates = feed_randomly(stream, x, 7)
    age_logit = (2 * 32 / SR) / 2.0  # one pooled position is 4 ms
    for e in estimates[::3]:
        n = int(round(e.time * SR))
        np.testing.assert_allclose(e[1:], attention_pooled_with_decay(model, x[:n], age_logit), atol=1e-8, rtol=0)
    undecayed = offline(model, x, 8.0)
    assert np.abs(np.array(estimates[-1][1:]) - undecayed).max() > 1e-3


def test_flush_commits_nothing_and_the_stream_goes_on():
    model = trained_looking("wav2small", 8)
    x = speech(3.0, 8)
    a, b = Stream(model, hop=1.0), Stream(model, hop=1.0)
    first = a.feed(x[:25000]) + [a.flush()]
    assert first[-1].time == 25000 / SR
    assert a.flush() is None  # nothing new since
    rest = a.feed(x[25000:])
    assert [e.time for e in rest] == [2.0, 3.0]
    np.testing.assert_allclose(np.array(rest), np.array(b.feed(x)[1:]), atol=1e-12, rtol=0)


def test_reset_starts_a_new_stream():
    model = trained_looking("wav2small", 9)
    stream = Stream(model, hop=0.5)
    once = stream.feed(speech(2.0, 9))
    stream.feed(speech(1.3, 10))
    stream.reset()
    assert stream.samples == 0 and stream.flush() is None
    assert stream.feed(speech(2.0, 9)) == once


def test_bad_chunks_raise_and_leave_the_stream_as_it_was():
    model = trained_looking("wav2small", 10)
    x = speech(2.0, 10)
    stream, clean = Stream(model, hop=0.5), Stream(model, hop=0.5)
    stream.feed(x[:7000])
    before = {k: v.clone() for k, v in stream.state.items()}
    bad = x[7000:9000].copy()
    bad[5] = np.nan
    with pytest.raises(AudioError, match="1 NaN or infinite samples.*unchanged"):
        stream.feed(bad)
    bad[5] = np.inf
    with pytest.raises(AudioError, match="NaN or infinite"):
        stream.feed(bad)
    with pytest.raises(AudioError, match="44100 Hz.*16000 Hz"):
        stream.feed(x[7000:9000], sampling_rate=44100)
    with pytest.raises(AudioError, match="int16.*32768"):
        stream.feed((x[7000:9000] * 32767).astype(np.int16))
    with pytest.raises(AudioError, match="1-D"):
        stream.feed(np.stack([x[7000:9000]] * 2))
    assert stream.feed(np.zeros(0, np.float32)) == []
    assert stream.samples == 7000
    assert all(torch.equal(before[k], v) for k, v in stream.state.items())
    assert stream.feed(x[7000:]) == clean.feed(x)


def test_a_published_prenorm_model_streams_with_a_warning():
    model = create_student("wav2small").eval().double()
    with pytest.warns(UserWarning, match="per-utterance prenorm"):
        stream = Stream(model)
    running = create_student("wav2small", prenorm="running").eval().double()
    running.load_state_dict(model.state_dict())
    x = speech(1.0, 11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = Stream(running)
    assert stream.feed(x) == reference.feed(x)  # the same weights with the running prenorm


def test_state_of_the_card_model_is_small_and_fixed():
    engine = StreamingWav2Small(create_student("wav2small"))
    state = engine.initial_state()
    assert engine.lookahead_frames * 32 / SR * 1000 == 24.0  # ms of look-ahead
    conv_values = sum(v.numel() for k, v in state.items() if k.startswith("ctx_") and k != "ctx_samples")
    assert conv_values == 2 * 26 + 13 * 26 * (2 + 2 + 2) + 13 * 13 * 2 * 4  # frames, l1-l3, pool and l4-l6


def test_stream_command_reads_pcm_from_a_pipe_and_writes_each_row_at_once(tmp_path):
    model = trained_looking("wav2small", 12, spread=None).float()
    model.save_pretrained(tmp_path / "student")
    x = speech(2.3, 12)
    pcm = np.clip(np.round(x / np.abs(x).max() * 20000), -32768, 32767).astype("<i2")
    command = [sys.executable, "-m", "wav2small", "stream", "-", "--model", str(tmp_path / "student"), "--verbose"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        process.stdin.write(pcm[: int(1.2 * SR)].tobytes())
        process.stdin.flush()
        early = [process.stdout.readline() for _ in range(3)]  # header, 0.5 s and 1.0 s: before the input ends
        process.stdin.write(pcm[int(1.2 * SR) :].tobytes())
        process.stdin.close()
        rest = process.stdout.read()
        assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    finally:
        process.kill()
    rows = [line.split(",") for line in (b"".join(early) + rest).decode().splitlines()]
    assert rows[0] == ["time", "arousal", "dominance", "valence"]
    got = np.array(rows[1:], dtype=float)
    np.testing.assert_array_equal(got[:, 0], [0.5, 1.0, 1.5, 2.0, 2.3])
    stream = Stream(model, hop=0.5)
    expected = stream.feed(pcm.astype(np.float32) / 32768.0) + [stream.flush()]
    np.testing.assert_allclose(got[:, 1:], np.array(expected)[:, 1:], atol=2e-6, rtol=0)
    assert "real-time factor" in process.stderr.read().decode()


def test_stream_command_reads_audio_files_and_names_bad_ones(tmp_path, capsys):
    model = trained_looking("wav2small", 13, spread=None).float()
    model.save_pretrained(tmp_path / "student")
    x = speech(1.7, 13)
    sf.write(tmp_path / "speech.wav", x / np.abs(x).max() * 0.5, SR, subtype="FLOAT")
    assert main(["stream", str(tmp_path / "speech.wav"), "--model", str(tmp_path / "student"), "--hop", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "time,arousal,dominance,valence" and [r.split(",")[0] for r in rows[1:]] == ["1.000", "1.700"]
    assert main(["stream", str(tmp_path / "missing.wav"), "--model", str(tmp_path / "student")]) == 2
    assert "missing.wav: file not found" in capsys.readouterr().err
