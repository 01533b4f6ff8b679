"""``score_drift`` math: fine histograms, PSI, KS, rates and tests — from bins only.

No I/O here. A window of scores is summarised as a :class:`Histogram` on a fixed
:class:`Grid` (e.g. 1,000 equal-width bins over ``[0, 1]``) plus the few numbers the
other checks need (nulls, NaN/inf/out-of-range counts, sum and sum of squares,
count above the high-score threshold, null counts of feature columns). The
database builds these with ``GROUP BY bucket`` (see ``source.py``), so only
bins leave it; this module turns two histograms into metrics.

Bucketing rule (identical in SQL, pandas and here, so every backend gives the same
bins): a finite score ``s`` with ``lo <= s <= hi`` goes to
``floor(((s - lo) / (hi - lo)) * bins)`` — the exact float expression PostgreSQL's
``width_bucket`` evaluates — clamped to ``bins - 1`` (so ``s == hi`` is in the last
bin). Everything else is counted apart: NULL, NaN, ±inf, and finite scores outside
``[lo, hi]``.

PSI bins: the reference's deciles (``psi_bins`` quantiles), *snapped to the fine
grid*: each edge is the first fine-bin edge where the reference's cumulative share
reaches k/psi_bins. Coarse bins are unions of fine bins, so the current window's
coarse counts come from its fine histogram with no second query, and the edges are
within one fine-bin width of the exact reference quantiles. A point mass (many equal
scores) can make two edges coincide; those bins merge, so PSI may use fewer bins.

Empty bins: a share of 0 is replaced by ``PSI_EPSILON`` = 0.0001 (Evidently's choice),
without renormalising. Every reference bin below the last holds scores by
construction; the last, ``[q_9, hi]``, is empty when the reference's top decile sits
in the fine bin of its maximum (e.g. scores capped at 0.5 with 20 % exactly 0.5). Then
current scores above the reference's maximum meet a reference share of 0.0001 and
weigh heavily — intended: they are values the reference never produced.

KS: D = max |CDF_ref − CDF_cur| over the fine-bin edges. Evaluated at edges only, the
binned D differs from the exact two-sample D by at most the largest probability mass
either sample has inside one fine bin (tests check this against scipy). The p-value
is the asymptotic Kolmogorov one, information only: at these sample sizes any D is
"significant", so alerts use D itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

PSI_EPSILON = 1e-4

# Codes the bucketing gives to scores that are not in any fine bin.
NULL_CODE, NAN_CODE, INF_CODE, OUT_OF_RANGE_CODE = -1, -2, -3, -4

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Grid:
    """``bins`` equal-width bins over ``[lo, hi]``; the last bin includes ``hi``."""

    lo: float = 0.0
    hi: float = 1.0
    bins: int = 1000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo < self.hi):
            raise ValueError(f"score range must be finite with lo < hi, got [{self.lo}, "
                             f"{self.hi}]")
        if self.bins < 2:
            raise ValueError("a grid needs at least 2 bins")

    @property
    def width(self) -> float:
        return (self.hi - self.lo) / self.bins

    def edge(self, index: int) -> float:
        """The lower edge of fine bin ``index`` (``index == bins`` gives ``hi``)."""
        if index >= self.bins:
            return self.hi
        return self.lo + (self.hi - self.lo) * index / self.bins

    def codes(self, scores: npt.ArrayLike) -> IntArray:
        """Fine-bin index of each score, or a negative code (NULL/NaN/inf/out of range).

        ``None`` and NaN in a float array are both "missing" in pandas; pass a
        separate ``null_mask`` to :func:`histogram_from_values` to tell them apart.
        """
        x = np.asarray(scores, dtype=np.float64)
        codes = np.full(x.shape, OUT_OF_RANGE_CODE, dtype=np.int64)
        codes[np.isnan(x)] = NAN_CODE
        codes[np.isinf(x)] = INF_CODE
        inside = np.isfinite(x) & (x >= self.lo) & (x <= self.hi)
        span = self.hi - self.lo
        with np.errstate(invalid="ignore"):
            raw = np.floor(((x[inside] - self.lo) / span) * self.bins).astype(np.int64)
        codes[inside] = np.minimum(raw, self.bins - 1)
        return codes

    def as_json(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "bins": self.bins}


@dataclass(frozen=True)
class Histogram:
    """One window of scores on a grid, plus what the non-distribution checks need."""

    grid: Grid
    counts: IntArray
    nulls: int = 0
    nans: int = 0
    infs: int = 0
    out_of_range: int = 0
    total: float = 0.0  # sum of the in-range scores
    total_sq: float = 0.0  # sum of their squares
    above: int = 0  # in-range scores strictly above the high-score threshold
    threshold: float | None = None
    feature_nulls: dict[str, int] = field(default_factory=dict)
    sample_fraction: float = 1.0  # < 1 when the database sampled the rows (TABLESAMPLE)

    @classmethod
    def empty(cls, grid: Grid, *, threshold: float | None = None,
              features: tuple[str, ...] = ()) -> Histogram:
        return cls(grid, np.zeros(grid.bins, dtype=np.int64), threshold=threshold,
                   feature_nulls=dict.fromkeys(features, 0))

    @property
    def valid(self) -> int:
        """Scores in a fine bin: finite and inside the score range."""
        return int(self.counts.sum())

    @property
    def rows(self) -> int:
        """Every row of the window, whatever its score."""
        return self.valid + self.nulls + self.nans + self.infs + self.out_of_range

    @property
    def invalid(self) -> int:
        return self.nans + self.infs + self.out_of_range

    @property
    def mean(self) -> float | None:
        return self.total / self.valid if self.valid else None

    @property
    def std(self) -> float | None:
        """Population standard deviation from the sums (clamped at 0 for rounding)."""
        n = self.valid
        if not n:
            return None
        mean = self.total / n
        return math.sqrt(max(self.total_sq / n - mean * mean, 0.0))

    @property
    def above_rate(self) -> float | None:
        return self.above / self.valid if self.valid else None

    @property
    def estimated_rows(self) -> float:
        """Rows in the window, scaled back up when the database sampled them."""
        return self.rows / self.sample_fraction

    def null_rate(self, feature: str) -> float | None:
        return self.feature_nulls.get(feature, 0) / self.rows if self.rows else None

    def merge(self, other: Histogram) -> Histogram:
        """Sum of two windows on the same grid (seasonal references add weeks up)."""
        if other.grid != self.grid:
            raise ValueError("cannot merge histograms on different grids")
        features = {k: self.feature_nulls.get(k, 0) + other.feature_nulls.get(k, 0)
                    for k in {*self.feature_nulls, *other.feature_nulls}}
        return replace(
            self, counts=self.counts + other.counts, nulls=self.nulls + other.nulls,
            nans=self.nans + other.nans, infs=self.infs + other.infs,
            out_of_range=self.out_of_range + other.out_of_range,
            total=self.total + other.total, total_sq=self.total_sq + other.total_sq,
            above=self.above + other.above, feature_nulls=features)

    def as_json(self) -> dict[str, Any]:
        """Sparse JSON (bin index → count): a window rarely fills every fine bin."""
        nz = np.flatnonzero(self.counts)
        return {
            "grid": self.grid.as_json(),
            "bins": [[int(i), int(self.counts[i])] for i in nz],
            "nulls": self.nulls, "nans": self.nans, "infs": self.infs,
            "out_of_range": self.out_of_range, "total": self.total, "total_sq": self.total_sq,
            "above": self.above, "threshold": self.threshold,
            "feature_nulls": dict(self.feature_nulls), "sample_fraction": self.sample_fraction,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        grid = Grid(**data["grid"])
        counts = np.zeros(grid.bins, dtype=np.int64)
        for index, count in data["bins"]:
            counts[int(index)] = int(count)
        return cls(grid, counts, int(data["nulls"]), int(data["nans"]), int(data["infs"]),
                   int(data["out_of_range"]), float(data["total"]), float(data["total_sq"]),
                   int(data["above"]), data.get("threshold"),
                   {k: int(v) for k, v in data.get("feature_nulls", {}).items()},
                   float(data.get("sample_fraction", 1.0)))


@dataclass(frozen=True)
class BucketRow:
    """One row of the database's ``GROUP BY bucket``: a fine bin or a negative code."""

    code: int
    count: int
    total: float = 0.0
    total_sq: float = 0.0
    above: int = 0
    feature_nulls: tuple[int, ...] = ()


