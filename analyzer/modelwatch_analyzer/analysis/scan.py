"""The analyzer's SQL: one scan per side, returning small aggregates; no rows ever reach Python.

A window is one model's stored predictions (``ml_predictions``) between two
instants, optionally one version. Three queries read it:

* :func:`totals`: weighted row count and the sum of squared weights;
* :func:`numeric`: every numeric feature in one pass (``ARRAY JOIN`` of the
  ``Numeric`` map, grouped by feature): weighted n, sum of squared weights,
  non-finite count, min, max, weighted first and second moments (about the
  grid's centre, for baselines), weighted counts on the feature's grid (see
  :mod:`.stats`), the mean excesses beyond the grid and the weight outside
  the reference's [min, max];
* :func:`categorical`: every categorical feature in one pass: weighted
  counts per category (the heaviest ``cap`` per feature), per-feature totals,
  and the number of distinct values. Numbers that arrived for a categorical
  feature (a zip code) are counted under their exporter rendering; text that
  arrived for a numeric feature is reported, since it is a type error.

Each has a ``*_by_hour`` form that also groups by the hour (UTC) of the rows,
for :mod:`.hourly`, which keeps every analysed hour's aggregates.

The model's outputs are analysed as two more "features": ``prediction.score``
(numeric) and ``prediction.value`` (numeric for a regressor, categorical for
a classifier), so prediction drift uses the very same code.

Every value is bound as a typed parameter; nothing from the data or the
configuration is formatted into SQL text (only the grid size, an int).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from modelwatch_analyzer.analysis.stats import Grid
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.store.client import Store

_NONE = 65535  # the feature index of map keys outside the scan (UInt16: up to 65,535 features)

SCORE = "prediction.score"
PREDICTION = "prediction.value"

# features and the model's outputs as parallel (key, value) arrays, for ARRAY JOIN
_NUMERIC_PAIRS = (
    "arrayConcat(CAST(mapKeys(Numeric), 'Array(String)'), if(isNull(Score), [], ['prediction.score']), "
    "if(isNull(PredictionNumber), [], ['prediction.value'])) AS _k, "
    "arrayConcat(mapValues(Numeric), if(isNull(Score), [], [assumeNotNull(Score)]), "
    "if(isNull(PredictionNumber), [], [assumeNotNull(PredictionNumber)])) AS _v"
)
_RENDER = "replaceRegexpOne(toString(x), 'e(\\\\d)', 'e+\\\\1')"  # a Float64 as the exporter renders it


@dataclass
class Totals:
    weight: float = 0.0
    weight2: float = 0.0
    rows: int = 0


@dataclass
class NumericAgg:
    """Weighted aggregates of one numeric feature over one side."""

    n: float = 0.0  # weight of finite values
    n2: float = 0.0  # sum of squared weights of finite values
    nonfinite: float = 0.0
    min: float = float("nan")
    max: float = float("nan")
    s1: float = 0.0
    s2: float = 0.0
    grid_counts: np.ndarray | None = None
    tail_below: float = 0.0
    tail_above: float = 0.0
    out_of_range: float = 0.0
    shift: float = 0.0  # s1 and s2 are moments of (value - shift): a shift near the mean keeps s2/n - (s1/n)² exact

    @property
    def mean(self) -> float:
        return self.shift + self.s1 / self.n if self.n > 0 else float("nan")

    @property
    def std(self) -> float:
        if self.n <= 0:
            return float("nan")
        m = self.s1 / self.n
        var = max(self.s2 / self.n - m * m, 0.0)
        return float(np.sqrt(var))


@dataclass
class CategoricalAgg:
    """Weighted counts of one categorical feature's values over one side (the heaviest `cap`)."""

    counts: dict[str, float] = field(default_factory=dict)
    n: float = 0.0  # all values, including those beyond the cap
    n2: float = 0.0
    distinct: int = 0


