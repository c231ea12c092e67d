"""Alerts and retrain triggers from analysis results, with delivery recorded in ``ml_alerts``.

Flow of one :meth:`Alerter.process` call::

    results ──rules──▶ candidates ──cooldown (ml_alerts)──▶ new alerts ──▶ one ml_alerts row per route
                                                                              │
    critical drift ──retrain cooldown (ml_alerts, Rule='retrain')──▶ retrain row (Route='retrain')
                                                                              ▼
                                                 deliver every due, undelivered row (webhook / command)

Rules are data (:class:`Rule`): a drifted drift result at or above a
severity, a performance metric below a floor, a data-quality rate above a
ceiling. Results of one call that meet the same rule for the same (model,
feature, severity) make *one* alert carrying all of them.

Dedup. An alert with the same (rule, model, feature, severity) as one fired
within ``cooldown_seconds`` is not fired again. The state is the
``ml_alerts`` table itself, so it holds across restarts and across processes
sharing a store. A worsening (warning → critical) is a different key and fires.
Exactly once per key and cooldown, on every path:

* in one process (``modelwatch serve`` runs its scheduled analyzer and the
  forwarded ``modelwatch analyze --alert`` side by side), firing, recording
  and delivering hold one process-wide lock, so the second caller sees the
  first one's rows;
* across processes sharing a ClickHouse server (the store has no
  compare-and-set), each writer records its rows, then reads back every live
  row of its keys within the cooldown: the first recorded (``RecordedAt``, the
  store's clock at the first write, then id) wins, and a later one is rewritten with ``SupersededBy`` naming the winner
  and is never delivered. Delivery checks the same before a first attempt, so
  a row that lost after another process recorded it is not sent either; and
  a new row's first attempt belongs to the alerter that fired it (another
  one takes it over after ``FIRST_ATTEMPT_GRACE``, if that one died).
  Superseded rows are kept (they say what happened) and left out of
  ``status``, the report and cooldowns.

Rows. ``ml_alerts`` is a ReplacingMergeTree ordered by (ModelName, AlertId)
and versioned by ``UpdatedAt``: an update is a new row version, read back
with ``FINAL``. One row per (alert, route); ``AlertId`` is
``<alert id>:<route name>`` (``-`` when no route matched: the alert is still
recorded, with nothing to deliver). ``Message`` holds the JSON body that is
(re)delivered, so a retry after a restart sends exactly what the first
attempt sent; its ``alert.message`` is the human-readable line.
``Route`` is the route's *name*: webhook URLs (Slack's especially) are
secrets and stay in the config.

Delivery. Each undelivered row is attempted at once, then on later calls
after ``retry_backoff_seconds * 2**(attempts-1)``, up to ``max_attempts``;
attempts, delivery time and the last error are written back. Every HTTP call
has ``timeout_seconds``; a route that failed once in a call is not tried
again in that call, and a call stops attempting after
``delivery_budget_seconds``: a dead webhook costs the service one timeout per
call, not one per alert.

Retraining. With ``[alerts.retrain]``, drifted results at or above its
``min_severity`` (critical by default) trigger a webhook POST or a command
(an argv list run without a shell, with ``MODELWATCH_MODEL``,
``MODELWATCH_VERSION``, ``MODELWATCH_SEVERITY``, ``MODELWATCH_REASON``,
``MODELWATCH_FEATURES`` (JSON list), ``MODELWATCH_RUN_ID``,
``MODELWATCH_ALERT_ID`` and ``MODELWATCH_PAYLOAD`` (the JSON body) in its
environment), at most once per ``cooldown_seconds`` per model, recorded as an
``ml_alerts`` row with ``Rule='retrain'`` and delivered (and retried) like
an alert. The command should *submit* a retraining job and exit: it runs
with a timeout, on the analyzer's thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from modelwatch_analyzer.analysis.results import OK, SEVERITIES, Result, severity_rank
from modelwatch_analyzer.analysis.window import utc, utc_ms
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.store.client import Store

logger = logging.getLogger("modelwatch.analyzer.alerts")

RETRAIN = "retrain"
"""The ``Rule`` and ``Route`` of retrain-trigger rows."""

_UNROUTABLE = "\x00unroutable"
"""What :meth:`Alerter._deliver` returns for a row whose route is no longer configured (compared by identity)."""

RULE_TYPES = ("drift", "performance", "data_quality")
FORMATS = ("json", "slack")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

ALERT_COLUMNS = ("AlertId", "UpdatedAt", "FiredAt", "ModelName", "ModelVersion", "Feature", "Method", "Severity",
                 "Rule", "Message", "RunId", "Route", "Delivered", "Attempts", "DeliveredAt", "LastError",
                 "SupersededBy", "RecordedAt")

LIVE = "SupersededBy = ''"
"""The ``ml_alerts`` condition of rows that stand (not given way to a concurrent duplicate)."""

_FIRING = threading.Lock()
"""Held while alerts are fired, recorded and delivered: one caller at a time in this process."""

SETTLE_SECONDS = 1.0
"""On a server store, how long a new row's check waits for inserts other analyzers began before it (one insert of
a few rows takes milliseconds). An embedded store has one process, whose lock is enough."""

FIRST_ATTEMPT_GRACE = timedelta(minutes=2)
"""How long a new row is left to the process that fired it before another analyzer delivers it (if that one died)."""


# -- configuration -----------------------------------------------------------------------

def _check_keys(d: Any, where: str, known: Iterable[str]) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(d).__name__}")
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return d


def _str(d: Mapping[str, Any], key: str, where: str, default: str | None = None, choices: Sequence[str] = (),
         pattern: re.Pattern[str] | None = None) -> str | None:
    v = d.get(key, default)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{where}.{key}: expected a non-empty string, got {v!r}")
    if choices and v not in choices:
        raise ConfigError(f"{where}.{key}: {v!r} is not allowed; use one of {', '.join(choices)}")
    if pattern is not None and not pattern.match(v):
        raise ConfigError(f"{where}.{key}: {v!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return v


def _num(d: Mapping[str, Any], key: str, where: str, default: float | None, minimum: float = 0.0,
         integer: bool = False) -> Any:
    v = d.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)) \
            or not math.isfinite(v) or v < minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}.{key}: expected {kind} >= {minimum:g}, got {v!r}")
    return int(v) if integer else float(v)


def _strs(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = d.get(key, ())
    if isinstance(v, str):
        v = (v,)
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where}.{key}: expected a list of strings, got {v!r}")
    return tuple(v)


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
    analyzer against its own configured ceiling. ``models`` / ``features`` /
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
    def from_dict(cls, d: Any, where: str = "alerts.rules[0]") -> "Rule":
        d = _check_keys(d, where, cls.__dataclass_fields__)
        type_ = _str(d, "type", where, "drift", RULE_TYPES)
        name = _str(d, "name", where, type_, pattern=_NAME)
        rule = cls(name=name, type=type_,
                   min_severity=_str(d, "min_severity", where, "warning", SEVERITIES[1:]),
                   metric=_str(d, "metric", where), min=_signed(d, "min", where), max=_signed(d, "max", where),
                   severity=_str(d, "severity", where, "warning", SEVERITIES[1:]),
                   models=_strs(d, "models", where), features=_strs(d, "features", where),
                   methods=_strs(d, "methods", where))
        if type_ != "drift" and rule.metric is None:
            raise ConfigError(f"{where}.metric: a {type_} rule needs the metric it watches, e.g. "
                              f"metric = \"{'accuracy' if type_ == 'performance' else 'missing_rate'}\"")
        if type_ == "performance" and (rule.min is None or rule.max is not None):
            raise ConfigError(f"{where}: a performance rule needs a floor, `min = 0.9` (alert below it), and no `max`")
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
        if self.max is None:  # the analyzer's own ceiling (the result's threshold) decides
            return self.severity if r.drifted else None
        return self.severity if r.statistic > self.max else None


def _signed(d: Mapping[str, Any], key: str, where: str) -> float | None:
    return _num(d, key, where, None, minimum=-math.inf)


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
    def from_dict(cls, d: Any, where: str = "alerts.routes[0]") -> "Route":
        d = _check_keys(d, where, cls.__dataclass_fields__)
        if "name" not in d or "url" not in d:
            raise ConfigError(f"{where}: a route needs `name` and `url`")
        url = _url(d, where)
        headers = d.get("headers", {})
        if not isinstance(headers, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                       for k, v in headers.items()):
            raise ConfigError(f"{where}.headers: expected a table of string values, got {headers!r}")
        name = _str(d, "name", where, pattern=_NAME)
        if name == RETRAIN:
            raise ConfigError(f"{where}.name: {RETRAIN!r} is reserved for retrain triggers; choose another name")
        return cls(name=name, url=url,  # type: ignore[arg-type]
                   format=_str(d, "format", where, "json", FORMATS),  # type: ignore[arg-type]
                   min_severity=_str(d, "min_severity", where, "info", SEVERITIES[1:]),  # type: ignore[arg-type]
                   models=_strs(d, "models", where), headers=tuple(sorted(headers.items())))

    def accepts(self, model: str, severity: str) -> bool:
        return (not self.models or model in self.models) and severity_rank(severity) >= severity_rank(self.min_severity)


def _url(d: Mapping[str, Any], where: str) -> str:
    url = _str(d, "url", where)
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
    def from_dict(cls, d: Any, where: str = "alerts.retrain") -> "Retrain":
        d = _check_keys(d, where, cls.__dataclass_fields__)
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
                   min_severity=_str(d, "min_severity", where, "critical", SEVERITIES[1:]),  # type: ignore[arg-type]
                   cooldown_seconds=_num(d, "cooldown_seconds", where, 86400.0),
                   timeout_seconds=_num(d, "timeout_seconds", where, 60.0, minimum=0.001),
                   models=_strs(d, "models", where))


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
    def from_dict(cls, d: Any, where: str = "alerts") -> "AlertConfig":
        d = _check_keys(d, where, cls.__dataclass_fields__)
        rules_raw = d.get("rules")
        if rules_raw is None:
            rules: tuple[Rule, ...] = (Rule(),)
        elif isinstance(rules_raw, list):
            rules = tuple(Rule.from_dict(x, f"{where}.rules[{i}]") for i, x in enumerate(rules_raw))
        else:
            raise ConfigError(f"{where}.rules: expected a list of rule tables ([[{where}.rules]])")
        routes_raw = d.get("routes", [])
        if not isinstance(routes_raw, list):
            raise ConfigError(f"{where}.routes: expected a list of route tables ([[{where}.routes]])")
        routes = tuple(Route.from_dict(x, f"{where}.routes[{i}]") for i, x in enumerate(routes_raw))
        for kind, names in (("rules", [r.name for r in rules]), ("routes", [r.name for r in routes])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ConfigError(f"{where}.{kind}: duplicate name(s) {', '.join(dup)}; give each a unique `name`")
        return cls(rules=rules, routes=routes,
                   cooldown_seconds=_num(d, "cooldown_seconds", where, 3600.0),
                   max_attempts=_num(d, "max_attempts", where, 5, minimum=1, integer=True),
                   retry_backoff_seconds=_num(d, "retry_backoff_seconds", where, 30.0),
                   timeout_seconds=_num(d, "timeout_seconds", where, 5.0, minimum=0.001),
                   delivery_budget_seconds=_num(d, "delivery_budget_seconds", where, 30.0),
                   retrain=Retrain.from_dict(d["retrain"], f"{where}.retrain") if "retrain" in d else None)


# -- alerts ------------------------------------------------------------------------------

@dataclass
class Alert:
    """One ``ml_alerts`` row: an alert (or retrain trigger) for one route, with its delivery state."""

    alert_id: str
    rule: str
    model: str
    version: str
    feature: str | None
    method: str
    severity: str
    route: str
    run_id: str
    fired_at: datetime
    payload: dict[str, Any]
    delivered: bool = False
    attempts: int = 0
    delivered_at: datetime | None = None
    last_error: str = ""
    updated_at: datetime | None = None
    superseded_by: str = ""
    recorded_at: datetime | None = None  # the store's clock when the row was first written (None: not yet)

    @property
    def group(self) -> str:
        """The alert's id without its route: the rows of one firing share it."""
        return self.alert_id.rsplit(":", 1)[0]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.rule, self.model, self.feature or "", self.severity)

    @property
    def message(self) -> str:
        return str(self.payload.get("alert", {}).get("message", ""))

    def row(self) -> tuple[Any, ...]:
        return (self.alert_id, self.updated_at, self.fired_at, self.model, self.version, self.feature or "",
                self.method, self.severity, self.rule, json.dumps(self.payload, sort_keys=True, default=_jsonable),
                self.run_id, self.route, self.delivered, self.attempts, self.delivered_at, self.last_error,
                self.superseded_by, self.recorded_at)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "Alert":
        (aid, updated, fired, model, version, feature, method, severity, rule, message, run_id, route, delivered,
         attempts, delivered_at, last_error, superseded_by, recorded_at) = row
        try:
            payload = json.loads(message) if message else {}
        except ValueError:
            payload = {"alert": {"message": message}}
        return cls(alert_id=aid, rule=rule, model=model, version=version, feature=feature or None, method=method,
                   severity=severity, route=route, run_id=run_id, fired_at=utc(fired), payload=payload,
                   delivered=bool(delivered), attempts=int(attempts), delivered_at=utc(delivered_at),
                   last_error=last_error, updated_at=utc(updated), superseded_by=superseded_by,
                   recorded_at=recorded_at)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, datetime):
        return x.isoformat()
    return str(x)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _describe(rule: Rule, r: Result) -> str:
    where = f"{r.model} v{r.version}" + (f" feature {r.feature!r}" if r.feature else "")
    rate = r.details.get("sample_rate") if isinstance(r.details, Mapping) else None
    sampled = f"; from a {rate:.1%} sample of the rows" if isinstance(rate, float) and rate < 1 else ""
    if rule.type == "performance":
        return f"{where}: {r.method} = {_fmt(r.statistic)} below the floor {_fmt(rule.min)}"
    if rule.type == "data_quality":
        ceiling = rule.max if rule.max is not None else r.threshold
        return f"{where}: {r.method} = {_fmt(r.statistic)} above the ceiling {_fmt(ceiling)}{sampled}"
    p = f", p = {_fmt(r.pvalue)}" if r.pvalue is not None else ""
    return f"{where}: {r.severity} drift, {r.method} = {_fmt(r.statistic)} (threshold {_fmt(r.threshold)}{p}{sampled})"


