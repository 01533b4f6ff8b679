"""score_drift math against independent computations: numpy for PSI, scipy for KS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from alert_jobs.families.score_drift.check import (
    INF_CODE,
    NAN_CODE,
    OUT_OF_RANGE_CODE,
    PSI_EPSILON,
    Grid,
    Histogram,
    coarse,
    compare,
    histogram_from_values,
    ks_pvalue,
    psi,
    quantile_boundaries,
    two_proportion_test,
)

GRID = Grid(0.0, 1.0, 1000)


def numpy_psi(ref: np.ndarray, cur: np.ndarray, edges: np.ndarray) -> float:
    """The textbook PSI on given edges, written independently of the module."""
    e = np.histogram(ref, bins=edges)[0] / len(ref)
    a = np.histogram(cur, bins=edges)[0] / len(cur)
    e = np.where(e == 0, PSI_EPSILON, e)
    a = np.where(a == 0, PSI_EPSILON, a)
    return float(np.sum((a - e) * np.log(a / e)))


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_psi_equals_numpy_on_the_same_bins(shift: float) -> None:
    rng = np.random.default_rng(7)
    ref = rng.beta(2, 5, 200_000)
    cur = np.clip(rng.beta(2 + 3 * shift, 5, 50_000), 0, 1)
    h_ref, h_cur = histogram_from_values(ref, GRID), histogram_from_values(cur, GRID)
    m = compare(h_ref, h_cur, psi_bins=10)
    edges = np.array([GRID.edge(i) for i in m.boundaries])
    # The coarse bins are the reference's deciles snapped to the fine grid ...
    exact = np.quantile(ref, np.arange(1, 10) / 10)
    assert np.all(np.abs(edges[1:-1] - exact) <= GRID.width + 1e-12)
    # ... and PSI on them is exactly the numpy computation on the raw scores.
    assert m.psi == pytest.approx(numpy_psi(ref, cur, edges), rel=1e-12, abs=1e-15)
    assert m.psi_bins == 10


def test_psi_empty_bin_uses_epsilon() -> None:
    ref = np.array([10, 10, 10, 10])
    cur = np.array([20, 20, 0, 0])
    expected = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + 2 * (PSI_EPSILON - 0.25) * math.log(
        PSI_EPSILON / 0.25)
    assert psi(ref, cur) == pytest.approx(expected)


def test_quantile_boundaries_merge_a_point_mass() -> None:
    counts = np.zeros(1000, dtype=np.int64)
    counts[500] = 900  # 90 % of the scores are exactly 0.5
    counts[100] = 50
    counts[900] = 50
    bounds = quantile_boundaries(counts, 10)
    assert bounds[0] == 0 and bounds[-1] == 1000
    assert len(bounds) - 1 < 10  # equal edges collapsed: fewer, non-empty bins
    assert all(c > 0 for c in coarse(counts, bounds))


def test_only_the_last_reference_bin_can_be_empty() -> None:
    """Scores capped at 0.5 (20 % exactly 0.5): the top decile is the fine bin of the
    maximum, so the last bin [0.501, 1] holds no reference score — the documented case."""
    counts = np.zeros(1000, dtype=np.int64)
    counts[:500] = 16  # 8,000 scores below 0.5
    counts[500] = 2000
    ref = coarse(counts, bounds := quantile_boundaries(counts, 10))
    assert bounds[-2:] == [501, 1000] and ref[-1] == 0 and all(c > 0 for c in ref[:-1])
    cur = counts.copy()
    cur[700] = 1000  # scores the reference never produced
    a, e = 1000 / cur.sum(), PSI_EPSILON
    assert psi(ref, coarse(cur, bounds)) > (a - e) * math.log(a / e) > 0.5


@pytest.mark.parametrize(("n_ref", "n_cur", "shift"), [(50_000, 20_000, 0.0),
                                                       (50_000, 20_000, 0.05),
                                                       (100_000, 5_000, 0.2)])
def test_ks_is_within_one_fine_bin_of_scipy(n_ref: int, n_cur: int, shift: float) -> None:
    rng = np.random.default_rng(11)
    ref = rng.beta(2, 5, n_ref)
    cur = np.clip(rng.beta(2, 5, n_cur) + shift, 0, 1)
    h_ref, h_cur = histogram_from_values(ref, GRID), histogram_from_values(cur, GRID)
    m = compare(h_ref, h_cur)
    exact = stats.ks_2samp(ref, cur).statistic
    # Binned D sees the CDFs only at fine edges: it is at most the exact D, and short by
    # at most the probability mass one fine bin holds.
    assert m.ks <= exact + 1e-12
    assert exact - m.ks <= m.ks_bin_error
    assert m.ks_bin_error < 0.01
    assert ks_pvalue(m.ks, m.n_ref, m.n_cur) == pytest.approx(
        stats.kstwo.sf(m.ks, round(m.n_ref * m.n_cur / (m.n_ref + m.n_cur))), abs=0.02)


def test_mean_and_std_come_from_sums() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0.2, 0.6, 10_000)
    h = histogram_from_values(x, GRID)
    assert h.mean == pytest.approx(x.mean())
    assert h.std == pytest.approx(x.std())


def test_codes_edges_and_bad_values() -> None:
    x = [0.0, 0.3, 0.999, 1.0, 1.0000001, -0.0001, math.nan, math.inf, -math.inf]
    codes = GRID.codes(x)
    assert codes[0] == 0
    assert codes[1] == math.floor((0.3 / 1.0) * 1000)  # width_bucket's float expression
    assert codes[2] == 999 and codes[3] == 999  # 1.0 belongs to the last bin
    assert list(codes[4:6]) == [OUT_OF_RANGE_CODE] * 2
    assert codes[6] == NAN_CODE and codes[7] == INF_CODE and codes[8] == INF_CODE
    h = histogram_from_values(x, GRID, null_mask=[False] * 8 + [False])
    assert (h.valid, h.nans, h.infs, h.out_of_range) == (4, 1, 2, 2)
    assert h.rows == 9 and h.invalid == 5


def test_histogram_json_round_trip_and_merge() -> None:
    rng = np.random.default_rng(5)
    a = histogram_from_values(rng.random(1000), GRID, threshold=0.9,
                              features={"f": rng.random(1000) < 0.1})
    b = Histogram.from_json(a.as_json())
    assert np.array_equal(a.counts, b.counts) and b.feature_nulls == a.feature_nulls
    both = a.merge(b)
    assert both.valid == 2000 and both.above == 2 * a.above
    with pytest.raises(ValueError, match="different grids"):
        a.merge(Histogram.empty(Grid(0, 1, 10)))


def test_two_proportion_test_matches_the_formula() -> None:
    # 50 % of 66,670 vs 1 % of 412,000: overwhelming.
    t = two_proportion_test(33_335, 66_670, 4_120, 412_000)
    assert t.z > 100 and t.p_value == 0.0
    same = two_proportion_test(100, 10_000, 1_000, 100_000)
    assert same.z == pytest.approx(0.0) and same.p_value == pytest.approx(0.5)
    t = two_proportion_test(130, 10_000, 1_000, 100_000)
    p = (130 + 1000) / 110_000
    z = (0.013 - 0.01) / math.sqrt(p * (1 - p) * (1 / 10_000 + 1 / 100_000))
    assert t.z == pytest.approx(z) and t.p_value == pytest.approx(stats.norm.sf(z))


def test_grid_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="lo < hi"):
        Grid(1.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        Grid(0.0, math.inf)