HOUR = 3600
"""Seconds in the buckets of the hourly scans (:mod:`.hourly` keeps their aggregates)."""


def _hour(hourly: bool) -> str:
    """SQL: the bucket of a row, as the epoch second its hour starts at (0 for every row when not `hourly`)."""
    return "toUInt32(toStartOfHour(Timestamp, 'UTC'))" if hourly else "toUInt32(0)"


def totals(store: Store, window: Window) -> Totals:
    return totals_by_hour(store, window, hourly=False).get(0, Totals())


def totals_by_hour(store: Store, window: Window, hourly: bool = True) -> dict[int, Totals]:
    """Weighted row count and sum of squared weights of the window, per hour (or as one bucket, key 0)."""
    where, params = window.where()
    rows = store.query(f"SELECT {_hour(hourly)} AS h, sum(Weight), sum(Weight * Weight), count() "
                       f"FROM {store.table('ml_predictions')} WHERE {where} GROUP BY h", params)
    return {int(h): Totals(float(w or 0.0), float(w2 or 0.0), int(n or 0)) for h, w, w2, n in rows}


SAMPLE_BUCKETS = 1024
"""Resolution of :func:`sample_rate`: a sampled scan reads the rows whose span id hashes below k of this many buckets."""


def sample_rate(rows: int, max_rows: int) -> float:
    """The share of rows a scan of `rows` reads to stay near `max_rows` (0: every row), in 1/1024 steps, at least 1/1024."""
    if max_rows <= 0 or rows <= max_rows:
        return 1.0
    return max(1, math.ceil(SAMPLE_BUCKETS * max_rows / rows)) / SAMPLE_BUCKETS


def numeric(store: Store, window: Window, grids: dict[str, Grid], ranges: dict[str, tuple[float, float]] | None = None,
            moments: bool = True) -> dict[str, NumericAgg]:
    """One pass over the window for every feature in `grids`, each binned on its own grid (see :func:`numeric_by_hour`)."""
    return {k: agg for (_h, k), agg in numeric_by_hour(store, window, grids, ranges, moments, hourly=False).items()}


def numeric_by_hour(store: Store, window: Window, grids: dict[str, Grid],
                    ranges: dict[str, tuple[float, float]] | None = None, moments: bool = True,
                    hourly: bool = True, present: Sequence[str] = (),
                    sample: float = 1.0) -> dict[tuple[int, str], NumericAgg]:
    """One pass over the window for every feature in `grids`, each binned on its own grid, per (hour, feature).

    `ranges` (reference min, max per feature) gives the out-of-range weight;
    without `moments` the weighted first and second moments are not summed
    (``s1``/``s2`` are NaN: an analysis needs the grid, not the current mean).
    All grids must have the same number of cells. Map keys in `present` (and
    not in `grids`) are only counted (``n``, ``n2``, ``nonfinite``; no grid):
    the numbers a categorical feature received, so that the categorical scan
    reads the ``Numeric`` map only when there are some (see :func:`categorical_by_hour`).

    A `sample` below 1 (a multiple of 1/1024, see :func:`sample_rate`) reads
    only the predictions whose span id hashes into that share of buckets — a
    uniform random sample, the same on every run, independent of the values —
    and weighs each by 1/`sample`: weights, cells and tails estimate the
    whole window's, the sum of squared weights scales alike, so effective
    sample sizes (and p-values) are those of the rows read. Minimum and
    maximum are the sample's.
    """
    extra = [k for k in dict.fromkeys(present) if k not in grids and k not in (SCORE, PREDICTION)]
    if not grids and not extra:
        return {}
    cells = {g.cells for g in grids.values()} or {1}
    if len(cells) != 1:
        raise ValueError("every grid of one scan must have the same number of cells")
    k_cells = int(cells.pop())
    # log grids first, so that "is this value's grid a log grid" is one comparison of its feature index;
    # the keys only counted last, on a placeholder grid
    keys = sorted(grids, key=lambda k: not grids[k].log) + extra
    placeholder = Grid(0.0, 1.0, k_cells)
    grid_of = [grids.get(k, placeholder) for k in keys]
    where, params = window.where()
    params.update({
        "keys": keys,
        "idx": list(range(len(keys))),
        "lo": [g.lo for g in grid_of],
        "hi": [g.hi for g in grid_of],
        "t0": [float(g.low) for g in grid_of],
        "width": [float(g.width) for g in grid_of],
    })
    where, weight = _sampled(where, params, sample)
    branches = _numeric_branches(store.table("ml_predictions"), _hour(hourly), weight, where, keys, params)
    aggregates = _numeric_aggregates(k_cells, sum(1 for k in grids if grids[k].log), keys, grid_of, params,
                                     moments, ranges)
    sql = f"""WITH
    isFinite(v) AS fin,
    {_per_feature('lo', '0.')} AS lo,
    {_per_feature('hi', '0.')} AS hi,
    toUInt16(if(fin, (v >= lo) * {aggregates.pop(0)} + (v > hi), {k_cells + 2})) AS cell
SELECT h, i, {", ".join(aggregates)}
FROM ({" UNION ALL ".join(branches)})
WHERE i != {_NONE}
GROUP BY h, i
SETTINGS short_circuit_function_evaluation = 'force_enable'
"""
    return _numeric_aggs(store.query(sql, params), keys, grids, grid_of, k_cells)


