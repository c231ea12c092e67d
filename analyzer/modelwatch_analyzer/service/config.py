"""The analyzer's one configuration file (TOML), validated with errors that say where and what to change.

::

    [schedule]
    every_minutes = 60          # run every model's analysis this often (aligned: windows end on the hour)
    window_hours = 24           # each run analyses the last N hours
    every_predictions = 0       # also run early once this many new predictions arrived (0: off)

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

    [models.features.income]    # per-feature overrides
    thresholds = { psi = 0.2 }
    bands = { psi = [0.2, 0.3, 0.5] }

    [alerts]                    # see docs/analyzer-alerts.md: rules, routes (webhooks, Slack), retraining
    [[detectors]]               # sequential change detectors (Page-Hinkley, CUSUM) on a drift score
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from modelwatch_analyzer.outputs.alerts.rules import AlertConfig
from modelwatch_analyzer.analysis.analyze import DataQualitySettings, Settings
from modelwatch_analyzer.analysis.detector import DetectorConfig
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.analysis.methods import ALL_METHODS, DISTANCES, DriftSettings
from modelwatch_analyzer.analysis.performance import PerformanceSettings


def _table(d: Any, where: str, known: set[str]) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(d).__name__}")
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return d


def _number(d: Mapping[str, Any], key: str, where: str, default: float, minimum: float | None = 0.0,
            maximum: float | None = None) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}.{key}: must be >= {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where}.{key}: must be <= {maximum:g}, got {value!r}")
    return float(value)


def _string(d: Mapping[str, Any], key: str, where: str, default: str | None = None,
            choices: tuple[str, ...] = ()) -> str | None:
    value = d.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
    if choices and value not in choices:
        raise ConfigError(f"{where}.{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _thresholds(d: Any, where: str) -> dict[str, float]:
    d = _table(d, where, set(ALL_METHODS))
    return {m: _number(d, m, where, 0.0, 0.0) for m in d}


def _bands(d: Any, where: str) -> dict[str, tuple[float, float, float]]:
    d = _table(d, where, set(DISTANCES))
    out = {}
    for method, value in d.items():
        if (not isinstance(value, list) or len(value) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                or not value[0] <= value[1] <= value[2]):
            raise ConfigError(f"{where}.{method}: expected three increasing numbers [info, warning, critical], "
                              f"got {value!r}")
        out[method] = (float(value[0]), float(value[1]), float(value[2]))
    return out


@dataclass
class ModelConfig:
    name: str
    version: str | None = None
    baseline: str | None = None
    window_hours: float | None = None
    settings: Settings = field(default_factory=Settings)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "ModelConfig":
        d = _table(d, where, {"name", "version", "baseline", "window_hours", "categorical", "score", "alpha", "gate",
                              "min_samples", "drift_share", "task", "positive_label", "min_labels", "thresholds",
                              "bands", "quality", "features", "methods", "numeric_sample_rows"})
        name = _string(d, "name", where)
        if not name:
            raise ConfigError(f"{where}.name: every [[models]] entry needs the model's name (ml.model.name)")
        categorical = d.get("categorical", [])
        if not isinstance(categorical, list) or not all(isinstance(c, str) for c in categorical):
            raise ConfigError(f"{where}.categorical: expected a list of feature names")
        methods = d.get("methods", [])
        if not isinstance(methods, list) or not all(m in ALL_METHODS for m in methods):
            raise ConfigError(f"{where}.methods: expected a list of method names out of {', '.join(ALL_METHODS)}, "
                              f"got {methods!r}")
        gate = d.get("gate", True)
        if not isinstance(gate, bool):
            raise ConfigError(f"{where}.gate: expected true or false")
        features: dict[str, dict[str, object]] = {}
        for feature, fd in _table(d.get("features", {}), f"{where}.features", set(d.get("features", {}))).items():
            fw = f"{where}.features.{feature}"
            fd = _table(fd, fw, {"score", "thresholds", "bands"})
            features[feature] = {k: v for k, v in {
                "score": _string(fd, "score", fw, None, tuple(sorted(DISTANCES))),
                "thresholds": _thresholds(fd.get("thresholds", {}), f"{fw}.thresholds"),
                "bands": _bands(fd.get("bands", {}), f"{fw}.bands")}.items() if v}
        drift = DriftSettings(
            score=_string(d, "score", where, "psi", tuple(sorted(DISTANCES))) or "psi",
            alpha=_number(d, "alpha", where, 0.05, 0.0, 1.0), gate=gate,
            min_samples=_number(d, "min_samples", where, 30.0, 1.0),
            thresholds={**DriftSettings().thresholds, **_thresholds(d.get("thresholds", {}), f"{where}.thresholds")},
            bands=_bands(d.get("bands", {}), f"{where}.bands"), features=features, categorical=tuple(categorical),
            drift_share=_number(d, "drift_share", where, 0.5, 0.0, 1.0), methods=tuple(methods))
        q = _table(d.get("quality", {}), f"{where}.quality", set(DataQualitySettings.__dataclass_fields__))
        quality = DataQualitySettings(**{k: _number(q, k, f"{where}.quality", 0.0, 0.0, 1.0) for k in q})
        perf = PerformanceSettings(task=_string(d, "task", where, "auto", ("auto", "classification", "regression")) or "auto",
                                   positive_label=_string(d, "positive_label", where),
                                   min_labels=_number(d, "min_labels", where, 30.0, 1.0))
        window = d.get("window_hours")
        return cls(name, _string(d, "version", where), _string(d, "baseline", where) or None,
                   _number(d, "window_hours", where, 0.0, 0.0) if window is not None else None,
                   Settings(drift=drift, quality=quality, performance=perf,
                            numeric_sample_rows=int(_number(d, "numeric_sample_rows", where, 0.0, 0.0))))


@dataclass
class Schedule:
    every_minutes: float = 60.0
    window_hours: float = 24.0
    every_predictions: int = 0


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
    def from_dict(cls, d: Any, path: str | None = None) -> "Config":
        d = _table(d, "config", {"models", "schedule", "alerts", "detectors", "emit"})
        models_raw = d.get("models", [])
        if not isinstance(models_raw, list):
            raise ConfigError("models: expected a list of model tables ([[models]])")
        models = [ModelConfig.from_dict(m, f"models[{i}]") for i, m in enumerate(models_raw)]
        names = [m.name for m in models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"models: {', '.join(dup)} listed twice; one [[models]] entry per model")
        s = _table(d.get("schedule", {}), "schedule", {"every_minutes", "window_hours", "every_predictions"})
        schedule = Schedule(_number(s, "every_minutes", "schedule", 60.0, 0.1),
                            _number(s, "window_hours", "schedule", 24.0, 0.001),
                            int(_number(s, "every_predictions", "schedule", 0, 0)))
        detectors_raw = d.get("detectors", [])
        if not isinstance(detectors_raw, list):
            raise ConfigError("detectors: expected a list of detector tables ([[detectors]])")
        e = _table(d.get("emit", {}), "emit", {"enabled"})
        enabled = e.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError("emit.enabled: expected true or false")
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
