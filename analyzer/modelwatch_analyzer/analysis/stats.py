"""The statistics, finished in numpy/scipy from small aggregates computed in ClickHouse.

Nothing here sees rows. A numeric feature arrives as weighted counts on a
*grid*: ``K`` equal cells between the reference's 0.1st and 99.9th
percentiles (equal in log scale for a positive feature spanning orders of
magnitude) plus one open cell on each side, and the weighted mean excess
beyond each end (``tail_below = sum w·(lo - x)`` over ``x < lo``, likewise
above). A categorical feature arrives as weighted counts per category. The
same grid, defined once by the baseline, serves every numeric method:

* **PSI** and **Jensen-Shannon** on ten reference-decile bins (unions of
  grid cells; a bin boundary is the cell edge nearest the weighted decile,
  so the bins hold ~10% of the reference each and are a fixed partition).
  Empty bins are smoothed with ``EPSILON`` (PSI) and cost nothing in JS.
* **Kolmogorov-Smirnov**: the largest distance between the two weighted
  ECDFs at the grid's cell edges. That is a lower bound of the exact
  statistic; the exact one is at most the bound reported in the details
  (``ks_upper``: the largest distance reachable inside a cell), so with
  ``K = 1000`` cells the error is at most one cell's probability mass.
  p-value: the asymptotic two-sample Kolmogorov distribution at the
  *effective* sample sizes (as ``scipy.stats.ks_2samp(method="asymp")``).
* **Wasserstein-1**, normalised by the reference standard deviation: the
  integral of ``|F_ref - F_cur|``, with both ECDFs linear inside a cell (of
  the values, also on a log grid), and
  the tails beyond the grid from the exact mean excesses. The error bound is
  in the details (``wasserstein_error_bound``).
* **Chi-square** (categorical): the 2×m contingency table of the two
  sides' proportions scaled to their effective sample sizes (Kish:
  ``(sum w)^2 / sum w^2``), so sampling weights do not inflate significance.

Effective sample sizes make every p-value honest under the SDK's sampling:
a weight-10 row stands for ten predictions in the proportions, but counts as
less than ten observations in the test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

EPSILON = 1e-4
"""Proportion used in place of an empty bin in PSI (the usual convention; keeps PSI finite)."""

DECILES = 10


@dataclass(frozen=True)
class Grid:
    """K equal cells on [low, low + K·width] — of the values, or of their logarithm when ``log`` — plus the open
    cells below and above.

    A log grid serves positive features spanning orders of magnitude (incomes,
    latencies), whose mass a linear grid would crowd into its first cells.
    """

    low: float
    width: float
    cells: int
    log: bool = False

    def edges(self) -> np.ndarray:
        """The K+1 interior edges, as values."""
        t = self.low + self.width * np.arange(self.cells + 1)
        return np.exp(t) if self.log else t

    @property
    def lo(self) -> float:
        """The lowest interior edge, as a value."""
        return float(math.exp(self.low)) if self.log else self.low

    @property
    def hi(self) -> float:
        t = self.low + self.cells * self.width
        return float(math.exp(t)) if self.log else t

    @property
    def centre(self) -> float:
        """The middle of [lo, hi], as a value: where the scans take a feature's moments about (near its mean)."""
        return (self.lo + self.hi) / 2

    def index(self, x: np.ndarray) -> np.ndarray:
        """Grid bin of each value: 0 below ``lo``, 1..K inside, K+1 above ``hi`` (the SQL scan uses the same rule)."""
        lo, hi = self.lo, self.hi
        inside = (x >= lo) & (x <= hi)
        t = np.log(np.where(inside, x, lo)) if self.log else x
        inner = np.clip(np.floor((t - self.low) / self.width).astype(np.int64) + 1, 1, self.cells)
        return np.where(x < lo, 0, np.where(x > hi, self.cells + 1, inner))


LOG_GRID_RATIO = 100.0
"""A positive feature whose central 99.8% spans more than this ratio gets a log grid."""


def make_grid(values_low: float, values_high: float, cells: int) -> Grid:
    """A grid over [low, high]; a constant feature gets a unit-width grid around its value."""
    if not (math.isfinite(values_low) and math.isfinite(values_high)) or values_high <= values_low:
        centre = values_low if math.isfinite(values_low) else 0.0
        return Grid(centre - 0.5, 1.0 / cells, cells)
    if values_low > 0 and values_high / values_low > LOG_GRID_RATIO:
        low = math.log(values_low)
        return Grid(low, (math.log(values_high) - low) / cells, cells, log=True)
    return Grid(values_low, (values_high - values_low) / cells, cells)


def decile_cuts(grid_counts: np.ndarray, bins: int = DECILES) -> np.ndarray:
    """Boundaries (indices into the K+2 grid bins) of `bins` bins holding ~equal reference mass.

    Bin b covers grid bins ``cuts[b] .. cuts[b+1]-1``; ``cuts[0] = 0`` and
    ``cuts[-1] = K+2``. Boundaries that coincide (a point mass) are merged,
    so there may be fewer bins than asked.
    """
    total = grid_counts.sum()
    if total <= 0:
        return np.array([0, len(grid_counts)])
    cum = np.cumsum(grid_counts) / total
    cuts = [0]
    for level in np.arange(1, bins) / bins:
        cut = int(np.searchsorted(cum, level - 1e-12)) + 1  # first bin boundary at or past this level
        cut = min(max(cut, 1), len(grid_counts) - 1)
        if cut > cuts[-1]:
            cuts.append(cut)
    if cuts[-1] != len(grid_counts):
        cuts.append(len(grid_counts))
    return np.array(cuts)


