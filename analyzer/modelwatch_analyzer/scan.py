"""The analyzer's SQL: one scan per side, returning small aggregates; no rows ever reach Python.

A window is one model's stored predictions (``ml_predictions``) between two
instants, optionally one version. Three queries read it:

* :func:`totals`: weighted row count and the sum of squared weights;
* :func:`numeric`: every numeric feature in one pass (``ARRAY JOIN`` of the
  ``Numeric`` map, grouped by feature): weighted n, sum of squared weights,
  non-finite count, min, max, weighted first and second moments, weighted
  counts on the feature's grid (see :mod:`.stats`), the mean excesses beyond
  the grid and the weight outside the reference's [min, max];
* :func:`categorical`: every categorical feature in one pass: weighted
  counts per category (the heaviest ``cap`` per feature), per-feature totals,
  and the number of distinct values. Numbers that arrived for a categorical
  feature (a zip code) are counted under their exporter rendering; text that
  arrived for a numeric feature is reported, since it is a type error.

The model's outputs are analysed as two more "features": ``prediction.score``
(numeric) and ``prediction.value`` (numeric for a regressor, categorical for
a classifier), so prediction drift uses the very same code.

Every value is bound as a typed parameter; nothing from the data or the
configuration is formatted into SQL text (only the grid size, an int).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from .stats import Grid
from .store import Store

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
_CATEGORICAL_PAIRS = (
    "arrayConcat(CAST(mapKeys(Categorical), 'Array(String)'), if(Prediction != '' AND (isNull(PredictionNumber) OR has({as_text:Array(String)}, 'prediction.value')), ['prediction.value'], []), "
    "arrayFilter(k -> has({as_text:Array(String)}, k), _nk)) AS _k, "
    "arrayConcat(mapValues(Categorical), if(Prediction != '' AND (isNull(PredictionNumber) OR has({as_text:Array(String)}, 'prediction.value')), [Prediction], []), "
    f"arrayMap(x -> {_RENDER}, arrayFilter((x, k) -> has({{as_text:Array(String)}}, k), _nv, _nk))) AS _v"
)


@dataclass(frozen=True)
class Window:
    """One model's predictions in [start, end), optionally one version ('' or None: every version)."""

    model: str
    start: datetime
    end: datetime
    version: str | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        sql = ("ModelName = {model:String} AND Timestamp >= fromUnixTimestamp64Nano({start:Int64}) "
               "AND Timestamp < fromUnixTimestamp64Nano({end:Int64})")
        params: dict[str, Any] = {"model": self.model, "start": _ns(self.start), "end": _ns(self.end)}
        if self.version:
            sql += " AND ModelVersion = {version:String}"
            params["version"] = self.version
        return sql, params