def histogram_from_rows(rows: list[BucketRow], grid: Grid, *, threshold: float | None,
                        features: tuple[str, ...] = (),
                        sample_fraction: float = 1.0) -> Histogram:
    """Fold grouped rows into a histogram. Codes ``>= bins`` (a float edge that rounded
    up) are clamped into the last bin, as the bucketing rule says."""
    counts = np.zeros(grid.bins, dtype=np.int64)
    special = {NULL_CODE: 0, NAN_CODE: 0, INF_CODE: 0, OUT_OF_RANGE_CODE: 0}
    total = total_sq = 0.0
    above = 0
    nulls = [0] * len(features)
    for row in sorted(rows, key=lambda r: r.code):  # a fixed order: same sums everywhere
        for i, n in enumerate(row.feature_nulls):
            nulls[i] += int(n)
        if row.code >= 0:
            counts[min(row.code, grid.bins - 1)] += row.count
            total += row.total
            total_sq += row.total_sq
            above += row.above
        else:
            special[row.code if row.code in special else OUT_OF_RANGE_CODE] += row.count
    return Histogram(grid, counts, special[NULL_CODE], special[NAN_CODE], special[INF_CODE],
                     special[OUT_OF_RANGE_CODE], total, total_sq, above, threshold,
                     dict(zip(features, nulls, strict=True)), sample_fraction)