def _trace_ids(results: Iterable[Result], limit: int = 20) -> list[str]:
    out: list[str] = []
    for r in results:
        ids = r.details.get("trace_ids") if isinstance(r.details, Mapping) else None
        for t in ids if isinstance(ids, (list, tuple)) else ():
            if isinstance(t, str) and t not in out and len(out) < limit:
                out.append(t)
    return out


def _payload(group_id: str, rule: str, severity: str, fired_at: datetime, message: str,
             results: Sequence[Result]) -> dict[str, Any]:
    first = results[0]
    return {
        "alert": {"id": group_id, "rule": rule, "severity": severity, "model": first.model,
                  "version": first.version, "feature": first.feature, "method": ",".join(sorted({r.method for r in results})),
                  "message": message, "fired_at": fired_at.isoformat(), "run_id": first.run_id},
        "results": [r.to_json() for r in results],
        "trace_ids": _trace_ids(results),
    }


def slack_text(payload: Mapping[str, Any]) -> str:
    """The one-message Slack rendering of an alert body."""
    a = payload.get("alert", {})
    head = "retrain triggered" if a.get("rule") == RETRAIN else "alert"
    text = f"[{str(a.get('severity', '')).upper()}] modelwatch {head} ({a.get('rule')}): {a.get('message')}"
    if payload.get("trace_ids"):
        text += "\ntraces: " + ", ".join(payload["trace_ids"][:5])
    return text


