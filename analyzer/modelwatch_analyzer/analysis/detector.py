"""Sequential change detection on a drift score series, with its state in the store.

A window-by-window drift test answers "is this window different from the
baseline?"; a sequential detector answers "has the score's level changed?",
accumulating small, persistent increases that no single window would flag.
Each series is one (model, version, feature, source method): e.g. the PSI of
``amount`` for ``fraud`` v2, one value per analysed window.

Two detectors, both one-sided (they detect an *increase* of the score, which
is what drift looks like), both pure recursions on a small state:

``page_hinkley``
    ``n += 1; mean += (x - mean) / n; cum = alpha * cum + (x - mean - delta);
    low = min(low, cum); statistic = cum - low``; fires when
    ``n >= min_instances`` and ``statistic > threshold``. ``low`` starts at 0
    (the empty prefix). The running mean is the reference level, so the
    detector needs no prior knowledge of the score's scale beyond ``delta``
    (the tolerated increase) and ``threshold``.
``cusum``
    The first ``min_instances`` values estimate the in-control level ``mean``
    (no detection meanwhile); then ``s = max(0, s + x - mean - delta)``, fires
    when ``s > threshold``.

``delta`` and ``threshold`` are in the units of the score (PSI, KS D, ...).
After firing, the state resets and the detector learns the new level.

State lives in ``ml_detector_state`` (one row per series and detector, a
ReplacingMergeTree versioned by ``UpdatedAt``; a new row version replaces
the old), with ``LastWindowEnd``: a window that ends at or before it has
already been counted and is skipped, so re-running an analysis, or a restart
that replays windows, never counts a value twice. The output is ordinary
:class:`~.results.Result` rows (``kind="drift"``, ``method`` = the detector's
name, ``drifted`` when it fires, the source method in ``details``), so they
flow through storage, alerts and emission like any other result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from modelwatch_analyzer import toml_checks as check
from modelwatch_analyzer.analysis.results import OK, SEVERITIES, Result
from modelwatch_analyzer.analysis.window import utc, utc_ms
from modelwatch_analyzer.store.client import Store

State = dict[str, float]


def _page_hinkley(cfg: DetectorConfig, state: State, x: float) -> tuple[State, float, bool]:
    n = state.get("n", 0.0) + 1.0
    mean = state.get("mean", 0.0)
    mean += (x - mean) / n
    cum = cfg.alpha * state.get("cum", 0.0) + (x - mean - cfg.delta)
    low = min(state.get("low", 0.0), cum)
    stat = cum - low
    fired = n >= cfg.min_instances and stat > cfg.threshold
    return {"n": n, "mean": mean, "cum": cum, "low": low}, stat, fired


def _cusum(cfg: DetectorConfig, state: State, x: float) -> tuple[State, float, bool]:
    n = state.get("n", 0.0) + 1.0
    mean = state.get("mean", 0.0)
    if n <= cfg.min_instances:  # learning the in-control level
        mean += (x - mean) / n
        return {"n": n, "mean": mean, "s": 0.0}, 0.0, False
    s = max(0.0, state.get("s", 0.0) + x - mean - cfg.delta)
    return {"n": n, "mean": mean, "s": s}, s, s > cfg.threshold


DETECTORS: dict[str, Callable[[DetectorConfig, State, float], tuple[State, float, bool]]] = {
    "page_hinkley": _page_hinkley,
    "cusum": _cusum,
}
"""The recursions by name: ``step(config, state, x) -> (new state, statistic, fired)``."""


@dataclass(frozen=True)
class DetectorConfig:
    """One sequential detector over the scores of one drift method.

    Config (TOML)::

        [[detectors]]
        detector = "page_hinkley"   # or "cusum"
        method = "psi"              # the drift method whose score is followed
        delta = 0.01                # tolerated increase, in score units
        threshold = 0.5             # alarm level, in score units
        min_instances = 5           # PH: no alarm before; CUSUM: warm-up length
        alpha = 1.0                 # PH fading factor (1 = no forgetting)
        severity = "warning"        # severity of a firing result
        name = "page_hinkley"       # result method and state key; set it when two detectors share a kind
    """

    detector: str = "page_hinkley"
    method: str = "psi"
    delta: float = 0.01
    threshold: float = 0.5
    min_instances: int = 5
    alpha: float = 1.0
    severity: str = "warning"
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.detector)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "detectors[0]") -> DetectorConfig:
        """Validated config; :class:`ConfigError` names the key under `where` and what to change."""
        d = check.table(d, where, cls.__dataclass_fields__)
        return cls(detector=check.string(d, "detector", where, cls.detector, choices=tuple(DETECTORS),
                                         what="a detector"),
                   method=check.string(d, "method", where, cls.method),
                   delta=check.number(d, "delta", where, cls.delta, minimum=0.0),
                   threshold=check.number(d, "threshold", where, cls.threshold, minimum=0.0, exclusive_minimum=True),
                   min_instances=check.number(d, "min_instances", where, cls.min_instances, minimum=1, integer=True),
                   alpha=check.number(d, "alpha", where, cls.alpha, minimum=0.0, maximum=1.0, exclusive_minimum=True),
                   severity=check.string(d, "severity", where, cls.severity, choices=SEVERITIES[1:], what="a severity"),
                   name=check.string(d, "name", where, cls.name, empty=True))

    def step(self, state: State, x: float) -> tuple[State, float, bool]:
        """One observation: the new state, the statistic and whether the detector fires (then the state is reset)."""
        new, stat, fired = DETECTORS[self.detector](self, state, x)
        return ({} if fired else new), stat, fired


STATE_COLUMNS = ("ModelName", "ModelVersion", "Feature", "Method", "Detector", "UpdatedAt", "LastWindowEnd", "State")

_Key = tuple[str, str, str, str]  # model, version, feature, source method


class SequentialDetector:
    """Runs one :class:`DetectorConfig` over drift results, keeping each series' state in ``ml_detector_state``."""

    def __init__(self, store: Store, config: DetectorConfig) -> None:
        self.store = store
        self.config = config

    def _load(self, models: Sequence[str]) -> dict[_Key, tuple[State, datetime, datetime]]:
        rows = self.store.query(
            f"SELECT ModelName, ModelVersion, Feature, Method, LastWindowEnd, UpdatedAt, State "
            f"FROM {self.store.table('ml_detector_state')} FINAL "
            "WHERE Detector = {detector:String} AND ModelName IN {models:Array(String)} AND Method = {method:String}",
            {"detector": self.config.name, "models": list(models), "method": self.config.method})
        return {(m, v, f, meth): (json.loads(state), utc(last), utc(updated))
                for m, v, f, meth, last, updated, state in rows}

    def update(self, results: Iterable[Result], now: datetime | None = None) -> list[Result]:
        """Feed the scores of `results` (this detector's source method, status ok, with a window end) to their series.

        Windows are taken in window-end order; one already counted (ending at
        or before the stored ``LastWindowEnd``) is skipped and yields nothing.
        Returns one result per value counted and saves the new states.
        """
        now = utc(now) if now is not None else datetime.now(timezone.utc)
        series: dict[_Key, list[Result]] = {}
        for r in results:
            if (r.kind == "drift" and r.method == self.config.method and r.status == OK and r.window_end is not None
                    and r.statistic is not None and math.isfinite(r.statistic)):
                series.setdefault((r.model, r.version, r.feature or "", r.method), []).append(r)
        if not series:
            return []
        stored = self._load(sorted({k[0] for k in series}))
        out: list[Result] = []
        rows = []
        for key, rs in series.items():
            state, last, updated = stored.get(key, ({}, None, None))
            counted = 0
            for r in sorted(rs, key=lambda r: utc_ms(r.window_end)):
                end = utc_ms(r.window_end)  # compared as stored: DateTime64(3)
                if last is not None and end <= last:
                    continue
                state, stat, fired = self.config.step(state, float(r.statistic))
                last = end
                counted += 1
                out.append(Result(
                    model=r.model, version=r.version, feature=r.feature, method=self.config.name, kind="drift",
                    statistic=stat, threshold=self.config.threshold, drifted=fired,
                    severity=self.config.severity if fired else "none", n_reference=r.n_reference,
                    n_current=r.n_current, status=OK,
                    details={"detector": self.config.detector, "source_method": r.method, "score": r.statistic,
                             "n": state.get("n", 0.0)},
                    window_start=r.window_start, window_end=r.window_end, baseline_id=r.baseline_id,
                    run_id=r.run_id, run_at=r.run_at))
            if counted:
                # versions must increase even when two updates fall in the same millisecond
                stamp = now if updated is None or now > updated else updated + timedelta(milliseconds=1)
                rows.append((*key[:3], key[3], self.config.name, stamp, last, json.dumps(state, sort_keys=True)))
        self.store.insert("ml_detector_state", rows, STATE_COLUMNS)
        return out

    def state(self, model: str, version: str, feature: str | None) -> tuple[State, datetime | None]:
        """The stored state and last counted window end of one series (``({}, None)`` if never seen)."""
        state, last, _ = self._load([model]).get((model, version, feature or "", self.config.method), ({}, None, None))
        return state, last