def histogram_from_values(scores: npt.ArrayLike, grid: Grid, *, threshold: float | None = None,
                          null_mask: npt.ArrayLike | None = None,
                          features: dict[str, npt.ArrayLike] | None = None) -> Histogram:
    """The same summary computed in memory (the pandas path for files, and tests).

    ``null_mask`` marks rows whose score is NULL (pandas reads SQL NULL and NaN both
    as NaN; a Parquet file keeps them apart). ``features`` maps a feature column to a
    boolean "is null" array of the same length.

    Few passes over the data: the in-range scores are selected once (NaN fails both
    comparisons) and bucketed in place with the same float expression as
    :meth:`Grid.codes`; only the (usually few) other scores are classified one by one.
    """
    x = np.asarray(scores, dtype=np.float64)
    nulls = 0
    if null_mask is not None:
        null = np.asarray(null_mask, dtype=bool)
        nulls = int(np.count_nonzero(null))
        if nulls:
            x = x[~null]
    if x.size and x.min() >= grid.lo and x.max() <= grid.hi:  # all valid (NaN fails this)
        valid, rest = x, x[:0]
    else:
        inside = (x >= grid.lo) & (x <= grid.hi)
        valid, rest = x[inside], x[~inside]
    idx = valid - grid.lo
    idx /= grid.hi - grid.lo
    idx *= grid.bins
    # idx >= 0, so truncation is floor; idx == bins (s == hi, or rounding) joins the last bin.
    full = np.bincount(idx.astype(np.int64), minlength=grid.bins + 1)
    counts = full[:grid.bins].astype(np.int64)
    counts[-1] += full[grid.bins:].sum()
    nans = int(np.count_nonzero(np.isnan(rest)))
    infs = int(np.count_nonzero(np.isinf(rest)))
    above = int(np.count_nonzero(valid > threshold)) if threshold is not None else 0
    return Histogram(
        grid, counts, nulls=nulls, nans=nans, infs=infs, out_of_range=rest.size - nans - infs,
        total=float(valid.sum()), total_sq=float(np.dot(valid, valid)), above=above,
        threshold=threshold,
        feature_nulls={k: int(np.count_nonzero(np.asarray(v, dtype=bool)))
                       for k, v in (features or {}).items()})


# ----- PSI ---------------------------------------------------------------------------


def quantile_boundaries(counts: IntArray, parts: int = 10) -> list[int]:
    """Fine-bin indices where the coarse PSI bins start and end: ``[0, ..., bins]``.

    Edge k is the first fine edge where the cumulative share reaches k/parts (the
    reference's k-th quantile snapped up to the grid). Equal edges collapse.
    """
    bins = len(counts)
    total = int(counts.sum())
    if total == 0:
        return [0, bins]
    cum = np.cumsum(counts)
    inner = []
    for k in range(1, parts):
        # cum[i - 1] = scores in fine bins [0, i): the first i with cum >= k/parts * N.
        i = int(np.searchsorted(cum, k * total / parts, side="left")) + 1
        if 0 < i < bins:
            inner.append(i)
    return [0, *sorted(set(inner)), bins]


def coarse(counts: IntArray, boundaries: list[int]) -> IntArray:
    """Counts of the coarse bins ``[boundaries[j], boundaries[j+1])``."""
    return np.add.reduceat(counts, boundaries[:-1]).astype(np.int64)


def psi(reference: IntArray, current: IntArray, epsilon: float = PSI_EPSILON) -> float:
    """Σ (cur% − ref%)·ln(cur%/ref%); zero shares become ``epsilon`` (not renormalised)."""
    e = reference / max(int(reference.sum()), 1)
    a = current / max(int(current.sum()), 1)
    e = np.where(e == 0, epsilon, e)
    a = np.where(a == 0, epsilon, a)
    return float(np.sum((a - e) * np.log(a / e)))


# ----- KS ----------------------------------------------------------------------------


def ks_statistic(reference: IntArray, current: IntArray) -> float:
    """max |CDF_ref − CDF_cur| over the fine-bin edges."""
    n, m = int(reference.sum()), int(current.sum())
    if not n or not m:
        return 0.0
    diff = np.cumsum(reference) / n - np.cumsum(current) / m
    return float(np.max(np.abs(diff)))


