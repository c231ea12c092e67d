"""Baselines: the reference statistics of one model version, built once and reused by every run.

A baseline holds, per feature (and for ``prediction.score`` /
``prediction.value``): the weighted n and effective n, the missing weight,
min/max/mean/std and, for a numeric feature, its *grid* (``GRID_CELLS``
equal cells between the reference's 0.1st and 99.9th percentiles, plus the
open cells below and above) with the exact weighted reference counts in
every cell, the mean excesses beyond the grid, the ten reference-decile PSI
bins (cell boundaries, edges and counts) and percentiles; for a categorical
feature, the weighted count of every category (the heaviest
``CATEGORY_CAP``; the rest as ``other``).

Two sources, one result:

* a training set (parquet, CSV or a pandas DataFrame), aggregated in numpy —
  the rows are already in this process;
* a reference window of stored predictions, aggregated in ClickHouse by
  the same scans as a current window (:mod:`.scan`): a first pass places
  each feature's grid, a second counts on it. Sampling weights are honoured.

Baselines are stored in ``ml_baselines`` under a new id each time; results
name the baseline they used, so a new baseline never rewrites old results.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from modelwatch_analyzer.analysis import scan
from modelwatch_analyzer.analysis.scan import CategoricalAgg, NumericAgg
from modelwatch_analyzer.analysis.stats import (
    Grid,
    decile_cuts,
    effective_n,
    make_grid,
    rebin,
)
from modelwatch_analyzer.analysis.window import Window, utc
from modelwatch_analyzer.errors import BaselineError
from modelwatch_analyzer.store.attribute_text import format_double
from modelwatch_analyzer.store.client import Store
from modelwatch_analyzer.store.schema import LEADING_ZERO

GRID_CELLS = 1000
CATEGORY_CAP = 5000
GRID_LEVELS = (0.001, 0.999)
PERCENTILES = np.arange(1, 100) / 100
MAX_CLASSES = 20
"""A numeric prediction with at most this many distinct values is a classifier's class: categorical."""

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass
class FeatureBaseline:
    feature: str
    kind: str  # numeric | categorical
    n: float  # weight of present (finite) values
    n_eff: float
    missing: float  # weight of rows without a usable value
    min: float = float("nan")
    max: float = float("nan")
    mean: float = float("nan")
    std: float = float("nan")
    grid: Grid | None = None
    grid_counts: np.ndarray | None = None
    tails: tuple[float, float] = (0.0, 0.0)
    cuts: np.ndarray | None = None
    categories: dict[str, float] = field(default_factory=dict)
    other: float = 0.0  # categorical weight beyond the cap

    @property
    def bin_counts(self) -> np.ndarray:
        assert self.grid_counts is not None and self.cuts is not None
        return rebin(self.grid_counts, self.cuts)

    @property
    def bin_edges(self) -> np.ndarray:
        """The interior edges of the PSI bins (values)."""
        assert self.grid is not None and self.cuts is not None
        return self.grid.edges()[self.cuts[1:-1] - 1]

    def percentiles(self) -> np.ndarray:
        """1st..99th weighted percentiles, interpolated inside grid cells (display only)."""
        if self.grid is None or self.grid_counts is None or self.n <= 0:
            return np.array([])
        cum = np.cumsum(self.grid_counts[1:-1]) + self.grid_counts[0]
        edges = self.grid.edges()
        cdf = np.concatenate([[self.grid_counts[0]], cum]) / self.n
        return np.interp(PERCENTILES, cdf, edges)

    @classmethod
    def numeric(cls, feature: str, agg: NumericAgg, grid: Grid, missing: float) -> FeatureBaseline:
        assert agg.grid_counts is not None
        return cls(feature, NUMERIC, agg.n, effective_n(agg.n, agg.n2), missing, agg.min, agg.max,
                   agg.mean, agg.std, grid, agg.grid_counts, (agg.tail_below, agg.tail_above),
                   decile_cuts(agg.grid_counts))

    @classmethod
    def categorical(cls, feature: str, agg: CategoricalAgg, missing: float) -> FeatureBaseline:
        kept = sum(agg.counts.values())
        return cls(feature, CATEGORICAL, agg.n, effective_n(agg.n, agg.n2), missing, categories=dict(agg.counts),
                   other=max(agg.n - kept, 0.0))


@dataclass
class Baseline:
    model: str
    version: str
    features: dict[str, FeatureBaseline]
    rows: float  # weight of all reference rows
    source: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def numeric(self) -> dict[str, FeatureBaseline]:
        return {k: f for k, f in self.features.items() if f.kind == NUMERIC}

    def categorical(self) -> dict[str, FeatureBaseline]:
        return {k: f for k, f in self.features.items() if f.kind == CATEGORICAL}


