"""What one analysis produces: :class:`Result` rows, their severities, and how they are stored.

Every number the analyzer computes is one :class:`Result`: a drift statistic
for a feature (``kind="drift"``), a data-quality rate (``"data_quality"``), a
performance metric against labels (``"performance"``) or the model-level
summary (``"summary"``). Model-level results have ``feature=None`` (stored as
``''``). The same rows go to the ``ml_results`` table, to ``--format json``,
to alert rules and, through :func:`modelwatch_analyzer.outputs.metrics.metric_points`,
out as OTel metrics.

``status`` is ``"ok"``, or ``"insufficient_data"`` when a side has fewer
(effective) observations than the method needs: then ``statistic``,
``pvalue`` and ``drifted`` are ``None`` and no verdict is given.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from modelwatch_analyzer.analysis.window import utc
from modelwatch_analyzer.store.client import Store

SEVERITIES = ("none", "info", "warning", "critical")
"""In increasing order. info = minor drift, warning = moderate, critical = severe."""

OK = "ok"
INSUFFICIENT = "insufficient_data"


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass
class Result:
    model: str
    version: str
    feature: str | None
    method: str
    kind: str  # drift | data_quality | performance | summary
    statistic: float | None
    pvalue: float | None = None
    threshold: float | None = None
    drifted: bool | None = None
    severity: str = "none"
    n_reference: float = 0.0
    n_current: float = 0.0
    status: str = OK
    details: dict[str, Any] = field(default_factory=dict)
    window_start: datetime | None = None
    window_end: datetime | None = None
    baseline_id: str = ""
    run_id: str = ""
    run_at: datetime | None = None
    segment: str = ""  # '' for the whole population, else ``key=value`` (see segments.py)

    def to_json(self) -> dict[str, Any]:
        out = _clean(asdict(self))
        for key in ("window_start", "window_end", "run_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        for key in ("statistic", "pvalue", "threshold"):
            out[key] = _finite_or_none(out[key])
        return out


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


RESULT_COLUMNS = ("RunId", "RunAt", "ModelName", "ModelVersion", "WindowStart", "WindowEnd", "BaselineId", "Feature",
                  "Method", "Kind", "Status", "Statistic", "PValue", "Threshold", "Drifted", "Severity", "NReference",
                  "NCurrent", "Details", "Segment")


def save(store: Store, results: Sequence[Result]) -> None:
    """Write `results` to ``ml_results``; a re-run of the same window replaces the earlier rows (ReplacingMergeTree)."""
    rows = [(
        r.run_id, r.run_at, r.model, r.version, r.window_start, r.window_end, r.baseline_id, r.feature or "",
        r.method, r.kind, r.status, _finite_or_none(r.statistic), _finite_or_none(r.pvalue),
        _finite_or_none(r.threshold), r.drifted, r.severity, float(r.n_reference), float(r.n_current),
        json.dumps(_clean(r.details), default=_jsonable, allow_nan=False, sort_keys=True), r.segment,
    ) for r in results]
    store.insert("ml_results", rows, RESULT_COLUMNS)


def _clean(x: Any) -> Any:
    """Details as JSON allows them: non-finite numbers become null."""
    if isinstance(x, float) or (hasattr(x, "dtype") and getattr(x, "ndim", 1) == 0):
        x = float(x) if not isinstance(x, (bool, int)) and hasattr(x, "__float__") else x
        return x if not isinstance(x, float) or math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "tolist"):
        return _clean(x.tolist())
    return x


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, datetime):
        return x.isoformat()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def load(store: Store, model: str, window_start: datetime | None = None, window_end: datetime | None = None,
         version: str | None = None, segments: bool = False) -> list[Result]:
    """The latest results stored for `model` (optionally one version, windows inside [start, end]); the whole
    population's, and with `segments` the segments' too."""
    where = ["ModelName = {model:String}"] + ([] if segments else ["Segment = ''"])
    params: dict[str, Any] = {"model": model}
    if version is not None:
        where.append("ModelVersion = {version:String}")
        params["version"] = version
    if window_start is not None:
        where.append("WindowStart >= {start:DateTime64(3)}")
        params["start"] = window_start
    if window_end is not None:
        where.append("WindowEnd <= {end:DateTime64(3)}")
        params["end"] = window_end
    rows = store.query(
        f"SELECT {', '.join(RESULT_COLUMNS)} FROM {store.table('ml_results')} FINAL WHERE {' AND '.join(where)} "
        "ORDER BY WindowStart, Feature, Method", params)
    out = []
    for (run_id, run_at, m, v, ws, we, bid, feature, method, kind, status, stat, p, thr, drifted, sev, nr, nc,
         details, segment) in rows:
        out.append(Result(model=m, version=v, feature=feature or None, method=method, kind=kind, statistic=stat,
                          pvalue=p, threshold=thr, drifted=drifted, severity=sev, n_reference=nr, n_current=nc,
                          status=status, details=json.loads(details or "{}"), window_start=utc(ws),
                          window_end=utc(we), baseline_id=bid, run_id=run_id, run_at=utc(run_at),
                          segment=segment))
    return out


def worst(results: Iterable[Result]) -> str:
    return max((r.severity for r in results), key=severity_rank, default="none")
