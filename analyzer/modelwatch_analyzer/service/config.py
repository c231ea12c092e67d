"""The analyzer's one configuration file (TOML), validated with errors that say where and what to change.

::

    [schedule]
    every_minutes = 60          # run every model's analysis this often (aligned: windows end on the hour)
    window_hours = 24           # each run analyses the last N hours
    every_predictions = 0       # also run early once this many new predictions arrived (0: off)
    label_lookback_hours = 168  # estimates of windows this recent are redone when their labels arrive (0: off)

    [emit]
    enabled = true              # results as OTel metrics, to OTEL_EXPORTER_OTLP_ENDPOINT (standard OTEL_* variables)

    [[models]]
    name = "credit-risk"
    version = "3"               # optional: one version (default: every version, against the newest baseline)
    baseline = ""               # optional: a baseline id (default: the newest for the model version)
    window_hours = 24           # optional: overrides [schedule]
    categorical = ["zip"]       # numeric-looking features that are categories
    methods = ["psi", "ks"]     # optional: report only these (default: all); the score method is always reported
    score = "psi"               # the drift score that grades severity: psi | jensen_shannon | wasserstein
    alpha = 0.05                # significance of the KS / chi-square tests, after Benjamini-Hochberg
    gate = true                 # distances count only when the feature's test is significant
    min_samples = 30            # effective observations per side below which: insufficient data
    drift_share = 0.5           # share of drifted features at which the model is "drifted"
    task = "auto"               # auto | classification | regression (performance)
    positive_label = "1"        # binary classifiers
    min_labels = 30
    thresholds = { psi = 0.1, jensen_shannon = 0.1, wasserstein = 0.1 }
    bands = { psi = [0.1, 0.2, 0.3] }          # info / warning / critical
    quality = { missing_increase = 0.05, out_of_range = 0.05, type_errors = 0.0, unseen_categories = 0.05 }
    numeric_sample_rows = 0     # above this many rows to scan, numeric features are read from a uniform
                                # sample of about this many (0: every row; see docs/analyzer.md)
    estimation = { enabled = true, confidence = 0.95, threshold_std = 3, max_rows = 200000, min_effective = 30 }
                                # label-free performance estimation (baselines built with labels; docs/analyzer.md)
    segments = { keys = ["region", "service.instance.id"], max_values = 20, min_samples = 100 }
                                # per segment: a categorical feature or an OTel resource attribute (docs/analyzer.md)

    [models.features.income]    # per-feature overrides
    thresholds = { psi = 0.2 }
    bands = { psi = [0.2, 0.3, 0.5] }

    [alerts]                    # see docs/analyzer-alerts.md: rules, routes (webhooks, Slack), retraining
    [[detectors]]               # sequential change detectors (Page-Hinkley, CUSUM) on a drift score
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from modelwatch_analyzer import toml_checks as check
from modelwatch_analyzer.analysis.analyze import DataQualitySettings, Settings
from modelwatch_analyzer.analysis.detector import DetectorConfig
from modelwatch_analyzer.analysis.estimator import EstimationSettings
from modelwatch_analyzer.analysis.methods import ALL_METHODS, DISTANCES, DriftSettings
from modelwatch_analyzer.analysis.performance import PerformanceSettings
from modelwatch_analyzer.analysis.segments import SegmentSettings
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.outputs.alerts.rules import AlertConfig

_SCORES = tuple(sorted(DISTANCES))
_MODEL_KEYS = {"name", "version", "baseline", "window_hours", "categorical", "score", "alpha", "gate", "min_samples",
               "drift_share", "task", "positive_label", "min_labels", "thresholds", "bands", "quality", "features",
               "methods", "numeric_sample_rows", "estimation", "segments"}


def _score(d: Mapping[str, Any], where: str, default: str | None) -> str | None:
    return check.string(d, "score", where, default, choices=_SCORES, what="one of the distances")


def _thresholds(d: Any, where: str) -> dict[str, float]:
    d = check.table(d, where, ALL_METHODS)
    return {m: check.number(d, m, where, 0.0, minimum=0.0) for m in d}


def _bands(d: Any, where: str) -> dict[str, tuple[float, float, float]]:
    d = check.table(d, where, DISTANCES)
    out = {}
    for method, value in d.items():
        if (not isinstance(value, list) or len(value) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                or not value[0] <= value[1] <= value[2]):
            raise ConfigError(f"{where}.{method}: expected three increasing numbers [info, warning, critical], "
                              f"got {value!r}")
        out[method] = (float(value[0]), float(value[1]), float(value[2]))
    return out


def _features(d: Mapping[str, Any], where: str) -> dict[str, dict[str, object]]:
    """``[models.features.<name>]``: per-feature score, thresholds and bands."""
    raw = d.get("features", {})
    out: dict[str, dict[str, object]] = {}
    for feature, fd in check.table(raw, f"{where}.features", raw if isinstance(raw, Mapping) else ()).items():
        fw = f"{where}.features.{feature}"
        fd = check.table(fd, fw, {"score", "thresholds", "bands"})
        out[feature] = {k: v for k, v in {
            "score": _score(fd, fw, None),
            "thresholds": _thresholds(fd.get("thresholds", {}), f"{fw}.thresholds"),
            "bands": _bands(fd.get("bands", {}), f"{fw}.bands")}.items() if v}
    return out


def _drift(d: Mapping[str, Any], where: str) -> DriftSettings:
    return DriftSettings(
        score=_score(d, where, "psi") or "psi",
        alpha=check.number(d, "alpha", where, 0.05, minimum=0.0, maximum=1.0), gate=check.flag(d, "gate", where, True),
        min_samples=check.number(d, "min_samples", where, 30.0, minimum=1.0),
        thresholds={**DriftSettings().thresholds, **_thresholds(d.get("thresholds", {}), f"{where}.thresholds")},
        bands=_bands(d.get("bands", {}), f"{where}.bands"), features=_features(d, where),
        categorical=check.strings(d, "categorical", where),
        drift_share=check.number(d, "drift_share", where, 0.5, minimum=0.0, maximum=1.0),
        methods=check.strings(d, "methods", where, choices=ALL_METHODS))


@dataclass
class ModelConfig:
    name: str
    version: str | None = None
    baseline: str | None = None
    window_hours: float | None = None
    settings: Settings = field(default_factory=Settings)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ModelConfig:
        d = check.table(d, where, _MODEL_KEYS)
        name = check.string(d, "name", where, empty=True)
        if not name:
            raise ConfigError(f"{where}.name: every [[models]] entry needs the model's name (ml.model.name)")
        drift = _drift(d, where)
        q = check.table(d.get("quality", {}), f"{where}.quality", DataQualitySettings.__dataclass_fields__)
        quality = DataQualitySettings(**{k: check.number(q, k, f"{where}.quality", 0.0, minimum=0.0, maximum=1.0)
                                         for k in q})
        task = check.string(d, "task", where, "auto", choices=("auto", "classification", "regression"), what="a task")
        perf = PerformanceSettings(task=task or "auto",
                                   positive_label=check.string(d, "positive_label", where, empty=True),
                                   min_labels=check.number(d, "min_labels", where, 30.0, minimum=1.0))
        est = check.table(d.get("estimation", {}), f"{where}.estimation",
                          ("enabled", "confidence", "threshold_std", "max_rows", "min_effective"))
        ew = f"{where}.estimation"
        estimation = EstimationSettings(
            enabled=check.flag(est, "enabled", ew, True),
            confidence=check.number(est, "confidence", ew, 0.95, minimum=0.5, maximum=0.999),
            threshold_std=check.number(est, "threshold_std", ew, 3.0, minimum=0.0),
            max_rows=int(check.number(est, "max_rows", ew, 200_000, minimum=1000)),
            min_effective=check.number(est, "min_effective", ew, 30.0, minimum=1.0))
        seg = d.get("segments", {})
        seg = {"keys": seg} if isinstance(seg, list) else seg
        seg = check.table(seg, f"{where}.segments", ("keys", "max_values", "min_samples"))
        sw = f"{where}.segments"
        keys = check.strings(seg, "keys", sw, lone=True)
        check.unique(keys, f"{sw}.keys", "name each segment key once")
        segments = SegmentSettings(list(keys), int(check.number(seg, "max_values", sw, 20, minimum=1, maximum=1000)),
                                   check.number(seg, "min_samples", sw, 100.0, minimum=1.0))
        return cls(name, check.string(d, "version", where, empty=True),
                   check.string(d, "baseline", where, empty=True) or None,
                   check.number(d, "window_hours", where, None, minimum=0.0),
                   Settings(drift=drift, quality=quality, performance=perf, estimation=estimation, segments=segments,
                            numeric_sample_rows=int(check.number(d, "numeric_sample_rows", where, 0.0, minimum=0.0))))


@dataclass
class Schedule:
    every_minutes: float = 60.0
    window_hours: float = 24.0
    every_predictions: int = 0
    label_lookback_hours: float = 168.0


@dataclass
class Config:
    models: list[ModelConfig] = field(default_factory=list)
    schedule: Schedule = field(default_factory=Schedule)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    detectors: list[DetectorConfig] = field(default_factory=list)
    emit: bool = True
    path: str | None = None

    def model(self, name: str) -> ModelConfig:
        """The configuration of `name` (defaults when the file does not list it)."""
        for m in self.models:
            if m.name == name:
                return m
        return ModelConfig(name)

    @classmethod
    def from_dict(cls, d: Any, path: str | None = None) -> Config:
        d = check.table(d, "config", {"models", "schedule", "alerts", "detectors", "emit"})
        models = [ModelConfig.from_dict(m, f"models[{i}]")
                  for i, m in enumerate(check.tables(d.get("models", []), "models", "model"))]
        check.unique([m.name for m in models], "models", "one [[models]] entry per model")
        s = check.table(d.get("schedule", {}), "schedule",
                        {"every_minutes", "window_hours", "every_predictions", "label_lookback_hours"})
        schedule = Schedule(check.number(s, "every_minutes", "schedule", 60.0, minimum=0.1),
                            check.number(s, "window_hours", "schedule", 24.0, minimum=0.001),
                            int(check.number(s, "every_predictions", "schedule", 0, minimum=0.0)),
                            check.number(s, "label_lookback_hours", "schedule", 168.0, minimum=0.0))
        detectors_raw = check.tables(d.get("detectors", []), "detectors", "detector")
        e = check.table(d.get("emit", {}), "emit", {"enabled"})
        enabled = check.flag(e, "enabled", "emit", True)
        return cls(models, schedule, AlertConfig.from_dict(d.get("alerts", {}), "alerts"),
                   [DetectorConfig.from_dict(x, f"detectors[{i}]") for i, x in enumerate(detectors_raw)],
                   enabled, path)


def load(path: str | Path | None) -> Config:
    """The configuration in `path` (TOML); the defaults when `path` is None."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {str(p)!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return Config.from_dict(data, str(p))
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