def ks_max_bin_error(reference: IntArray, current: IntArray) -> float:
    """Bound on |binned D − exact D|: the largest share either sample has in one bin."""
    n, m = max(int(reference.sum()), 1), max(int(current.sum()), 1)
    return float(max(np.max(reference) / n, np.max(current) / m))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic two-sided p-value (Kolmogorov distribution with Stephens' correction)."""
    if n == 0 or m == 0:
        return 1.0
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(max(total, 0.0), 1.0)


# ----- rates -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProportionTest:
    z: float
    p_value: float  # one-sided: the current rate is higher than the reference's


def two_proportion_test(x_cur: float, n_cur: float, x_ref: float,
                        n_ref: float) -> ProportionTest:
    """Pooled two-proportion z-test (as Evidently's z-test), one-sided for an increase."""
    if n_cur <= 0 or n_ref <= 0:
        return ProportionTest(0.0, 1.0)
    p1, p2 = x_cur / n_cur, x_ref / n_ref
    pooled = (x_cur + x_ref) / (n_cur + n_ref)
    var = pooled * (1 - pooled) * (1 / n_cur + 1 / n_ref)
    if var <= 0:
        same = p1 == p2
        return ProportionTest(0.0 if same else math.copysign(math.inf, p1 - p2),
                              1.0 if same or p1 < p2 else 0.0)
    z = (p1 - p2) / math.sqrt(var)
    return ProportionTest(z, 0.5 * math.erfc(z / math.sqrt(2)))


def rate_with_expected(x_cur: float, n_cur: float, expected: float,
                       ) -> ProportionTest:
    """One-sample z-test against a configured expected rate (no reference sample)."""
    if n_cur <= 0 or not 0 < expected < 1:
        return ProportionTest(0.0, 1.0)
    z = (x_cur / n_cur - expected) / math.sqrt(expected * (1 - expected) / n_cur)
    return ProportionTest(z, 0.5 * math.erfc(z / math.sqrt(2)))


# ----- the comparison ----------------------------------------------------------------


@dataclass(frozen=True)
class DriftMetrics:
    """Everything one check computes from a reference and a current histogram."""

    psi: float
    psi_bins: int
    ks: float
    ks_pvalue: float
    ks_bin_error: float
    n_ref: int
    n_cur: int
    mean_ref: float | None
    mean_cur: float | None
    std_ref: float | None
    std_cur: float | None
    boundaries: list[int]
    ref_coarse: IntArray
    cur_coarse: IntArray

    @property
    def mean_shift(self) -> float | None:
        """|mean_cur − mean_ref| in reference standard deviations."""
        if self.mean_ref is None or self.mean_cur is None or not self.std_ref:
            return None
        return abs(self.mean_cur - self.mean_ref) / self.std_ref

    @property
    def std_ratio(self) -> float | None:
        if not self.std_ref or self.std_cur is None:
            return None
        return self.std_cur / self.std_ref


def compare(reference: Histogram, current: Histogram, *, psi_bins: int = 10,
            boundaries: list[int] | None = None) -> DriftMetrics:
    """PSI (reference-quantile bins) and KS (fine bins) of two windows, from bins only."""
    if reference.grid != current.grid:
        raise ValueError("reference and current were binned on different grids; rebuild "
                         "the reference")
    bounds = boundaries or quantile_boundaries(reference.counts, psi_bins)
    ref_c, cur_c = coarse(reference.counts, bounds), coarse(current.counts, bounds)
    d = ks_statistic(reference.counts, current.counts)
    return DriftMetrics(
        psi=psi(ref_c, cur_c), psi_bins=len(bounds) - 1, ks=d,
        ks_pvalue=ks_pvalue(d, reference.valid, current.valid),
        ks_bin_error=ks_max_bin_error(reference.counts, current.counts),
        n_ref=reference.valid, n_cur=current.valid,
        mean_ref=reference.mean, mean_cur=current.mean, std_ref=reference.std,
        std_cur=current.std, boundaries=bounds, ref_coarse=ref_c, cur_coarse=cur_c)


def bins_table(metrics: DriftMetrics, grid: Grid) -> str:
    """Markdown table of reference vs current shares per PSI bin (Dagster metadata)."""
    n_ref, n_cur = max(metrics.n_ref, 1), max(metrics.n_cur, 1)
    lines = ["| bin | scores | reference | current | contribution |",
             "|---|---|---:|---:|---:|"]
    for j in range(len(metrics.boundaries) - 1):
        lo, hi = grid.edge(metrics.boundaries[j]), grid.edge(metrics.boundaries[j + 1])
        e, a = metrics.ref_coarse[j] / n_ref, metrics.cur_coarse[j] / n_cur
        e_, a_ = e or PSI_EPSILON, a or PSI_EPSILON
        closing = "]" if j == len(metrics.boundaries) - 2 else ")"
        lines.append(f"| {j + 1} | [{lo:.4g}, {hi:.4g}{closing} | {100 * e:.2f} % | "
                     f"{100 * a:.2f} % | {(a_ - e_) * math.log(a_ / e_):.4f} |")
    return "\n".join(lines)
