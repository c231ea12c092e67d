"""The rows performance estimation reads: labelled reference rows, and a window's predictions.

Both come out as :class:`~.estimator.Labelled` arrays (one entry per row):

* :func:`reference_from_frame`: a training or validation frame with the
  model's outputs and the true labels (``baseline create --file ... --label``);
* :func:`from_store`: stored predictions of a window, each with its latest
  label when it has one (``ml_labels`` joined on the prediction id, as
  :mod:`.performance` joins them), in time order. A reference window keeps
  only labelled rows; an analysed window keeps every row and marks which
  have labels.

Beyond ``max_rows`` rows a window is read as a uniform hash sample
(``cityHash64(TraceId) % m = 0``) with each kept row's weight multiplied by
``m``: the sampling weights stay inverse inclusion probabilities, so the
estimates stay unbiased and their bands widen accordingly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from modelwatch_analyzer.analysis import performance, scan
from modelwatch_analyzer.analysis.baseline import Baseline, _render
from modelwatch_analyzer.analysis.estimator import Labelled
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.errors import BaselineError
from modelwatch_analyzer.store.client import Store

MAX_PROBABILITY_COLUMNS = 50


# -- a training frame ------------------------------------------------------------------


def _numbers(series: Any) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _texts(series: Any) -> np.ndarray:
    return np.array(["" if v is None or (isinstance(v, float) and math.isnan(v)) else _render(v) for v in series],
                    dtype=object)


def reference_from_frame(df: Any, *, label: str, prediction: str | None = None, score: str | None = None,
                         probabilities: str | None = None, weight: str | None = None, exclude: Iterable[str] = (),
                         categorical: Iterable[str] = ()) -> Labelled:
    """Labelled reference rows of a frame: `label` the true outcome, `prediction` the model's output, `score` a
    binary classifier's P(positive class), `probabilities` the prefix of a multiclass model's per-class columns
    (``proba_`` for ``proba_cat``, ``proba_dog``, ...). The other columns are the features (for a regressor's
    loss model); rows without a label are left out."""
    import pandas as pd

    if label not in df:
        raise BaselineError(f"label column {label!r} not in the data (columns: {', '.join(map(str, df.columns))})")
    if prediction is None or prediction not in df:
        raise BaselineError("performance estimation needs the model's output column: give --prediction with --label")
    if score is not None and score not in df:
        raise BaselineError(f"score column {score!r} not in the data")
    proba_cols = [c for c in df.columns if probabilities and str(c).startswith(probabilities)]
    if probabilities and not proba_cols:
        raise BaselineError(f"no column starts with {probabilities!r} (the per-class probability columns)")
    if len(proba_cols) > MAX_PROBABILITY_COLUMNS:
        raise BaselineError(f"{len(proba_cols)} probability columns: performance estimation takes at most "
                            f"{MAX_PROBABILITY_COLUMNS} classes")
    keep = df[label].notna().to_numpy()
    df = df[keep]
    if len(df) == 0:
        raise BaselineError(f"no row of the data has a label in {label!r}")
    w = _numbers(df[weight]) if weight else np.ones(len(df))
    skip = {label, prediction, score, weight, *proba_cols, *exclude} - {None}
    as_categorical = set(categorical)
    columns: dict[str, np.ndarray] = {}
    numeric: dict[str, bool] = {}
    for c in df.columns:
        if c in skip:
            continue
        s = df[c]
        is_num = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and c not in as_categorical
        columns[str(c)] = _numbers(s) if is_num else _texts(s)
        numeric[str(c)] = bool(is_num)
    probs = {_render_class(str(c)[len(probabilities or ""):]): _numbers(df[c]) for c in proba_cols}
    return Labelled(w, _texts(df[prediction]), _texts(df[label]), _numbers(df[prediction]), _numbers(df[label]),
                    _numbers(df[score]) if score else None, probs, columns, numeric)


def frame_features(df: Any, features: dict[str, bool], weight: str | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A frame's feature columns (name -> numeric, e.g. :func:`feature_columns` of its baseline) as arrays, and
    its row weights (column `weight`, else 1)."""
    columns = {f: _numbers(df[f]) if is_num else _texts(df[f]) for f, is_num in features.items() if f in df}
    return columns, _numbers(df[weight]) if weight else np.ones(len(df))