@dataclass
class _Candidate:
    rule: str
    model: str
    feature: str | None
    severity: str
    message: str
    results: list[Result] = field(default_factory=list)


class Alerter:
    """Evaluates rules, fires and records alerts and retrain triggers, and delivers them (see the module docstring)."""

    def __init__(self, store: Store, config: AlertConfig | None = None) -> None:
        self.store = store
        self.config = config or AlertConfig()
        self._routes = {r.name: r for r in self.config.routes}
        self._warned_routes: set[str] = set()
        self._fired: dict[str, datetime] = {}  # rows this alerter fired (id -> when): its own to deliver first
        self.settle_seconds = 0.0 if store.embedded else SETTLE_SECONDS

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self, results: Iterable[Result]) -> list[_Candidate]:
        """What `results` would fire before cooldown: one candidate per (rule, model, feature, severity)."""
        out: dict[tuple[str, str, str, str], _Candidate] = {}
        for r in results:
            for rule in self.config.rules:
                sev = rule.match(r)
                if sev is None:
                    continue
                key = (rule.name, r.model, r.feature or "", sev)
                c = out.get(key)
                if c is None:
                    c = out[key] = _Candidate(rule.name, r.model, r.feature, sev, _describe(rule, r))
                c.results.append(r)
        return list(out.values())

    def _recent(self, models: Sequence[str], since: datetime, retrain: bool) -> set[tuple[str, str, str, str]]:
        rows = self.store.query(
            f"SELECT DISTINCT Rule, ModelName, Feature, Severity FROM {self.store.table('ml_alerts')} FINAL "
            f"WHERE {LIVE} AND ModelName IN {{models:Array(String)}} AND FiredAt >= {{since:DateTime64(3)}} AND "
            f"Rule {'=' if retrain else '!='} {{retrain:String}}",
            {"models": list(models), "since": since, "retrain": RETRAIN})
        return {tuple(r) for r in rows}  # type: ignore[misc]

    def process(self, results: Sequence[Result], now: datetime | None = None) -> list[Alert]:
        """Fire what `results` call for (outside cooldowns), record it, then deliver everything due.

        Returns the rows fired by this call, with the outcome of their first
        delivery attempt. Store errors propagate (the caller's run failed);
        delivery errors never do: they are recorded on the rows.
        """
        now = utc_ms(now if now is not None else datetime.now(timezone.utc))
        with _FIRING:
            fired = self._fire_alerts(results, now) + self._fire_retrain(results, now)
            self._record(fired)
            fired = self._give_way(fired)
            for stale in [k for k, t in self._fired.items() if t < now - FIRST_ATTEMPT_GRACE]:
                del self._fired[stale]
            self._fired.update((a.alert_id, now) for a in fired)
            delivered = {a.alert_id: a for a in self._deliver_pending(now)}
        return [delivered.get(a.alert_id, a) for a in fired]

    def _record(self, alerts: Sequence[Alert]) -> None:
        """Write `alerts`' rows: a new row gets the store's clock as ``RecordedAt``; a new version keeps its own."""
        new = [a.row()[:-1] for a in alerts if a.recorded_at is None]
        if new:
            self.store.insert("ml_alerts", new, ALERT_COLUMNS[:-1])
        again = [a.row() for a in alerts if a.recorded_at is not None]
        if again:
            self.store.insert("ml_alerts", again, ALERT_COLUMNS)

    def _cooldown(self, rule: str) -> float:
        return self.config.retrain.cooldown_seconds if rule == RETRAIN and self.config.retrain else \
            self.config.cooldown_seconds

    def _give_way(self, alerts: Sequence[Alert]) -> list[Alert]:
        """`alerts` that stand: a first-attempt row gives way to a live row of its key recorded before it within the
        cooldown (another analyzer, at the same moment), and is rewritten as superseded by that one.

        Rows are ordered by the store's own clock at their first write
        (``RecordedAt``), so a row written after another analyzer's check
        always ranks behind the row that check let stand. Where other
        processes may write (a server store), the check waits
        :attr:`settle_seconds` after the row's write, so that an insert that
        began earlier and commits later is seen.
        """
        fresh = [a for a in alerts if not a.attempts and not a.superseded_by]
        if not fresh:
            return list(alerts)
        earliest = min(a.fired_at for a in fresh) - timedelta(seconds=max(self._cooldown(a.rule) for a in fresh))
        if self.settle_seconds:
            time.sleep(self.settle_seconds)
        rows = self.store.query(
            f"SELECT AlertId, RecordedAt, Rule, ModelName, Feature, Severity, FiredAt "
            f"FROM {self.store.table('ml_alerts')} FINAL "
            f"WHERE {LIVE} AND ModelName IN {{models:Array(String)}} AND FiredAt >= {{since:DateTime64(3)}}",
            {"models": sorted({a.model for a in fresh}), "since": earliest})
        by_key: dict[tuple[str, str, str, str], list[tuple[Any, str, datetime]]] = {}
        mine: dict[str, Any] = {}
        for aid, recorded, rule, model, feature, severity, fired_at in rows:
            group = aid.rsplit(":", 1)[0]
            by_key.setdefault((rule, model, feature, severity), []).append((recorded, group, utc(fired_at)))
            mine[aid] = recorded
        out, lost = [], []
        for a in alerts:
            if a.recorded_at is None:
                a.recorded_at = mine.get(a.alert_id)
            window = timedelta(seconds=self._cooldown(a.rule))
            rivals = [(r, g) for r, g, fired_at in by_key.get(a.key, ())
                      if a.recorded_at is not None and (r, g) < (a.recorded_at, a.group) and g != a.group
                      and abs(a.fired_at - fired_at) < window]
            if a in fresh and rivals:
                a.superseded_by = min(rivals)[1]
                a.updated_at = (a.updated_at or a.fired_at) + timedelta(milliseconds=1)
                lost.append(a)
            else:
                out.append(a)
        if lost:
            logger.info("modelwatch: %d alert row(s) gave way to the same alerts fired by another analyzer", len(lost))
            self._record(lost)
        return out

    def _fire_alerts(self, results: Sequence[Result], now: datetime) -> list[Alert]:
        candidates = self.evaluate(results)
        if not candidates:
            return []
        since = now - timedelta(seconds=self.config.cooldown_seconds)
        recent = self._recent(sorted({c.model for c in candidates}), since, retrain=False)
        out = []
        for c in candidates:
            if (c.rule, c.model, c.feature or "", c.severity) in recent:
                continue
            first = c.results[0]
            group = _id(c.rule, c.model, c.feature or "", c.severity, now)
            message = c.message if len(c.results) == 1 else f"{c.message} (+{len(c.results) - 1} more)"
            payload = _payload(group, c.rule, c.severity, now, message, c.results)
            routes = [r.name for r in self.config.routes if r.accepts(c.model, c.severity)] or [""]
            for route in routes:
                out.append(Alert(alert_id=f"{group}:{route or '-'}", rule=c.rule, model=c.model,
                                 version=first.version, feature=c.feature, method=payload["alert"]["method"],
                                 severity=c.severity, route=route, run_id=first.run_id, fired_at=now,
                                 payload=payload, updated_at=now))
        return out

    def _fire_retrain(self, results: Sequence[Result], now: datetime) -> list[Alert]:
        cfg = self.config.retrain
        if cfg is None:
            return []
        by_model: dict[str, list[Result]] = {}
        for r in results:
            if (r.kind == "drift" and r.status == OK and r.drifted and (not cfg.models or r.model in cfg.models)
                    and severity_rank(r.severity) >= severity_rank(cfg.min_severity)):
                by_model.setdefault(r.model, []).append(r)
        if not by_model:
            return []
        since = now - timedelta(seconds=cfg.cooldown_seconds)
        recent = {k[1] for k in self._recent(sorted(by_model), since, retrain=True)}
        out = []
        for model, rs in by_model.items():
            if model in recent:
                continue
            severity = max((r.severity for r in rs), key=severity_rank)
            features = sorted({r.feature or "" for r in rs})
            reason = (f"{model} v{rs[0].version}: {severity} drift in {len(features)} feature(s): "
                      + ", ".join(repr(f) if f else "(model)" for f in features[:10]))
            group = _id(RETRAIN, model, "", severity, now)
            payload = _payload(group, RETRAIN, severity, now, reason, rs)
            payload["alert"]["feature"] = None
            payload["features"] = features
            out.append(Alert(alert_id=f"{group}:{RETRAIN}", rule=RETRAIN, model=model, version=rs[0].version,
                             feature=None, method=payload["alert"]["method"], severity=severity, route=RETRAIN,
                             run_id=rs[0].run_id, fired_at=now, payload=payload, updated_at=now))
        return out

    # -- delivery ------------------------------------------------------------------------

    def pending(self) -> list[Alert]:
        """Rows with a route, not delivered, with attempts left (latest version of each)."""
        rows = self.store.query(
            f"SELECT {', '.join(ALERT_COLUMNS)} FROM {self.store.table('ml_alerts')} FINAL "
            f"WHERE {LIVE} AND Route != '' AND NOT Delivered AND Attempts < {{max:UInt32}} ORDER BY FiredAt, AlertId",
            {"max": self.config.max_attempts})
        return [Alert.from_row(r) for r in rows]

    def deliver_pending(self, now: datetime | None = None) -> list[Alert]:
        """Attempt every due undelivered row (first attempts at once, retries after their backoff); record outcomes."""
        now = utc_ms(now if now is not None else datetime.now(timezone.utc))
        with _FIRING:
            return self._deliver_pending(now)

    def _deliver_pending(self, now: datetime) -> list[Alert]:
        started = time.monotonic()
        failed_routes: set[str] = set()
        done: list[Alert] = []
        for a in self._give_way(self.pending()):
            if not a.attempts and a.alert_id not in self._fired and now - a.fired_at < FIRST_ATTEMPT_GRACE:
                continue  # another analyzer fired it just now and is delivering it
            if a.attempts and a.updated_at is not None and now < a.updated_at + timedelta(
                    seconds=self.config.retry_backoff_seconds * 2 ** (a.attempts - 1)):
                continue
            if a.route in failed_routes or time.monotonic() - started > self.config.delivery_budget_seconds:
                continue
            error = self._deliver(a)
            if error is _UNROUTABLE:
                continue  # route no longer configured: leave the row as it is
            a.attempts += 1
            a.updated_at = now if a.updated_at is None or now > a.updated_at else a.updated_at + timedelta(
                milliseconds=1)
            if error:
                a.last_error = error[:1000]
                failed_routes.add(a.route)
                logger.warning("modelwatch: delivering alert %s to %r failed (attempt %d of %d): %s", a.alert_id,
                               a.route, a.attempts, self.config.max_attempts, a.last_error)
            else:
                a.delivered, a.delivered_at = True, a.updated_at
            self._record([a])
            done.append(a)
        return done

    def _deliver(self, a: Alert) -> str | None:
        """Send one row; returns None on success, else the error text."""
        if a.route == RETRAIN:
            cfg = self.config.retrain
            if cfg is None:
                return self._unconfigured(a.route)
            if cfg.command is not None:
                return _run_command(cfg.command, a, cfg.timeout_seconds)
            return _post(cfg.url or "", a.payload, {}, min(cfg.timeout_seconds, self.config.timeout_seconds))
        route = self._routes.get(a.route)
        if route is None:
            return self._unconfigured(a.route)
        body = {"text": slack_text(a.payload)} if route.format == "slack" else a.payload
        return _post(route.url, body, dict(route.headers), self.config.timeout_seconds)

    def _unconfigured(self, route: str) -> str:
        if route not in self._warned_routes:
            self._warned_routes.add(route)
            logger.warning("modelwatch: undelivered alerts for route %r, which is no longer configured; "
                           "they stay undelivered", route)
        return _UNROUTABLE

    def alerts(self, model: str | None = None) -> list[Alert]:
        """The latest version of every standing row (optionally one model's), oldest first."""
        where, params = (f"WHERE {LIVE} AND ModelName = {{model:String}}", {"model": model}) if model is not None \
            else (f"WHERE {LIVE}", {})
        rows = self.store.query(f"SELECT {', '.join(ALERT_COLUMNS)} FROM {self.store.table('ml_alerts')} FINAL "
                                f"{where} ORDER BY FiredAt, AlertId", params)
        return [Alert.from_row(r) for r in rows]