# -- from a training set --------------------------------------------------------------


def from_frame(df: Any, model: str, version: str, *, categorical: Iterable[str] = (), weight: str | None = None,
               prediction: str | None = None, score: str | None = None, exclude: Iterable[str] = (),
               source: str = "dataframe") -> Baseline:
    """A baseline from a pandas DataFrame of training (or validation) rows.

    Numeric columns are numeric features unless listed in `categorical`;
    other columns (strings, booleans, categories) are categorical, their
    values rendered as the exporter renders attributes (``true``/``false``,
    ``1.5``), so they compare with stored predictions. `prediction` and
    `score` name the model-output columns (analysed as ``prediction.value``
    and ``prediction.score``); `weight` a column of row weights.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise BaselineError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise BaselineError("the training data has no rows")
    skip = set(exclude) | ({weight} if weight else set())
    if weight is not None:
        if weight not in df:
            raise BaselineError(f"weight column {weight!r} not in the data (columns: {', '.join(map(str, df.columns))})")
        w = pd.to_numeric(df[weight], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise BaselineError(f"weight column {weight!r} must hold finite positive numbers")
    else:
        w = np.ones(len(df))
    rename = {}
    for column, role in ((prediction, scan.PREDICTION), (score, scan.SCORE)):
        if column is not None:
            if column not in df:
                raise BaselineError(f"column {column!r} not in the data")
            rename[column] = role
    as_categorical = set(categorical)
    features: dict[str, FeatureBaseline] = {}
    for column in df.columns:
        if column in skip:
            continue
        name = rename.get(column, str(column))
        series = df[column]
        numeric_dtype = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if name == scan.PREDICTION:  # a classifier's classes are categories, even when they are numbers
            numeric_dtype = numeric_dtype and series.nunique() > MAX_CLASSES
        if numeric_dtype and column not in as_categorical:
            features[name] = _numeric_from_array(name, series.to_numpy(dtype=float, na_value=np.nan), w)
        else:
            features[name] = _categorical_from_series(name, series, w)
    return Baseline(model, version, features, float(w.sum()), source)


def read_frame(path: str | Path) -> Any:
    """A parquet or CSV training file as a pandas DataFrame (a clear error when it cannot be read)."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise BaselineError(f"training file {str(p)!r} not found")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if p.suffix.lower() in (".csv", ".gz", ".txt"):
            return _read_csv(p)
    except BaselineError:
        raise
    except Exception as exc:
        raise BaselineError(f"cannot read {p}: {exc}") from exc
    raise BaselineError(f"{p.name}: use a .parquet or .csv file")


def from_file(path: str | Path, model: str, version: str, **kwargs: Any) -> Baseline:
    """A baseline from a parquet or CSV training file (see :func:`from_frame` for the options)."""
    return from_frame(read_frame(path), model, version, source=f"file:{Path(path).name}", **kwargs)


def _read_csv(path: Path) -> Any:
    """A CSV file as pandas reads it, except that a column holding a number written with a leading zero
    (``02139``) stays text: spans carry such values as text and the store keeps them as categories (see
    ``schema.LEADING_ZERO``), so the baseline must too."""
    import pandas as pd

    df = pd.read_csv(path)
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if numeric:
        text = pd.read_csv(path, usecols=numeric, dtype=str)
        for column in numeric:
            if text[column].str.match(LEADING_ZERO, na=False).any():
                df[column] = text[column]
    return df


def _numeric_from_array(name: str, x: np.ndarray, w: np.ndarray) -> FeatureBaseline:
    fin = np.isfinite(x)
    xs, ws = x[fin], w[fin]
    missing = float(w[~fin].sum())
    if xs.size == 0:
        return FeatureBaseline(name, NUMERIC, 0.0, 0.0, missing)
    order = np.argsort(xs, kind="stable")
    cw = np.cumsum(ws[order])
    lo_q = float(xs[order][np.searchsorted(cw, GRID_LEVELS[0] * cw[-1])])
    hi_q = float(xs[order][min(np.searchsorted(cw, GRID_LEVELS[1] * cw[-1]), xs.size - 1)])
    grid = _grid(float(xs.min()), float(xs.max()), lo_q, hi_q)
    idx = grid.index(xs)
    centre = grid.centre  # moments about the grid's middle, as the SQL scan takes them
    agg = NumericAgg(
        n=float(ws.sum()), n2=float((ws * ws).sum()), nonfinite=0.0, min=float(xs.min()), max=float(xs.max()),
        s1=float((ws * (xs - centre)).sum()), s2=float((ws * (xs - centre) ** 2).sum()), shift=centre,
        grid_counts=np.bincount(idx, weights=ws, minlength=grid.cells + 2).astype(float),
        tail_below=float((ws * (grid.lo - xs))[xs < grid.lo].sum()),
        tail_above=float((ws * (xs - grid.hi))[xs > grid.hi].sum()))
    return FeatureBaseline.numeric(name, agg, grid, missing)


