"""Firing alerts and retrain triggers exactly once, recording them in ``ml_alerts`` and delivering what is due.

Flow of one :meth:`Alerter.process` call::

    results ──rules──▶ candidates ──cooldown (ml_alerts)──▶ new alerts ──▶ one ml_alerts row per route
                                                                              │
    critical drift ──retrain cooldown (ml_alerts, Rule='retrain')──▶ retrain row (Route='retrain')
                                                                              ▼
                                                 deliver every due, undelivered row (webhook / command)

Results of one call that meet the same rule for the same (model, feature,
severity) make *one* alert carrying all of them.

Dedup. An alert with the same (rule, model, feature, severity) as one fired
within ``cooldown_seconds`` is not fired again. The state is the
``ml_alerts`` table itself, so it holds across restarts and across processes
sharing a store. A worsening (warning → critical) is a different key and fires.
Exactly once per key and cooldown, on every path:

* in one process (``modelwatch serve`` runs its scheduled analyzer and the
  forwarded ``modelwatch analyze --alert`` side by side), firing, recording
  and delivering hold one process-wide lock (:data:`_FIRING`), so the second
  caller sees the first one's rows;
* across processes sharing a ClickHouse server (the store has no
  compare-and-set), each writer records its rows, then reads back every live
  row of its keys within the cooldown: the first recorded (``RecordedAt``, the
  store's clock at the first write, then id) wins, and a later one is rewritten
  with ``SupersededBy`` naming the winner and is never delivered
  (:meth:`Alerter._give_way`). Delivery checks the same before a first attempt,
  so a row that lost after another process recorded it is not sent either; and
  a new row's first attempt belongs to the alerter that fired it (another
  one takes it over after :data:`FIRST_ATTEMPT_GRACE`, if that one died).

Delivery. Each undelivered row is attempted at once, then on later calls
after ``retry_backoff_seconds * 2**(attempts-1)``, up to ``max_attempts``;
attempts, delivery time and the last error are written back. Every HTTP call
has ``timeout_seconds``; a route that failed once in a call is not tried
again in that call, and a call stops attempting after
``delivery_budget_seconds``: a dead webhook costs the service one timeout per
call, not one per alert. The channels: :mod:`.webhook` (JSON, or
:mod:`.slack`'s message) and :mod:`.command`.

Retraining. With ``[alerts.retrain]``, drifted results at or above its
``min_severity`` (critical by default) trigger a webhook POST or a command,
at most once per ``cooldown_seconds`` per model, recorded as an
``ml_alerts`` row with ``Rule='retrain'`` and delivered (and retried) like
an alert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from modelwatch_analyzer.analysis.results import OK, Result, severity_rank
from modelwatch_analyzer.analysis.window import utc, utc_ms
from modelwatch_analyzer.outputs.alerts import command, webhook
from modelwatch_analyzer.outputs.alerts.payload import alert_body, describe, group_id
from modelwatch_analyzer.outputs.alerts.rows import ALERT_COLUMNS, LIVE, Alert
from modelwatch_analyzer.outputs.alerts.rules import RETRAIN, AlertConfig
from modelwatch_analyzer.outputs.alerts.slack import slack_text
from modelwatch_analyzer.store.client import Store

logger = logging.getLogger("modelwatch.analyzer.alerts")

_UNROUTABLE = "\x00unroutable"
"""What :meth:`Alerter._deliver` returns for a row whose route is no longer configured (compared by identity)."""

_FIRING = threading.Lock()
"""Held while alerts are fired, recorded and delivered: one caller at a time in this process."""

SETTLE_SECONDS = 1.0
"""On a server store, how long a new row's check waits for inserts other analyzers began before it (one insert of
a few rows takes milliseconds). An embedded store has one process, whose lock is enough."""

FIRST_ATTEMPT_GRACE = timedelta(minutes=2)
"""How long a new row is left to the process that fired it before another analyzer delivers it (if that one died)."""


@dataclass
class _Candidate:
    """What one call's results would fire for one (rule, model, feature, severity), before the cooldown."""

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
                # a segment's finding is an alert of its own: "income in region=north"
                feature = f"{r.feature or '(model)'} in {r.segment}" if r.segment else r.feature
                key = (rule.name, r.model, feature or "", sev)
                c = out.get(key)
                if c is None:
                    c = out[key] = _Candidate(rule.name, r.model, feature, sev, describe(rule, r))
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
            group = group_id(c.rule, c.model, c.feature or "", c.severity, now)
            message = c.message if len(c.results) == 1 else f"{c.message} (+{len(c.results) - 1} more)"
            payload = alert_body(group, c.rule, c.severity, now, message, c.results)
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
            group = group_id(RETRAIN, model, "", severity, now)
            payload = alert_body(group, RETRAIN, severity, now, reason, rs)
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
                return command.run(cfg.command, a, cfg.timeout_seconds)
            return webhook.post(cfg.url or "", a.payload, {}, min(cfg.timeout_seconds, self.config.timeout_seconds))
        route = self._routes.get(a.route)
        if route is None:
            return self._unconfigured(a.route)
        body = {"text": slack_text(a.payload)} if route.format == "slack" else a.payload
        return webhook.post(route.url, body, dict(route.headers), self.config.timeout_seconds)

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
