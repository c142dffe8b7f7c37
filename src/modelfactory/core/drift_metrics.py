"""Drift metrics on histograms, with numpy and scipy: Azure ML's metric names, computed here.

Every function compares a reference histogram with a window's, bin for bin (the same bins: their
edges and category sets come from the reference, core/drift.py). They are pure: counts in, one
number out. Distances grow with drift (a drift is a value above the threshold); the two tests return
a p-value (a drift is a value below the threshold).

Zero counts:
- Jensen-Shannon needs no smoothing: each term is weighted by its own probability, and the mixture
  M = (P + Q) / 2 is positive wherever either is, so 0 * log(0) terms are simply 0.
- PSI divides by and takes the log of both proportions, so an empty bin on either side is floored at
  PSI_FLOOR (0.0001, the floor most PSI write-ups use) before the sum. Bins that hold rows on both
  sides are left exactly as they are, so a hand-computed PSI of non-empty bins matches.
- Pearson's chi-squared test is a test of homogeneity on the 2 x k table (reference and window
  counts): a bin empty on both sides is dropped (it says nothing); one empty on one side only stays,
  and is strong evidence of drift, as it should be.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

PSI_FLOOR = 1e-4


def _proportions(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype="float64")
    total = counts.sum()
    return counts / total if total > 0 else counts


def jensen_shannon_distance(reference, window) -> float:
    """The Jensen-Shannon distance between two histograms, in base 2 (0: identical, 1: disjoint)."""
    p, q = _proportions(reference), _proportions(window)
    value = float(jensenshannon(p, q, base=2))
    return 0.0 if np.isnan(value) and np.allclose(p, q) else value


def population_stability_index(reference, window) -> float:
    """PSI = sum over bins of (q - p) * ln(q / p), with empty bins floored at PSI_FLOOR."""
    p = np.maximum(_proportions(reference), PSI_FLOOR)
    q = np.maximum(_proportions(window), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def pearsons_chi_squared_test(reference, window) -> float:
    """The p-value of Pearson's chi-squared test that both histograms come from one distribution
    (no continuity correction: the statistic is Pearson's own). One bin with rows: nothing to test, 1.0."""
    table = np.vstack([np.asarray(reference, dtype="float64"), np.asarray(window, dtype="float64")])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def two_sample_kolmogorov_smirnov_test(reference, window) -> float:
    """The p-value of the two-sample Kolmogorov-Smirnov test from two fine histograms on the same,
    ordered bins: D is the largest gap between the two cumulative shares at a bin edge (exact when
    each distinct value has its own bin; otherwise a lower bound, off by at most one bin's share),
    and the p-value is scipy's asymptotic one (``ks_2samp(method="asymp")``: kstwo with n*m/(n+m))."""
    reference, window = np.asarray(reference, dtype="float64"), np.asarray(window, dtype="float64")
    n, m = reference.sum(), window.sum()
    if n == 0 or m == 0:
        return 1.0
    gap = float(np.max(np.abs(np.cumsum(reference) / n - np.cumsum(window) / m)))
    return float(stats.kstwo.sf(gap, np.round(n * m / (n + m))))


def normalized_wasserstein_distance(points_ref, reference, points_win, window, scale: float) -> float:
    """The first Wasserstein (earth mover's) distance between two weighted sets of points, divided by
    ``scale`` (the reference's standard deviation, so 0.1 means a tenth of one). Each histogram's mass
    sits at its bins' points (core/drift.py: bin midpoints, and the mean of the values beyond the
    reference's range), so the error is at most half a fine bin's width."""
    reference, window = np.asarray(reference, dtype="float64"), np.asarray(window, dtype="float64")
    if reference.sum() == 0 or window.sum() == 0:
        return 0.0
    keep_r, keep_w = reference > 0, window > 0
    distance = stats.wasserstein_distance(np.asarray(points_ref)[keep_r], np.asarray(points_win)[keep_w],
                                          reference[keep_r], window[keep_w])
    return float(distance / scale) if scale > 0 else float(distance)


TESTS = ("two_sample_kolmogorov_smirnov_test", "pearsons_chi_squared_test")


def is_drift(metric: str, value: float, threshold: float) -> bool:
    """A test's p-value drifts below its threshold; a distance drifts above it (Azure ML's semantics)."""
    return value < threshold if metric in TESTS else value > threshold