def _numeric_aggs(rows: Iterable[Sequence[Any]], keys: list[str], grids: dict[str, Grid], grid_of: list[Grid],
                  k_cells: int) -> dict[tuple[int, str], NumericAgg]:
    """The rows of a numeric scan as aggregates per (hour, feature); counts only for a key without a grid."""
    out: dict[tuple[int, str], NumericAgg] = {}
    for h, i, grid, n2, lo_v, hi_v, below, above, s1, s2, oor in rows:
        counts = np.asarray(grid, dtype=float)
        n = float(counts[:k_cells + 2].sum())
        if keys[i] not in grids:
            out[int(h), keys[i]] = NumericAgg(n, float(n2), float(counts[k_cells + 2]))
            continue
        out[int(h), keys[i]] = NumericAgg(n, float(n2), float(counts[k_cells + 2]), as_float(lo_v) if n else float("nan"),
                                  as_float(hi_v) if n else float("nan"), float(s1), float(s2), counts[:k_cells + 2],
                                  float(below), float(above), float(oor), grid_of[i].centre)
    return out


def _sampled(where: str, params: dict[str, Any], sample: float) -> tuple[str, str]:
    """The filter and the weight expression of a scan reading a `sample` share of the rows (see
    :func:`numeric_by_hour`); all rows at weight ``Weight`` when `sample` is 1."""
    if sample >= 1.0:
        return where, "Weight"
    buckets = max(1, min(SAMPLE_BUCKETS, round(sample * SAMPLE_BUCKETS)))
    params.update(sample_buckets=buckets, sample_scale=SAMPLE_BUCKETS / buckets)
    return (where + f" AND cityHash64(SpanId) % {SAMPLE_BUCKETS} < {{sample_buckets:UInt16}}",
            "Weight * {sample_scale:Float64}")


def _numeric_branches(table: str, hour: str, weight: str, where: str, keys: list[str],
                      params: dict[str, Any]) -> list[str]:
    """The ``(h, w, i, v)`` rows of a numeric scan, i the feature's index.

    Map pairs and the two output columns become (w, i, v) rows, i a UInt16 (so the GROUP BY and the
    per-feature parameter lookups are array lookups, not string hashing); the outputs are plain columns,
    read by their own branch instead of being concatenated to every row's map."""
    branches = [f"SELECT {hour} AS h, {weight} AS w, transform(_key, {{keys:Array(String)}}, {{idx:Array(UInt16)}}, {_NONE}) AS i, v "
                f"FROM {table} ARRAY JOIN mapKeys(Numeric) AS _key, mapValues(Numeric) AS v WHERE {where}"]
    for name, column, param in ((SCORE, "Score", "score_i"), (PREDICTION, "PredictionNumber", "prediction_i")):
        if name in keys:
            params[param] = keys.index(name)
            branches.append(f"SELECT {hour} AS h, {weight} AS w, {{{param}:UInt16}} AS i, assumeNotNull({column}) AS v "
                            f"FROM {table} WHERE {where} AND isNotNull({column})")
    return branches


