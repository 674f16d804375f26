"""EvoNorm-B0 and -S0 against a direct numpy transcription of the paper's equations, in training
and inference, with and without their nonlinear term; the norm setting of the students."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wav2small import create_student
from wav2small.models.norms import EvoNormB0, EvoNormS0, evonorm_groups

EPS = 1e-5


def b0_reference(x, v, gamma, beta, batch_var=None, nonlinear=True):
    """x / max(sqrt(s2_bwh(x) + eps), v x + sqrt(s2_wh(x) + eps)) * gamma + beta, per channel;
    s2_bwh over batch, height, width (or the given moving average), s2_wh over height and width."""
    if batch_var is None:
        batch_var = x.var(axis=(0, 2, 3))
    left = np.sqrt(batch_var + EPS)[None, :, None, None]
    instance = np.sqrt(x.var(axis=(2, 3), keepdims=True) + EPS)
    right = (v[None, :, None, None] * x if nonlinear else 0) + instance
    return x / np.maximum(left, right) * gamma[None, :, None, None] + beta[None, :, None, None]


def s0_reference(x, v, gamma, beta, groups, nonlinear=True):
    """x sigmoid(v x) / sqrt(s2_{w,h,c/g}(x) + eps) * gamma + beta, group variance per example."""
    b, c, h, w = x.shape
    var = x.reshape(b, groups, c // groups * h * w).var(axis=2)  # (B, G)
    std = np.repeat(np.sqrt(var + EPS), c // groups, axis=1)[:, :, None, None]
    numerator = x / (1 + np.exp(-v[None, :, None, None] * x)) if nonlinear else x
    return numerator / std * gamma[None, :, None, None] + beta[None, :, None, None]


def _randomised(layer):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    return layer


@pytest.mark.parametrize("nonlinear", [True, False])
def test_evonorm_b0_follows_the_equation_and_keeps_moving_averages(nonlinear):
    rng = np.random.default_rng(0)
    layer = _randomised(EvoNormB0(6, nonlinear=nonlinear))
    gamma, beta = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    v = layer.v.detach().numpy() if nonlinear else None
    batches = [(3 * rng.standard_normal((4, 6, 5, 7)) + 1).astype(np.float64) for _ in range(3)]
    expected_running = np.ones(6)
    for x in batches:  # training: batch statistics, and the moving average of the unbiased batch variance
        out = layer.train()(torch.from_numpy(x).float()).detach().numpy()
        assert np.allclose(out, b0_reference(x, v, gamma, beta, nonlinear=nonlinear), atol=1e-4)
        n = x.size / 6
        expected_running = 0.9 * expected_running + 0.1 * x.var(axis=(0, 2, 3)) * n / (n - 1)
    assert np.allclose(layer.running_var.numpy(), expected_running, rtol=1e-5)
    x = batches[0][:2]  # inference: the moving average instead of the batch variance
    out = layer.eval()(torch.from_numpy(x).float()).detach().numpy()
    assert np.allclose(out, b0_reference(x, v, gamma, beta, batch_var=expected_running, nonlinear=nonlinear), atol=1e-4)


@pytest.mark.parametrize("nonlinear", [True, False])
def test_evonorm_s0_follows_the_equation_per_example(nonlinear):
    rng = np.random.default_rng(0)
    layer = _randomised(EvoNormS0(8, nonlinear=nonlinear, groups=4))
    assert not list(layer.buffers())  # no moving averages: nothing learnt about the data at inference
    gamma, beta = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    v = layer.v.detach().numpy() if nonlinear else None
    x = (2 * rng.standard_normal((3, 8, 5, 6)) - 1).astype(np.float64)
    for mode in (layer.train(), layer.eval()):  # the same computation in both modes
        out = mode(torch.from_numpy(x).float()).detach().numpy()
        assert np.allclose(out, s0_reference(x, v, gamma, beta, 4, nonlinear=nonlinear), atol=1e-4)
    alone = layer(torch.from_numpy(x[:1]).float()).detach().numpy()  # each example's own statistics
    assert np.allclose(alone, s0_reference(x, v, gamma, beta, 4, nonlinear=nonlinear)[:1], atol=1e-4)


def test_evonorm_groups_are_divisors_with_room():
    assert [evonorm_groups(c) for c in (8, 13, 16, 24, 96, 256, 1280)] == [2, 1, 4, 6, 24, 32, 32]
    for c in range(1, 300):
        g = evonorm_groups(c)
        assert c % g == 0 and g <= 32 and (c // g >= 4 or g == 1)


def test_norm_setting_replaces_batch_norm_and_activation():
    batch = create_student("mobilenetv2-0.35")
    for norm, layer in (("evonorm-b0", EvoNormB0), ("evonorm-s0", EvoNormS0)):
        model = create_student("mobilenetv2-0.35", norm=norm)
        kinds = {type(m) for m in model.blocks.modules()}
        assert layer in kinds and torch.nn.BatchNorm2d not in kinds and torch.nn.ReLU6 not in kinds
        linear = [m for m in model.modules() if isinstance(m, layer) and m.v is None]
        assert len(linear) == 17  # the projection of every inverted residual stays linear
        assert model.num_parameters() > batch.num_parameters()  # v1 per channel of the nonlinear ones
    with pytest.raises(ValueError, match="norm must be one of"):
        create_student("wav2small", norm="layer")
    wav2small = create_student("wav2small", norm="evonorm-s0")
    assert all(isinstance(getattr(wav2small.vgg7, f"l{i}").norm, EvoNormS0) for i in range(1, 8))


def test_students_with_evonorm_or_another_topology_refuse_to_stream():
    from wav2small.streaming import StreamingWav2Small

    for options in ({"norm": "evonorm-s0"}, {"norm": "evonorm-b0"}, {"depth": 5}, {"pool_after": 1}):
        with pytest.raises(ValueError, match="streaming supports the published topology"):
            StreamingWav2Small(create_student("wav2small", **options))
    StreamingWav2Small(create_student("wav2small"))  # batch norm, the published topology: streams
