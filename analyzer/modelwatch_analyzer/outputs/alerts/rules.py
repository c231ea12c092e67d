"""Alert rules, routes and retraining as configured in ``[alerts]``: parsed, validated, matched against results.

Rules are data (:class:`Rule`): a drifted drift result at or above a
severity, a performance metric below a floor, a data-quality rate above a
ceiling. Routes (:class:`Route`) are where alerts go (a webhook, in JSON or
Slack's format); :class:`Retrain` is what severe drift triggers. The checks
every setting goes through are :mod:`modelwatch_analyzer.toml_checks`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelwatch_analyzer import toml_checks as check
from modelwatch_analyzer.analysis.results import OK, SEVERITIES, Result, severity_rank
from modelwatch_analyzer.errors import ConfigError

RETRAIN = "retrain"
"""The ``Rule`` and ``Route`` of retrain-trigger rows (so no route may take the name)."""

RULE_TYPES = ("drift", "performance", "estimated_performance", "data_quality")
FORMATS = ("json", "slack")


@dataclass(frozen=True)
class Rule:
    """When a result raises an alert.

    ``type = "drift"``: a drift result with ``drifted`` true and severity at
    least ``min_severity``; the alert takes the result's severity. Without
    ``methods``, only a feature's verdict (the result of its score method,
    PSI by default) and the sequential detectors count, so supporting
    methods that disagree on severity do not page twice.
    ``type = "performance"``: a performance result of ``metric`` (its method,
    e.g. ``accuracy``) with statistic below ``min``; ``severity`` is the
    alert's. ``type = "data_quality"``: a data-quality result of ``metric``
    (e.g. ``missing_rate``) above ``max`` or, without ``max``, flagged by the
    analyzer against its own configured ceiling. ``type = "estimated_performance"``:
    the label-free estimate of ``metric`` below ``min`` (or, for ``mae`` /
    ``mse`` / ``rmse``, above ``max``) or, with neither, past the reference
    band (the reference period's chunk-to-chunk variation). ``models`` / ``features`` /
    ``methods`` restrict a rule (empty: all). Insufficient-data results never
    alert. TOML::

        [[alerts.rules]]
        name = "drift"
        type = "drift"
        min_severity = "warning"

        [[alerts.rules]]
        name = "accuracy-floor"
        type = "performance"
        metric = "accuracy"
        min = 0.9
        severity = "critical"
    """

    name: str = "drift"
    type: str = "drift"
    min_severity: str = "warning"
    metric: str | None = None
    min: float | None = None
    max: float | None = None
    severity: str = "warning"
    models: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Any, where: str = "alerts.rules[0]") -> Rule:
        d = check.table(d, where, cls.__dataclass_fields__)
        type_ = check.string(d, "type", where, "drift", choices=RULE_TYPES)
        name = check.name(d, "name", where, type_)
        rule = cls(name=name, type=type_,
                   min_severity=check.string(d, "min_severity", where, "warning", choices=SEVERITIES[1:]),
                   metric=check.string(d, "metric", where),
                   min=check.number(d, "min", where, None), max=check.number(d, "max", where, None),
                   severity=check.string(d, "severity", where, "warning", choices=SEVERITIES[1:]),
                   models=check.strings(d, "models", where, lone=True),
                   features=check.strings(d, "features", where, lone=True),
                   methods=check.strings(d, "methods", where, lone=True))
        if type_ != "drift" and rule.metric is None:
            raise ConfigError(f"{where}.metric: a {type_} rule needs the metric it watches, e.g. "
                              f"metric = \"{'accuracy' if type_ == 'performance' else 'missing_rate'}\"")
        if type_ == "performance" and (rule.min is None or rule.max is not None):
            raise ConfigError(f"{where}: a performance rule needs a floor, `min = 0.9` (alert below it), and no `max`")
        if type_ == "estimated_performance" and rule.min is not None and rule.max is not None:
            raise ConfigError(f"{where}: an estimated_performance rule takes `min` (alert below it), `max` (errors: "
                              "alert above it) or neither (alert when the estimate leaves the reference band)")
        if type_ == "data_quality" and rule.min is not None:
            raise ConfigError(f"{where}: a data_quality rule takes a ceiling, `max = 0.05` (alert above it), "
                              "or none (alert when the analyzer flagged the rate), not `min`")
        if type_ == "drift" and (rule.min is not None or rule.max is not None or rule.metric is not None):
            raise ConfigError(f"{where}: a drift rule takes min_severity (and methods), not metric/min/max")
        return rule

    def match(self, r: Result) -> str | None:
        """The severity of the alert `r` raises under this rule, or None."""
        if r.status != OK or r.statistic is None or not math.isfinite(r.statistic):
            return None
        if (self.models and r.model not in self.models) or (self.features and (r.feature or "") not in self.features):
            return None
        if self.type == "drift":
            if r.kind != "drift" or not r.drifted or (self.methods and r.method not in self.methods):
                return None
            if not self.methods and not (r.details.get("score") or r.details.get("detector")):
                return None  # by default the feature's verdict (its score method) and the detectors speak for it
            return r.severity if severity_rank(r.severity) >= severity_rank(self.min_severity) else None
        if r.kind != self.type or r.method != self.metric:
            return None
        if self.type == "performance":
            return self.severity if r.statistic < self.min else None  # type: ignore[operator]
        if self.type == "estimated_performance" and self.min is not None:
            return self.severity if r.statistic < self.min else None
        if self.max is None:  # the analyzer's own ceiling (the result's threshold) decides
            return self.severity if r.drifted else None
        if isinstance(r.details, Mapping) and r.details.get("floor"):  # a floor (spread_collapse): max does not apply
            return self.severity if r.drifted else None
        return self.severity if r.statistic > self.max else None


@dataclass(frozen=True)
class Route:
    """A webhook that receives alerts. TOML::

        [[alerts.routes]]
        name = "oncall"                      # recorded in ml_alerts.Route
        url = "https://hooks.slack.com/..."  # kept out of the store
        format = "slack"                     # or "json" (default)
        min_severity = "warning"
        models = ["fraud"]                   # optional
        headers = { Authorization = "Bearer ..." }
    """

    name: str
    url: str
    format: str = "json"
    min_severity: str = "info"
    models: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dict(cls, d: Any, where: str = "alerts.routes[0]") -> Route:
        d = check.table(d, where, cls.__dataclass_fields__)
        if "name" not in d or "url" not in d:
            raise ConfigError(f"{where}: a route needs `name` and `url`")
        url = _url(d, where)
        headers = d.get("headers", {})
        if not isinstance(headers, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                       for k, v in headers.items()):
            raise ConfigError(f"{where}.headers: expected a table of string values, got {headers!r}")
        name = check.name(d, "name", where)
        if name == RETRAIN:
            raise ConfigError(f"{where}.name: {RETRAIN!r} is reserved for retrain triggers; choose another name")
        return cls(name=name, url=url,  # type: ignore[arg-type]
                   format=check.string(d, "format", where, "json", choices=FORMATS),  # type: ignore[arg-type]
                   min_severity=check.string(d, "min_severity", where, "info", choices=SEVERITIES[1:]),  # type: ignore[arg-type]
                   models=check.strings(d, "models", where, lone=True), headers=tuple(sorted(headers.items())))

    def accepts(self, model: str, severity: str) -> bool:
        return (not self.models or model in self.models) and severity_rank(severity) >= severity_rank(self.min_severity)


def _url(d: Mapping[str, Any], where: str) -> str:
    url = check.string(d, "url", where)
    if not url or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.url: expected an http:// or https:// URL, got {url!r}")
    return url


@dataclass(frozen=True)
class Retrain:
    """What severe drift triggers: a webhook (``url``) or a command (``command``, an argv list). TOML::

        [alerts.retrain]
        min_severity = "critical"
        cooldown_seconds = 86400            # at most one trigger per model per day
        command = ["python", "-m", "jobs.submit_retrain"]   # or: url = "https://ci.example/hooks/retrain"
        timeout_seconds = 60
        models = []                          # optional restriction
    """

    url: str | None = None
    command: tuple[str, ...] | None = None
    min_severity: str = "critical"
    cooldown_seconds: float = 86400.0
    timeout_seconds: float = 60.0
    models: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Any, where: str = "alerts.retrain") -> Retrain:
        d = check.table(d, where, cls.__dataclass_fields__)
        if ("url" in d) == ("command" in d):
            raise ConfigError(f"{where}: set exactly one of `url` (a webhook) or `command` (an argv list)")
        command = None
        if "command" in d:
            command = d["command"]
            if not isinstance(command, (list, tuple)) or not command or not all(isinstance(a, str) for a in command):
                raise ConfigError(f"{where}.command: expected a non-empty list of strings (argv, no shell), "
                                  f"e.g. [\"python\", \"retrain.py\"]; got {command!r}")
            command = tuple(command)
        return cls(url=_url(d, where) if "url" in d else None, command=command,
                   min_severity=check.string(d, "min_severity", where, "critical", choices=SEVERITIES[1:]),  # type: ignore[arg-type]
                   cooldown_seconds=check.number(d, "cooldown_seconds", where, 86400.0, minimum=0.0),
                   timeout_seconds=check.number(d, "timeout_seconds", where, 60.0, minimum=0.001),
                   models=check.strings(d, "models", where, lone=True))


@dataclass(frozen=True)
class AlertConfig:
    """The ``[alerts]`` table. TOML::

        [alerts]
        cooldown_seconds = 3600          # same (rule, model, feature, severity) fires at most once per hour
        max_attempts = 5                 # deliveries per alert and route
        retry_backoff_seconds = 30       # then 60, 120, ... between attempts (on later calls)
        timeout_seconds = 5              # per HTTP request
        delivery_budget_seconds = 30     # per call, across all deliveries

    with ``[[alerts.rules]]`` (default: one drift rule at ``warning``),
    ``[[alerts.routes]]`` and an optional ``[alerts.retrain]``.
    """

    rules: tuple[Rule, ...] = (Rule(),)
    routes: tuple[Route, ...] = ()
    cooldown_seconds: float = 3600.0
    max_attempts: int = 5
    retry_backoff_seconds: float = 30.0
    timeout_seconds: float = 5.0
    delivery_budget_seconds: float = 30.0
    retrain: Retrain | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "alerts") -> AlertConfig:
        d = check.table(d, where, cls.__dataclass_fields__)
        rules_raw = d.get("rules")
        rules = (Rule(),) if rules_raw is None else tuple(
            Rule.from_dict(x, f"{where}.rules[{i}]")
            for i, x in enumerate(check.tables(rules_raw, f"{where}.rules", "rule")))
        routes = tuple(Route.from_dict(x, f"{where}.routes[{i}]")
                       for i, x in enumerate(check.tables(d.get("routes", []), f"{where}.routes", "route")))
        check.unique([r.name for r in rules], f"{where}.rules", "give each a unique `name`")
        check.unique([r.name for r in routes], f"{where}.routes", "give each a unique `name`")
        return cls(rules=rules, routes=routes,
                   cooldown_seconds=check.number(d, "cooldown_seconds", where, 3600.0, minimum=0.0),
                   max_attempts=check.number(d, "max_attempts", where, 5, minimum=1, integer=True),
                   retry_backoff_seconds=check.number(d, "retry_backoff_seconds", where, 30.0, minimum=0.0),
                   timeout_seconds=check.number(d, "timeout_seconds", where, 5.0, minimum=0.001),
                   delivery_budget_seconds=check.number(d, "delivery_budget_seconds", where, 30.0, minimum=0.0),
                   retrain=Retrain.from_dict(d["retrain"], f"{where}.retrain") if "retrain" in d else None)
