"""Test data: typed prediction rows written straight into ``ml_predictions`` (and labels into ``ml_labels``).

The analyzer reads only these tables, so its tests fill them directly with
seeded numpy data and check the statistics against numpy/scipy oracles on
the very same arrays. (The path spans → tables is tested in test_serve.)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

import numpy as np
from modelwatch_analyzer.analysis import analyze, baseline
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.outputs.alerts.firing import Alerter
from modelwatch_analyzer.outputs.alerts.rules import AlertConfig
from modelwatch_analyzer.store.client import Store

# recent: older rows would fall to the tables' TTLs at once
T0 = (datetime.now(timezone.utc) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)

# PredictionId is an ALIAS of OwnPredictionId (else TraceId): rows are written with their own ids
COLUMNS = ("Timestamp", "ModelName", "ModelVersion", "OwnPredictionId", "TraceId", "SpanId", "ServiceName", "Weight",
           "Reason", "Prediction", "PredictionNumber", "Score", "Numeric", "Categorical")


def insert(store: Store, model: str, start: datetime, numeric: Mapping[str, np.ndarray] | None = None,
           categorical: Mapping[str, Sequence[str]] | None = None, weights: np.ndarray | None = None,
           score: np.ndarray | None = None, prediction: Sequence[str] | None = None, version: str = "1",
           seconds: float = 3600.0, id_prefix: str = "p",
           probabilities: Mapping[str, np.ndarray] | None = None,
           resource: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Insert n predictions spread evenly over `seconds` from `start`; NaN in a numeric array = feature absent.
    `probabilities`: class -> P(class) per row (``ml_predictions.Probabilities``); `resource`: attribute -> value
    per row (``ml_predictions.Resource``). Returns the prediction ids."""
    numeric = dict(numeric or {})
    categorical = dict(categorical or {})
    n = len(next(iter(numeric.values()))) if numeric else len(next(iter(categorical.values()))) if categorical \
        else len(prediction or [])
    weights = np.ones(n) if weights is None else weights
    ids = [f"{id_prefix}{i}" for i in range(n)]
    rows = []
    for i in range(n):
        num = {k: float(v[i]) for k, v in numeric.items() if not np.isnan(v[i])}
        cat = {k: str(v[i]) for k, v in categorical.items() if v[i] is not None}
        pred = prediction[i] if prediction is not None else ""
        try:
            pred_num = float(pred) if pred != "" else None
        except ValueError:
            pred_num = None
        row = (start + timedelta(seconds=seconds * i / n), model, version, ids[i], f"{i:032x}", f"{i:016x}", "svc",
               float(weights[i]), "random", pred, pred_num, None if score is None else float(score[i]), num, cat)
        if probabilities is not None:
            row += ({k: float(v[i]) for k, v in probabilities.items()},)
        if resource is not None:
            row += ({k: str(v[i]) for k, v in resource.items()},)
        rows.append(row)
    store.insert("ml_predictions", rows, COLUMNS + (("Probabilities",) if probabilities is not None else ())
                 + (("Resource",) if resource is not None else ()))
    return ids


def insert_labels(store: Store, model: str, ids: Sequence[str], labels: Sequence[str], at: datetime) -> None:
    rows = []
    for pid, label in zip(ids, labels):
        try:
            number = float(label)
        except ValueError:
            number = None
        rows.append((at, model, "1", pid, str(label), number, ""))
    store.insert("ml_labels", rows, ("Timestamp", "ModelName", "ModelVersion", "PredictionId", "Label", "LabelNumber",
                                     "TraceId"))


HOSTILE_MODEL = "credit</title><script>alert('m')</script>"
HOSTILE_FEATURE = "inc\"ome'><img src=x onerror=alert(1)>"
HOSTILE_CATEGORY = "<script>window.pwned=1</script>"


def analysed_hostile(store: Store) -> Store:
    """A model with hostile names, analysed over six hourly windows: drift from the fourth on, labels, alerts."""
    rng = np.random.default_rng(5)
    n = 600
    ref_ids = insert(store, HOSTILE_MODEL, T0, {HOSTILE_FEATURE: rng.lognormal(10, 0.4, n), "age": rng.normal(40, 9, n)},
                     {"region": rng.choice(["north", "south"], n)}, score=rng.beta(2, 5, n),
                     prediction=list(rng.choice(["true", "false"], n)), id_prefix="r")
    insert_labels(store, HOSTILE_MODEL, ref_ids, list(rng.choice(["true", "false"], n)), T0 + timedelta(hours=1))
    for h in range(1, 6):
        drifted = h >= 3
        ids = insert(store, HOSTILE_MODEL, T0 + timedelta(hours=h),
                     {HOSTILE_FEATURE: rng.lognormal(9.6 if drifted else 10, 0.4, n), "age": rng.normal(40, 9, n)},
                     {"region": rng.choice(["north", "south", HOSTILE_CATEGORY] if drifted else ["north", "south"], n)},
                     score=rng.beta(2, 5, n), prediction=list(rng.choice(["true", "false"], n)), id_prefix=f"w{h}-")
        insert_labels(store, HOSTILE_MODEL, ids, list(rng.choice(["true", "false"], n)), T0 + timedelta(hours=h + 1))
    base = baseline.from_window(store, Window(HOSTILE_MODEL, T0, T0 + timedelta(hours=1)), "1")
    baseline.save(store, base)
    alerter = Alerter(store, AlertConfig())
    for h in range(1, 6):
        w = Window(HOSTILE_MODEL, T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1))
        rows = analyze.run(store, w, baseline=base)
        alerter.process(rows, now=w.end)
    return store