def _render_class(name: str) -> str:
    """A class named in a column header: ``2.0`` is the class ``2``, as the exporter renders a double."""
    try:
        value = float(name)
    except ValueError:
        return name
    return _render(value) if math.isfinite(value) and name.strip() == name else name


# -- stored predictions ------------------------------------------------------------------


def feature_columns(baseline: Baseline | None) -> dict[str, bool]:
    """The baseline's features (name -> numeric) that a loss model reads, without the model's outputs."""
    if baseline is None:
        return {}
    return {k: f.kind == "numeric" for k, f in baseline.features.items() if k not in (scan.SCORE, scan.PREDICTION)}


def stored_classes(store: Store, window: Window) -> list[str]:
    """The classes of the window's per-class probabilities (``ml.prediction.probability.<class>``)."""
    where, params = window.where()
    rows = store.query(f"SELECT groupUniqArrayArray(51)(mapKeys(Probabilities)) FROM {store.table('ml_predictions')} "
                       f"WHERE {where}", params)
    return sorted(rows[0][0]) if rows and rows[0][0] else []


def from_store(store: Store, window: Window, *, labelled_only: bool, max_rows: int, classes: Sequence[str] = (),
               features: dict[str, bool] | None = None) -> tuple[Labelled, np.ndarray, float]:
    """The window's rows as arrays, with (has-label mask, sample rate) — see the module docstring."""
    where, params = window.where()
    pred = store.table("ml_predictions")
    join = f" {'INNER' if labelled_only else 'LEFT'} JOIN ({performance.latest_labels(store)}) AS l ON p.PredictionId = l.PredictionId"
    (rows,), = store.query(f"SELECT count() FROM {pred} AS p{join if labelled_only else ''} WHERE {where}", params)
    m = max(int(math.ceil(int(rows) / max_rows)), 1) if max_rows > 0 else 1
    sample = f" AND cityHash64(TraceId) % {m} = 0" if m > 1 else ""
    features = features or {}
    params = dict(params, classes=list(classes))
    exprs = ["p.Weight", "p.Prediction", "p.PredictionNumber", "p.Score", "l.Label", "l.LabelNumber", "l.HasLabel",
             "arrayMap(k -> if(mapContains(p.Probabilities, k), p.Probabilities[k], nan), {classes:Array(String)})"]
    for i, (name, is_num) in enumerate(features.items()):
        params[f"f{i}"] = name
        exprs.append(f"if(mapContains(p.Numeric, {{f{i}:String}}), p.Numeric[{{f{i}:String}}], nan)" if is_num
                     else f"p.Categorical[{{f{i}:String}}]")
    cols = "Weight, Prediction, PredictionNumber, Score, Probabilities, Numeric, Categorical, PredictionId, Timestamp"
    sql = (f"SELECT {', '.join(exprs)} FROM (SELECT {cols} FROM {pred} WHERE {where}{sample}) AS p"
           f"{join} ORDER BY p.Timestamp SETTINGS distributed_product_mode = 'local', join_use_nulls = 1")
    out = store.columns(sql, params)
    n = len(out[0]) if out else 0
    if n == 0:
        out = [[] for _ in exprs]
    score = _num(out[3])
    probs: dict[str, np.ndarray] = {}
    if classes:
        matrix = np.array(out[7], float).reshape(n, len(classes))
        probs = {c: matrix[:, k] for k, c in enumerate(classes)}
    columns = {name: _num(out[8 + i]) if is_num else _text(out[8 + i]) for i, (name, is_num) in enumerate(features.items())}
    data = Labelled(np.asarray(out[0], float) * m, _text(out[1]), _text(out[4]), _num(out[2]), _num(out[5]),
                    score if np.isfinite(score).any() else None, probs, columns, dict(features))
    return data, np.array([h == 1 for h in out[6]], bool), 1.0 / m


def _num(xs: Any) -> np.ndarray:
    return np.array([np.nan if x is None else float(x) for x in xs], float)


def _text(xs: Any) -> np.ndarray:
    return np.array(["" if x is None else str(x) for x in xs], dtype=object)


def reference_from_window(store: Store, window: Window, baseline: Baseline | None, max_rows: int) -> Labelled:
    """The window's labelled predictions (their latest labels), with per-class probabilities and features."""
    data, _has, _rate = from_store(store, window, labelled_only=True, max_rows=max_rows,
                                   classes=stored_classes(store, window), features=feature_columns(baseline))
    return data