def _id(*parts: Any) -> str:
    h = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()
    return h[:24]


def _post(url: str, body: Any, headers: Mapping[str, str], timeout: float) -> str | None:
    data = json.dumps(body, default=_jsonable, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8",
                                          "User-Agent": "modelwatch-analyzer", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(65536)
            return None  # urlopen raises for non-2xx
    except urllib.error.HTTPError as exc:
        detail = exc.read(200).decode("utf-8", "replace") if exc.fp else ""
        return f"HTTP {exc.code} {exc.reason}: {detail}".strip()
    except Exception as exc:  # URLError, timeouts, resets
        reason = getattr(exc, "reason", None) or exc
        return f"{type(exc).__name__}: {reason}"


def _run_command(argv: Sequence[str], a: Alert, timeout: float) -> str | None:
    alert = a.payload.get("alert", {})
    env = {**os.environ, "MODELWATCH_MODEL": a.model, "MODELWATCH_VERSION": a.version,
           "MODELWATCH_SEVERITY": a.severity, "MODELWATCH_REASON": str(alert.get("message", "")),
           "MODELWATCH_FEATURES": json.dumps(a.payload.get("features", []), ensure_ascii=False),
           "MODELWATCH_RUN_ID": a.run_id, "MODELWATCH_ALERT_ID": a.alert_id,
           "MODELWATCH_PAYLOAD": json.dumps(a.payload, default=_jsonable, ensure_ascii=False)}
    try:
        proc = subprocess.run(list(argv), env=env, timeout=timeout, capture_output=True, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"command timed out after {timeout:g} s"
    except (OSError, ValueError) as exc:  # not found, not executable, NUL in an env value
        return f"command failed to start: {exc}"
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        return f"command exited {proc.returncode}: {tail}"
    return None
