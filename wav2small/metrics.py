"""Agreement metrics between truth and prediction: CCC (the field's headline), Pearson, MAE.

Every function takes 1-D arrays, or (N, K) arrays scored column by column (e.g. K = 3 for
arousal, dominance, valence), and returns a float or a (K,) array.
"""

from __future__ import annotations

import numpy as np


def _pairs(truth, prediction, ignore_nan: bool):
    truth = np.asarray(truth, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth and prediction differ in shape: {truth.shape} vs {prediction.shape}")
    if truth.ndim not in (1, 2):
        raise ValueError(f"expected 1-D or (N, K) arrays, got shape {truth.shape}")
    return truth, prediction


def _columnwise(metric, truth, prediction, ignore_nan):
    truth, prediction = _pairs(truth, prediction, ignore_nan)
    if truth.ndim == 2:
        return np.array([_columnwise(metric, truth[:, k], prediction[:, k], ignore_nan) for k in range(truth.shape[1])])
    if ignore_nan:
        keep = ~(np.isnan(truth) | np.isnan(prediction))
        truth, prediction = truth[keep], prediction[keep]
    return float(metric(truth, prediction))


def _ccc(x, y):
    if len(x) < 2:
        return np.nan
    a, b = x - x.mean(), y - y.mean()
    denominator = np.sum(a * a) + np.sum(b * b) + len(x) * (x.mean() - y.mean()) ** 2
    return np.nan if denominator == 0 else 2.0 * np.sum(a * b) / denominator


def _pearson(x, y):
    if len(x) < 2:
        return np.nan
    a, b = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return np.nan if denominator == 0 else np.sum(a * b) / denominator


def _mae(x, y):
    return np.nan if len(x) == 0 else np.mean(np.abs(x - y))


def concordance_cc(truth, prediction, *, ignore_nan: bool = False):
    """Lin's concordance correlation coefficient, with population moments.

    CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2), in [-1, 1]; 1 only when
    prediction equals truth. NaN for fewer than 2 samples, when both sides are the same constant,
    or when any value is NaN and ``ignore_nan`` is False (True drops pairs with a NaN).

    >>> round(concordance_cc([0.1, 0.5, 0.9], [0.2, 0.5, 0.8]), 4)
    0.96
    """
    return _columnwise(_ccc, truth, prediction, ignore_nan)


def pearson_cc(truth, prediction, *, ignore_nan: bool = False):
    """Pearson correlation coefficient (NaN for fewer than 2 samples or a constant side)."""
    return _columnwise(_pearson, truth, prediction, ignore_nan)


def mean_absolute_error(truth, prediction, *, ignore_nan: bool = False):
    """Mean absolute difference, in the units of the inputs."""
    return _columnwise(_mae, truth, prediction, ignore_nan)