def _ns(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(round(t.timestamp() * 1e6)) * 1000


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

    @property
    def mean(self) -> float:
        return self.s1 / self.n if self.n > 0 else float("nan")

    @property
    def std(self) -> float:
        if self.n <= 0:
            return float("nan")
        var = max(self.s2 / self.n - self.mean ** 2, 0.0)
        return float(np.sqrt(var))


@dataclass
class CategoricalAgg:
    """Weighted counts of one categorical feature's values over one side (the heaviest `cap`)."""

    counts: dict[str, float] = field(default_factory=dict)
    n: float = 0.0  # all values, including those beyond the cap
    n2: float = 0.0
    distinct: int = 0


def totals(store: Store, window: Window) -> Totals:
    where, params = window.where()
    rows = store.query(f"SELECT sum(Weight), sum(Weight * Weight), count() FROM {store.table('ml_predictions')} "
                       f"WHERE {where}", params)
    w, w2, n = rows[0] if rows else (0.0, 0.0, 0)
    return Totals(float(w or 0.0), float(w2 or 0.0), int(n or 0))


def numeric(store: Store, window: Window, grids: dict[str, Grid], ranges: dict[str, tuple[float, float]] | None = None,
            ) -> dict[str, NumericAgg]:
    """One pass over the window for every feature in `grids`, each binned on its own grid.

    `ranges` (reference min, max per feature) gives the out-of-range weight.
    All grids must have the same number of cells.
    """
    if not grids:
        return {}
    keys = list(grids)
    cells = {g.cells for g in grids.values()}
    if len(cells) != 1:
        raise ValueError("every grid of one scan must have the same number of cells")
    k_cells = int(cells.pop())
    ranges = ranges or {}
    where, params = window.where()
    params.update({
        "keys": keys,
        "lo": [grids[k].lo for k in keys],
        "hi": [grids[k].hi for k in keys],
        "t0": [float(grids[k].low) for k in keys],
        "width": [float(grids[k].width) for k in keys],
        "log": [k for k in keys if grids[k].log],
        "rmin": [float(ranges.get(k, (-np.inf, np.inf))[0]) for k in keys],
        "rmax": [float(ranges.get(k, (-np.inf, np.inf))[1]) for k in keys],
    })
    sql = f"""SELECT _key, sumIf(w, fin), sumIf(w * w, fin), sumIf(w, NOT fin), minIf(v, fin), maxIf(v, fin),
    sumIf(w * v, fin), sumIf(w * v * v, fin),
    sumResample(0, {k_cells + 2}, 1)(if(fin, w, 0.), bin),
    sumIf(w * (lo - v), fin AND v < lo), sumIf(w * (v - hi), fin AND v > hi),
    sumIf(w, fin AND (v < rmin OR v > rmax))
FROM (
    SELECT Weight AS w, {_NUMERIC_PAIRS}
    FROM {store.table('ml_predictions')} WHERE {where}
)
ARRAY JOIN _k AS _key, _v AS v
WHERE has({{keys:Array(String)}}, _key)
GROUP BY _key
"""
    # per-feature grid parameters, looked up by key (transform is a hash lookup)
    sql = sql.replace("SELECT _key,", """WITH
    isFinite(v) AS fin,
    transform(_key, {keys:Array(String)}, {lo:Array(Float64)}, 0.) AS lo,
    transform(_key, {keys:Array(String)}, {hi:Array(Float64)}, 0.) AS hi,
    transform(_key, {keys:Array(String)}, {t0:Array(Float64)}, 0.) AS t0,
    transform(_key, {keys:Array(String)}, {width:Array(Float64)}, 1.) AS width,
    transform(_key, {keys:Array(String)}, {rmin:Array(Float64)}, 0.) AS rmin,
    transform(_key, {keys:Array(String)}, {rmax:Array(Float64)}, 0.) AS rmax,
    toUInt32(if(fin, multiIf(v < lo, 0, v > hi, """ + str(k_cells + 1) + """,
        greatest(1, least(""" + str(k_cells) + """, toInt64(floor((if(has({log:Array(String)}, _key), log(v), v) - t0) / width)) + 1))),
        0)) AS bin
SELECT _key,""", 1)
    out: dict[str, NumericAgg] = {}
    for key, n, n2, nonfinite, lo_v, hi_v, s1, s2, grid, below, above, oor in store.query(sql, params):
        out[key] = NumericAgg(float(n), float(n2), float(nonfinite), _f(lo_v) if n else float("nan"),
                              _f(hi_v) if n else float("nan"), float(s1), float(s2),
                              np.asarray(grid, dtype=float), float(below), float(above), float(oor))
    return out


def _f(x: Any) -> float:
    return float("nan") if x is None else float(x)


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
    return {k: Range(_f(lo), _f(hi), _f(q[0]), _f(q[1]), int(d)) for k, lo, hi, q, d in store.query(sql, params)}


def categorical(store: Store, window: Window, keys: Sequence[str] | None = None, numbers_as_text: Sequence[str] = (),
                cap: int = 5000) -> dict[str, CategoricalAgg]:
    """One pass for the categorical values of `keys` (all when None); `numbers_as_text` are categorical
    features whose numeric-looking values landed in the Numeric map (their rendering counts as the category)."""
    where, params = window.where()
    params["as_text"] = list(numbers_as_text)
    key_filter = "WHERE has({keys:Array(String)}, _key)" if keys is not None else ""
    if keys is not None:
        params["keys"] = list(keys)
    sql = f"""SELECT _key, _val, cw, sum(cw) OVER (PARTITION BY _key), sum(cw2) OVER (PARTITION BY _key),
    count() OVER (PARTITION BY _key)
FROM (
    SELECT _key, _val, sum(w) AS cw, sum(w * w) AS cw2
    FROM (
        SELECT Weight AS w, CAST(mapKeys(Numeric), 'Array(String)') AS _nk, mapValues(Numeric) AS _nv,
            {_CATEGORICAL_PAIRS}
        FROM {store.table('ml_predictions')} WHERE {where}
    )
    ARRAY JOIN _k AS _key, _v AS _val
    {key_filter}
    GROUP BY _key, _val
)
ORDER BY _key, cw DESC, _val
LIMIT {int(cap)} BY _key"""
    out: dict[str, CategoricalAgg] = {}
    for key, value, w, total, total2, distinct in store.query(sql, params):
        agg = out.setdefault(key, CategoricalAgg(n=float(total), n2=float(total2), distinct=int(distinct)))
        agg.counts[value] = float(w)
    return out