def _grid(vmin: float, vmax: float, lo_q: float, hi_q: float) -> Grid:
    """The grid over the central 99.8% of the reference, or its whole range when that is a point."""
    if hi_q > lo_q:
        return make_grid(lo_q, hi_q, GRID_CELLS)
    return make_grid(vmin, vmax, GRID_CELLS)


def _categorical_from_series(name: str, series: Any, w: np.ndarray) -> FeatureBaseline:
    import pandas as pd

    present = series.notna().to_numpy()
    values = [_render(v) for v in series[present]]
    frame = pd.DataFrame({"v": values, "w": w[present]})
    grouped = frame.groupby("v", sort=False)["w"].agg(["sum", lambda s: float((s * s).sum())])
    grouped.columns = ["w", "w2"]
    grouped = grouped.sort_values("w", ascending=False, kind="stable")
    agg = CategoricalAgg(counts={str(k): float(v) for k, v in grouped["w"].iloc[:CATEGORY_CAP].items()},
                         n=float(grouped["w"].sum()), n2=float(grouped["w2"].sum()), distinct=len(grouped))
    return FeatureBaseline.categorical(name, agg, float(w[~present].sum()))


def _render(value: Any) -> str:
    """A training value as the SDK + exporter would store it."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_double(value)
    return str(value)


# -- from a reference window of stored predictions --------------------------------------


def from_window(store: Store, window: Window, version: str, categorical: Iterable[str] = ()) -> Baseline:
    """A baseline from stored predictions: all of `window` (weighted), recorded for model version `version`."""
    totals = scan.totals(store, window)
    if totals.rows == 0:
        raise BaselineError(f"no stored predictions for model {window.model!r}"
                            f"{' version ' + repr(window.version) if window.version else ''} "
                            f"between {window.start.isoformat()} and {window.end.isoformat()}")
    as_categorical = set(categorical)
    ranges = scan.numeric_ranges(store, window, levels=GRID_LEVELS)
    if scan.PREDICTION in ranges and ranges[scan.PREDICTION].distinct <= MAX_CLASSES:
        as_categorical.add(scan.PREDICTION)
    grids = {k: _grid(r.min, r.max, r.low, r.high) for k, r in ranges.items() if k not in as_categorical}
    numeric = scan.numeric(store, window, grids)
    # the Numeric map is read for text only when a categorical feature has numbers there
    cats = scan.categorical(store, window, numbers_as_text=sorted(as_categorical & set(ranges)), cap=CATEGORY_CAP)
    features: dict[str, FeatureBaseline] = {}
    for k, agg in numeric.items():
        text = cats.pop(k, None)  # text for a numeric feature: not part of its distribution
        features[k] = FeatureBaseline.numeric(k, agg, grids[k], totals.weight - agg.n - (text.n if text else 0.0))
    for k, agg in cats.items():
        features[k] = FeatureBaseline.categorical(k, agg, totals.weight - agg.n)
    source = f"window:{window.start.isoformat()}/{window.end.isoformat()}" + (f"#{window.version}" if window.version else "")
    if window.segment is not None:
        source = f"{SEGMENT_SOURCE}{window.segment} of {source}"
    return Baseline(window.model, version, features, totals.weight, source)


SEGMENT_SOURCE = "segment:"
"""How a segment's reference baseline's ``source`` starts (see segments.py): never a model's newest baseline."""


def source_window(baseline: Baseline) -> Window | None:
    """The stored predictions `baseline` was built from (``window:START/END[#VERSION]``); None for a file's."""
    if not baseline.source.startswith("window:"):
        return None
    span, _, version = baseline.source[len("window:"):].partition("#")
    start, _, end = span.partition("/")
    try:
        return Window(baseline.model, utc(datetime.fromisoformat(start)), utc(datetime.fromisoformat(end)),  # type: ignore[arg-type]
                      version or None)
    except ValueError:
        return None


# -- storage -------------------------------------------------------------------------------

