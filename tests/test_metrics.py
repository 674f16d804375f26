"""CCC, Pearson and MAE against textbook formulas, known values, constants and NaNs."""

import numpy as np
import pytest

from wav2small import concordance_cc, mean_absolute_error, pearson_cc


def textbook_ccc(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return 2 * np.cov(x, y, bias=True)[0, 1] / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_ccc_equals_the_textbook_formula():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.normal(size=50)
        y = 0.6 * x + rng.normal(0.3, 0.5, size=50)
        assert concordance_cc(x, y) == pytest.approx(textbook_ccc(x, y), abs=1e-12)


def test_known_values():
    assert concordance_cc([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert concordance_cc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # shifting one side by its spread: 2*1/(1 + 1 + 1) with population variance 2/3 -> 2*(2/3)/(4/3 + 1)
    assert concordance_cc([1, 2, 3], [2, 3, 4]) == pytest.approx(2 * (2 / 3) / (2 * (2 / 3) + 1))
    assert concordance_cc([0.1, 0.5, 0.9], [0.2, 0.5, 0.8]) == pytest.approx(0.96)


def test_ccc_is_not_invariant_to_rescaling_one_side():
    x = np.linspace(0, 1, 20)
    assert concordance_cc(x, x * 6 + 1) < 0.2
    assert pearson_cc(x, x * 6 + 1) == pytest.approx(1.0)


def test_constant_inputs_and_too_few_samples():
    assert np.isnan(concordance_cc([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]))
    assert concordance_cc([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]) == pytest.approx(0.0)
    assert np.isnan(concordance_cc([1.0], [1.0]))
    assert np.isnan(concordance_cc([], []))
    assert np.isnan(pearson_cc([1, 1, 1], [1, 2, 3]))


def test_nans_propagate_unless_ignored():
    x, y = [0.1, 0.4, np.nan, 0.9], [0.2, 0.3, 0.5, 0.8]
    assert np.isnan(concordance_cc(x, y))
    assert concordance_cc(x, y, ignore_nan=True) == pytest.approx(textbook_ccc([0.1, 0.4, 0.9], [0.2, 0.3, 0.8]))
    assert mean_absolute_error(x, y, ignore_nan=True) == pytest.approx((0.1 + 0.1 + 0.1) / 3)


def test_columnwise_for_arousal_dominance_valence():
    rng = np.random.default_rng(1)
    truth = rng.uniform(size=(40, 3))
    prediction = truth + rng.normal(0, [0.05, 0.2, 0.5], size=(40, 3))
    scores = concordance_cc(truth, prediction)
    assert scores.shape == (3,)
    assert np.allclose(scores, [textbook_ccc(truth[:, k], prediction[:, k]) for k in range(3)])
    assert scores[0] > scores[1] > scores[2]
    with pytest.raises(ValueError, match="shape"):
        concordance_cc(truth, prediction[:, :2])