def rebin(grid_counts: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.add.reduceat(grid_counts, cuts[:-1])


def proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=float)


def psi(ref: np.ndarray, cur: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index of two count (or proportion) vectors over the same bins."""
    p = np.maximum(proportions(np.asarray(ref, float)), epsilon)
    q = np.maximum(proportions(np.asarray(cur, float)), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors over the same bins."""
    p = proportions(np.asarray(ref, float))
    q = proportions(np.asarray(cur, float))
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(jensenshannon(p, q, base=2))


@dataclass(frozen=True)
class KS:
    statistic: float
    upper: float
    pvalue: float


def ks_from_grid(ref: np.ndarray, cur: np.ndarray, n_ref_eff: float, n_cur_eff: float) -> KS:
    """Two-sample KS from weighted counts on a shared grid: statistic at cell edges, exact-statistic bound, p-value."""
    R = np.concatenate([[0.0], np.cumsum(proportions(np.asarray(ref, float)))])
    C = np.concatenate([[0.0], np.cumsum(proportions(np.asarray(cur, float)))])
    d = float(np.max(np.abs(R - C)))
    # inside a cell each ECDF stays between its values at the cell's two edges
    upper = float(max(d, np.max(np.abs(R[:-1] - C[1:])), np.max(np.abs(R[1:] - C[:-1]))))
    return KS(d, upper, ks_pvalue(d, n_ref_eff, n_cur_eff))


def ks_pvalue(d: float, n_ref_eff: float, n_cur_eff: float) -> float:
    """Asymptotic two-sample KS p-value at effective sizes (scipy's ks_2samp 'asymp' rule)."""
    en = n_ref_eff * n_cur_eff / (n_ref_eff + n_cur_eff)
    return float(sps.kstwo.sf(d, max(1, int(round(en)))))


@dataclass(frozen=True)
class Wasserstein:
    distance: float  # not normalised
    error_bound: float


def wasserstein_from_grid(grid: Grid, ref: np.ndarray, cur: np.ndarray,
                          ref_tails: tuple[float, float], cur_tails: tuple[float, float]) -> Wasserstein:
    """W1 between two weighted distributions given as grid counts plus mean excesses beyond the grid.

    ``*_tails`` are ``(sum w·(low - x) over x < low, sum w·(x - high) over x > high)``.
    """
    ref = np.asarray(ref, float)
    cur = np.asarray(cur, float)
    n_r, n_c = ref.sum(), cur.sum()
    pr, pc = ref / n_r, cur / n_c
    # interior: ECDFs at the K+1 interior edges (index 0 = low, after the below-cell)
    R = np.cumsum(pr)[:-1]
    C = np.cumsum(pc)[:-1]
    d0, d1 = (R - C)[:-1], (R - C)[1:]
    same = d0 * d1 >= 0
    denom = np.abs(d0) + np.abs(d1)
    area = np.where(same, (np.abs(d0) + np.abs(d1)) / 2,
                    (d0 ** 2 + d1 ** 2) / (2 * np.where(denom > 0, denom, 1.0)))
    widths = np.diff(grid.edges())
    interior = float((widths * area).sum())
    interior_err = float((widths * (pr[1:-1] + pc[1:-1])).sum())
    below_r, above_r = ref_tails[0] / n_r, ref_tails[1] / n_r
    below_c, above_c = cur_tails[0] / n_c, cur_tails[1] / n_c
    tails = abs(below_r - below_c) + abs(above_r - above_c)
    tails_err = 2 * min(below_r, below_c) + 2 * min(above_r, above_c)
    return Wasserstein(interior + tails, interior_err + tails_err)


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    pvalue: float
    dof: int


def chi_square(ref: np.ndarray, cur: np.ndarray, n_ref_eff: float, n_cur_eff: float) -> ChiSquare:
    """Chi-square test of homogeneity on proportions scaled to effective sample sizes."""
    p = proportions(np.asarray(ref, float)) * n_ref_eff
    q = proportions(np.asarray(cur, float)) * n_cur_eff
    keep = (p + q) > 0
    table = np.vstack([p[keep], q[keep]])
    if table.shape[1] < 2:
        return ChiSquare(0.0, 1.0, 0)
    stat, pvalue, dof, _ = sps.chi2_contingency(table, correction=False)
    return ChiSquare(float(stat), float(pvalue), int(dof))


def effective_n(sum_w: float, sum_w2: float) -> float:
    """Kish's effective sample size of a weighted sample."""
    return (sum_w * sum_w / sum_w2) if sum_w2 > 0 else 0.0


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adjusted, 1.0)
    out[ok] = res
    return out


def severity(score: float | None, bands: tuple[float, float, float]) -> str:
    """``info`` / ``warning`` / ``critical`` when `score` reaches the minor / moderate / severe band, else ``none``."""
    if score is None or not math.isfinite(score):
        return "none"
    minor, moderate, severe = bands
    if score >= severe:
        return "critical"
    if score >= moderate:
        return "warning"
    if score >= minor:
        return "info"
    return "none"