def _per_feature(name: str, default: str) -> str:
    """SQL: the per-feature parameter array `name` at the row's feature index ``i``."""
    return f"transform(i, {{idx:Array(UInt16)}}, {{{name}:Array(Float64)}}, {default})"


def _numeric_aggregates(k_cells: int, n_log: int, keys: list[str], grid_of: list[Grid], params: dict[str, Any],
                        moments: bool, ranges: dict[str, tuple[float, float]] | None) -> list[str]:
    """The cell expression inside the grid (first), then the aggregates of a numeric scan, in the order
    :func:`numeric_by_hour` reads them.

    The value's cell, as Grid.index: 0 below lo, 1..K inside [lo, hi], K+1 above hi; K+2 a non-finite
    value. Every per-value aggregate but the few below is a sum over cells, so it comes from one
    sumResample: each operation here is a pass over every (feature, value) pair of the window."""
    inner = (f"least(greatest(floor((if(i < {n_log}, log(greatest(v, lo)), v) - {_per_feature('t0', '0.')}) / "
             f"{_per_feature('width', '1.')}) + 1, 1), {k_cells})")
    aggregates = [f"sumResample(0, {k_cells + 3}, 1)(w, cell)", "sumIf(w * w, fin)", "minIf(v, fin)", "maxIf(v, fin)",
                  "sumIf(w * (lo - v), cell = 0)", f"sumIf(w * (v - hi), cell = {k_cells + 1})"]
    if moments:  # about the grid's centre: for a feature far from zero (1e9 + noise), s2/n - mean² cancels to noise
        params["centre"] = [g.centre for g in grid_of]
        centred = f"(v - {_per_feature('centre', '0.')})"
        aggregates += [f"sumIf(w * {centred}, fin)", f"sumIf(w * {centred} * {centred}, fin)"]
    else:
        aggregates += ["nan", "nan"]
    if ranges:
        params["rmin"] = [float(ranges.get(k, (-np.inf, np.inf))[0]) for k in keys]
        params["rmax"] = [float(ranges.get(k, (-np.inf, np.inf))[1]) for k in keys]
        aggregates.append(f"sumIf(w, fin AND (v < {_per_feature('rmin', '0.')} OR v > {_per_feature('rmax', '0.')}))")
    else:
        aggregates.append("0.")
    return [inner, *aggregates]


def as_float(x: Any) -> float:
    """A nullable number from the store as a float: NaN for NULL."""
    return float("nan") if x is None else float(x)


def finite_or_none(x: float | None) -> float | None:
    """A float for a Nullable column: None for NaN or infinity."""
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class Range:
    min: float
    max: float
    low: float  # low quantile (t-digest: it only places a grid)
    high: float
    distinct: int  # up to 21


def numeric_ranges(store: Store, window: Window, keys: Sequence[str] | None = None,
                   levels: tuple[float, float] = (0.001, 0.999)) -> dict[str, Range]:
    """Where every numeric feature's values are, to place its grid."""
    where, params = window.where()
    key_filter = "WHERE has({keys:Array(String)}, _key)" if keys is not None else ""
    if keys is not None:
        params["keys"] = list(keys)
    sql = f"""SELECT _key, minIf(v, isFinite(v)), maxIf(v, isFinite(v)),
    quantilesTDigestIf({float(levels[0])!r}, {float(levels[1])!r})(v, isFinite(v)), uniqUpToIf(21)(v, isFinite(v))
FROM (SELECT {_NUMERIC_PAIRS} FROM {store.table('ml_predictions')} WHERE {where})
ARRAY JOIN _k AS _key, _v AS v
{key_filter}
GROUP BY _key"""
    return {k: Range(as_float(lo), as_float(hi), as_float(q[0]), as_float(q[1]), int(d)) for k, lo, hi, q, d in store.query(sql, params)}


