"""Input normalisation (prenorm): the running one against its per-block textbook recursion."""

import math

import numpy as np
import pytest
import torch

from wav2small.testing import synth_speech
from wav2small import Wav2Small, create_student
from wav2small.frontend import exponential_average, prenorm, running_decay, running_prenorm


def loop_running_prenorm(x: np.ndarray, hop: int, a: float, eps: float = 1e-7) -> np.ndarray:
    """The recursion written out block by block, in float64."""
    s = np.zeros(3)
    out = np.empty(len(x))
    for start in range(0, len(x), hop):
        block = x[start : start + hop].astype(np.float64)
        s = a * s + (1 - a) * np.array([1.0, block.mean(), np.mean(block**2)])
        mean = s[1] / s[0]
        var = max(s[2] / s[0] - mean**2, 0.0)
        out[start : start + hop] = (block - mean) / math.sqrt(var + eps)
    return out


@pytest.mark.parametrize("samples", [64, 32 * 300 + 17, 32 * 2000])
def test_running_prenorm_equals_the_block_recursion(samples):
    rng = np.random.default_rng(samples)
    x = (rng.standard_normal(samples) * np.linspace(0.01, 2.0, samples) + 0.3).astype(np.float32)
    a = running_decay(32, 0.5, 16000)
    ours, _ = running_prenorm(torch.from_numpy(x)[None], hop=32, a=a)
    np.testing.assert_allclose(ours[0].numpy(), loop_running_prenorm(x, 32, a), rtol=1e-5, atol=1e-5)


def test_exponential_average_over_many_segments_from_a_state():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((2, 1000, 3))
    state = rng.standard_normal((2, 3))
    ours = exponential_average(torch.from_numpy(values), 0.97, torch.from_numpy(state)).numpy()
    s, expected = state.copy(), []
    for k in range(1000):
        s = 0.97 * s + 0.03 * values[:, k]
        expected.append(s)
    np.testing.assert_allclose(ours, np.stack(expected, 1), rtol=1e-12, atol=1e-12)


def test_running_prenorm_is_causal_and_resumes_from_its_state():
    x = torch.from_numpy(synth_speech(3.0, seed=4))[None]
    a = running_decay(32, 2.0, 16000)
    whole, _ = running_prenorm(x, hop=32, a=a)
    prefix, _ = running_prenorm(x[:, :20000], hop=32, a=a)
    assert torch.equal(prefix, whole[:, :20000])  # later audio never changes earlier output
    first, state = running_prenorm(x[:, :32 * 400], hop=32, a=a)
    rest, _ = running_prenorm(x[:, 32 * 400 :], hop=32, a=a, state=state)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, rtol=1e-6, atol=1e-6)


def test_running_prenorm_forgets_an_old_gain_within_a_few_time_constants():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(16000 * 12).astype(np.float32)
    x[: 16000 * 4] *= 10.0  # 20 dB louder first 4 s
    y, _ = running_prenorm(torch.from_numpy(x)[None], hop=32, a=running_decay(32, 1.0, 16000))
    tail_power = float(y[0, -16000:].pow(2).mean())
    assert 0.8 < tail_power < 1.25  # 7 to 8 time constants later: about unit power again
    early = float(y[0, 16000 * 4 : 16000 * 5].pow(2).mean())
    assert early < 0.1  # just after the loud part the running power is still high


def test_running_prenorm_student_is_gain_invariant_and_differs_from_the_published_prenorm():
    torch.manual_seed(0)
    running = create_student("wav2small", prenorm="running").eval()
    utterance = Wav2Small().eval()
    utterance.load_state_dict(running.state_dict())
    x = torch.from_numpy(synth_speech(2.0, seed=5))[None]
    with torch.no_grad():
        torch.testing.assert_close(running(x), running(x * 20.0), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(running(x), utterance(x), atol=1e-4)
    assert utterance.config.prenorm == "utterance"  # the published behaviour stays the default


def test_published_prenorm_is_unchanged_by_default():
    x = torch.randn(2, 5000) * 3 + 1
    model = Wav2Small().eval()
    torch.testing.assert_close(model.vgg7.normalise(x), prenorm(x))


def test_bad_prenorm_settings_fail_clearly():
    with pytest.raises(ValueError, match="prenorm must be one of"):
        create_student("wav2small", prenorm="global")
    with pytest.raises(ValueError, match="prenorm_seconds"):
        create_student("wav2small", prenorm="running", prenorm_seconds=0)
