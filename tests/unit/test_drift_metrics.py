"""The drift metrics (core/drift_metrics.py), each against a small case worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelfactory.core import drift_metrics as dm


def test_jensen_shannon_distance_by_hand():
    # P = (0.5, 0.5), Q = (1, 0); M = (0.75, 0.25).
    # KL(P||M) = 0.5*log2(0.5/0.75) + 0.5*log2(0.5/0.25) = 0.5*(-0.584963) + 0.5*1 = 0.207519
    # KL(Q||M) = 1*log2(1/0.75) = 0.415037
    # JS divergence = (0.207519 + 0.415037) / 2 = 0.311278; distance = sqrt(0.311278) = 0.557923
    assert dm.jensen_shannon_distance([50, 50], [10, 0]) == pytest.approx(0.557923, abs=1e-6)
    # identical shares at any scale: 0; disjoint supports: 1 (base 2)
    assert dm.jensen_shannon_distance([1, 2, 3], [10, 20, 30]) == pytest.approx(0.0, abs=1e-9)
    assert dm.jensen_shannon_distance([5, 0], [0, 7]) == pytest.approx(1.0)


def test_population_stability_index_by_hand():
    # p = (0.4, 0.6), q = (0.6, 0.4): (0.6-0.4)*ln(1.5) + (0.4-0.6)*ln(1/1.5) = 0.4*ln(1.5) = 0.162186
    assert dm.population_stability_index([40, 60], [60, 40]) == pytest.approx(0.162186, abs=1e-6)


def test_population_stability_index_floors_empty_bins_only():
    # p = (1, 0 -> 0.0001), q = (0.9, 0.1):
    # (0.9-1)*ln(0.9/1) + (0.1-0.0001)*ln(0.1/0.0001) = 0.010536 + 0.0999*6.907755 = 0.700621
    assert dm.population_stability_index([100, 0], [90, 10]) == pytest.approx(0.700621, abs=1e-6)
    assert math.isfinite(dm.population_stability_index([0, 10], [10, 0]))


def test_pearsons_chi_squared_test_by_hand():
    # 2 x 2 table: reference (30, 70), window (50, 50). Column totals 80, 120, N = 200, so every
    # expected cell is (40, 60). chi2 = 100/40 + 100/60 + 100/40 + 100/60 = 8.3333, 1 degree of
    # freedom: p = P(|Z| > sqrt(8.3333) = 2.88675) = 0.003892 (no continuity correction).
    assert dm.pearsons_chi_squared_test([30, 70], [50, 50]) == pytest.approx(0.003892, abs=1e-6)
    # a bin empty on both sides is dropped; a single bin has nothing to test
    assert dm.pearsons_chi_squared_test([30, 70, 0], [50, 50, 0]) == pytest.approx(0.003892, abs=1e-6)
    assert dm.pearsons_chi_squared_test([10, 0], [20, 0]) == 1.0


def test_two_sample_kolmogorov_smirnov_test_by_hand():
    # Reference 1, 2, 3, 4 and window 3, 4, 5, 6, one bin per value 1..6:
    # cumulative shares 0.25 0.5 0.75 1 1 1 against 0 0 0.25 0.5 0.75 1: the largest gap D = 0.5,
    # which is scipy's own D on the raw values; the p-value is scipy's asymptotic one for it.
    reference, window = [1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]
    expected = stats.ks_2samp([1, 2, 3, 4], [3, 4, 5, 6], method="asymp")
    assert expected.statistic == 0.5
    assert dm.two_sample_kolmogorov_smirnov_test(reference, window) == pytest.approx(expected.pvalue)
    assert dm.two_sample_kolmogorov_smirnov_test([3, 3], [30, 30]) == pytest.approx(1.0)


def test_normalized_wasserstein_distance_by_hand():
    # Reference: half at 0, half at 2 (mean 1, population std 1). Window: half at 1, half at 2.
    # Moving the mass at 0 to 1 costs 0.5 * 1; the mass at 2 stays: W1 = 0.5, divided by std 1: 0.5.
    assert dm.normalized_wasserstein_distance([0, 2], [1, 1], [1, 2], [1, 1], scale=1.0) == pytest.approx(0.5)
    # the same shapes twice as wide and twice the std: the normalised distance is unchanged
    assert dm.normalized_wasserstein_distance([0, 4], [1, 1], [2, 4], [1, 1], scale=2.0) == pytest.approx(0.5)


@pytest.mark.parametrize("metric, value, drifted", [
    ("jensen_shannon_distance", 0.2, True), ("jensen_shannon_distance", 0.05, False),
    ("two_sample_kolmogorov_smirnov_test", 0.01, True), ("two_sample_kolmogorov_smirnov_test", 0.5, False),
    ("pearsons_chi_squared_test", 0.01, True),
])
def test_tests_drift_below_their_threshold_distances_above(metric, value, drifted):
    assert dm.is_drift(metric, value, 0.1) is drifted


def test_metrics_do_not_depend_on_the_histograms_scale():
    rng = np.random.default_rng(0)
    reference, window = rng.integers(1, 50, 8), rng.integers(1, 50, 8)
    for metric in ("jensen_shannon_distance", "population_stability_index"):
        assert getattr(dm, metric)(reference, window) == pytest.approx(getattr(dm, metric)(reference * 3, window * 7))
