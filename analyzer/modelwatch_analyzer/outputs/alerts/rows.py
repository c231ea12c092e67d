"""The ``ml_alerts`` row: what was fired, for which route, and how its delivery went.

``ml_alerts`` is a ReplacingMergeTree ordered by (ModelName, AlertId)
and versioned by ``UpdatedAt``: an update is a new row version, read back
with ``FINAL``. One row per (alert, route); ``AlertId`` is
``<alert id>:<route name>`` (``-`` when no route matched: the alert is still
recorded, with nothing to deliver). ``Message`` holds the JSON body that is
(re)delivered, so a retry after a restart sends exactly what the first
attempt sent; its ``alert.message`` is the human-readable line.
``Route`` is the route's *name*: webhook URLs (Slack's especially) are
secrets and stay in the config. A row superseded by a concurrent duplicate
(``SupersededBy``, see :mod:`.firing`) is kept, and left out of what
:data:`LIVE` selects: ``status``, the report and cooldowns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelwatch_analyzer.analysis.window import utc

ALERT_COLUMNS = ("AlertId", "UpdatedAt", "FiredAt", "ModelName", "ModelVersion", "Feature", "Method", "Severity",
                 "Rule", "Message", "RunId", "Route", "Delivered", "Attempts", "DeliveredAt", "LastError",
                 "SupersededBy", "RecordedAt")

LIVE = "SupersededBy = ''"
"""The ``ml_alerts`` condition of rows that stand (not given way to a concurrent duplicate)."""


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
                self.method, self.severity, self.rule, json.dumps(self.payload, sort_keys=True, default=jsonable),
                self.run_id, self.route, self.delivered, self.attempts, self.delivered_at, self.last_error,
                self.superseded_by, self.recorded_at)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Alert:
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


def jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, datetime):
        return x.isoformat()
    return str(x)