_COLUMNS = ("ModelName", "ModelVersion", "BaselineId", "CreatedAt", "Source", "Feature", "Kind", "N", "Missing", "Min",
            "Max", "Mean", "Std", "BinEdges", "BinCounts", "Quantiles", "Categories", "CategoryCounts", "NEffective",
            "Rows", "GridLow", "GridWidth", "GridCells", "GridCounts", "TailBelow", "TailAbove", "BinCuts", "Other", "GridLog")


def save(store: Store, baseline: Baseline) -> str:
    """Store `baseline` (a new id; earlier baselines and the results that used them stay). Returns its id."""
    rows = []
    for f in baseline.features.values():
        numeric = f.kind == NUMERIC and f.grid is not None
        rows.append((
            baseline.model, baseline.version, baseline.id, baseline.created_at, baseline.source, f.feature, f.kind,
            f.n, f.missing, *(scan.finite_or_none(x) for x in (f.min, f.max, f.mean, f.std)),
            f.bin_edges.tolist() if numeric else [], f.bin_counts.tolist() if numeric else [],
            f.percentiles().tolist() if numeric else [],
            list(f.categories), list(f.categories.values()), f.n_eff, baseline.rows,
            f.grid.low if numeric else None, f.grid.width if numeric else None, f.grid.cells if numeric else 0,
            f.grid_counts.tolist() if numeric else [], f.tails[0], f.tails[1],
            f.cuts.tolist() if numeric else [], f.other, bool(f.grid.log) if numeric else False,
        ))
    store.insert("ml_baselines", rows, _COLUMNS)
    return baseline.id


def load(store: Store, model: str, version: str | None = None, baseline_id: str | None = None) -> Baseline:
    """The baseline `baseline_id`, else the newest one of (`model`, `version`), else the model's newest."""
    where = ["ModelName = {model:String}"]
    params: dict[str, Any] = {"model": model}
    if baseline_id:
        where.append("BaselineId = {id:String}")
        params["id"] = baseline_id
    else:
        if version:
            where.append("ModelVersion = {version:String}")
            params["version"] = version
        newest = store.query(f"SELECT BaselineId FROM {store.table('ml_baselines')} WHERE {' AND '.join(where)} "
                             f"AND NOT startsWith(Source, '{SEGMENT_SOURCE}') ORDER BY CreatedAt DESC, BaselineId LIMIT 1",
                             params)
        if not newest:
            what = f"model {model!r}" + (f" version {version!r}" if version else "")
            raise BaselineError(f"no baseline for {what}: create one with `modelwatch baseline create --model "
                                f"{model} --version V --file train.parquet` (or --since/--until for a window)")
        params["id"] = newest[0][0]
        where.append("BaselineId = {id:String}")
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM {store.table('ml_baselines')} FINAL "
                       f"WHERE {' AND '.join(where)} ORDER BY Feature", params)
    if not rows:
        raise BaselineError(f"baseline {baseline_id!r} of model {model!r} not found")
    features = {}
    for (m, v, bid, created, source, feature, kind, n, missing, vmin, vmax, mean, std, _edges, _counts, _q, cats,
         cat_counts, n_eff, total, g_low, g_width, g_cells, g_counts, below, above, cuts, other, g_log) in rows:
        grid = Grid(g_low, g_width, int(g_cells), bool(g_log)) if kind == NUMERIC and g_low is not None else None
        features[feature] = FeatureBaseline(
            feature, kind, n, n_eff, missing, scan.as_float(vmin), scan.as_float(vmax), scan.as_float(mean), scan.as_float(std), grid,
            np.asarray(g_counts, float) if grid else None, (below, above),
            np.asarray(cuts, dtype=np.int64) if grid else None, dict(zip(cats, cat_counts)), other)
    return Baseline(m, v, features, total, source, bid, utc(created))


def list_baselines(store: Store, model: str | None = None) -> list[tuple[str, str, str, datetime, str, int]]:
    """(model, version, id, created, source, features) of every stored baseline, newest first."""
    where, params = ("AND ModelName = {model:String}", {"model": model}) if model else ("", {})
    return store.query(f"SELECT ModelName, ModelVersion, BaselineId, max(CreatedAt), any(Source), count() "
                       f"FROM {store.table('ml_baselines')} WHERE NOT startsWith(Source, '{SEGMENT_SOURCE}') {where} "
                       "GROUP BY ModelName, ModelVersion, BaselineId "
                       "ORDER BY max(CreatedAt) DESC", params)


def keys(features: Sequence[FeatureBaseline]) -> list[str]:
    return [f.feature for f in features]