def categorical(store: Store, window: Window, keys: Sequence[str] | None = None, numbers_as_text: Sequence[str] = (),
                cap: int = 5000) -> dict[str, CategoricalAgg]:
    """One pass for the categorical values of `keys` (all when None); `numbers_as_text` are categorical
    features whose numeric-looking values landed in the Numeric map (their rendering counts as the category)."""
    return {k: agg for (_h, k), agg in categorical_by_hour(store, window, keys, numbers_as_text, cap, hourly=False).items()}


def categorical_by_hour(store: Store, window: Window, keys: Sequence[str] | None = None,
                        numbers_as_text: Sequence[str] = (), cap: int = 5000,
                        hourly: bool = True) -> dict[tuple[int, str], CategoricalAgg]:
    """:func:`categorical` per (hour, feature): the heaviest `cap` values of each feature in each hour."""
    where, params = window.where()
    hour = _hour(hourly)
    params["as_text"] = list(numbers_as_text)
    key_filter = "WHERE has({keys:Array(String)}, _key)" if keys is not None else ""
    if keys is not None:
        params["keys"] = list(keys)
    # one branch per source of (w, key, value): the Categorical map, the prediction, and the numbers of
    # `numbers_as_text` (only rows holding one of those keys: PREWHERE reads the map's keys alone first)
    table = store.table('ml_predictions')
    render = _RENDER.replace("toString(x)", "toString(v)")
    branches = [
        f"SELECT {hour} AS h, Weight AS w, _key, _val FROM {table} "
        f"ARRAY JOIN mapKeys(Categorical) AS _key, mapValues(Categorical) AS _val WHERE {where}",
        f"SELECT {hour} AS h, Weight AS w, toLowCardinality('{PREDICTION}') AS _key, Prediction AS _val FROM {table} "
        f"WHERE {where} AND Prediction != '' AND (isNull(PredictionNumber) OR has({{as_text:Array(String)}}, '{PREDICTION}'))",
    ]
    in_map = [k for k in numbers_as_text if k != PREDICTION]
    if in_map:  # reading every row's Numeric keys costs ~0.9 CPU-s per million rows: only when asked to
        params["as_text_map"] = in_map
        branches.append(
            f"SELECT {hour} AS h, Weight AS w, _key, {render} AS _val FROM {table} "
            f"ARRAY JOIN mapKeys(Numeric) AS _key, mapValues(Numeric) AS v "
            f"PREWHERE hasAny(mapKeys(Numeric), {{as_text_map:Array(String)}}) "
            f"WHERE {where} AND has({{as_text_map:Array(String)}}, _key)")
    sql = f"""SELECT h, _key, _val, cw, sum(cw) OVER (PARTITION BY h, _key), sum(cw2) OVER (PARTITION BY h, _key),
    count() OVER (PARTITION BY h, _key)
FROM (
    SELECT h, _key, _val, sum(w) AS cw, sum(w * w) AS cw2
    FROM ({" UNION ALL ".join(branches)})
    {key_filter}
    GROUP BY h, _key, _val
)
ORDER BY h, _key, cw DESC, _val
LIMIT {int(cap)} BY h, _key"""
    out: dict[tuple[int, str], CategoricalAgg] = {}
    for h, key, value, w, total, total2, distinct in store.query(sql, params):
        agg = out.setdefault((int(h), key), CategoricalAgg(n=float(total), n2=float(total2), distinct=int(distinct)))
        agg.counts[value] = float(w)
    return out
