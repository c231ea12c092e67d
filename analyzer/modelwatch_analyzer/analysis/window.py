"""Time in the analyzer: the window of predictions an analysis reads, UTC conversions, and the times and ages
(``2026-11-20T08:00``, ``24h``, ``7d``) users give on the command line and in configs."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from modelwatch_analyzer.errors import ConfigError


@dataclass(frozen=True)
class Window:
    """One model's predictions in [start, end), optionally one version ('' or None: every version) and one segment."""

    model: str
    start: datetime
    end: datetime
    version: str | None = None
    segment: Segment | None = None

    def span(self, start: datetime, end: datetime) -> Window:
        """The same predictions (model, version, segment) in [start, end)."""
        return replace(self, start=start, end=end)

    def of_segment(self, segment: Segment | None) -> Window:
        return replace(self, segment=segment)

    def where(self) -> tuple[str, dict[str, Any]]:
        sql = ("ModelName = {model:String} AND Timestamp >= fromUnixTimestamp64Nano({start:Int64}) "
               "AND Timestamp < fromUnixTimestamp64Nano({end:Int64})")
        params: dict[str, Any] = {"model": self.model, "start": to_ns(self.start), "end": to_ns(self.end)}
        if self.version:
            sql += " AND ModelVersion = {version:String}"
            params["version"] = self.version
        if self.segment is not None:
            column = "Resource" if self.segment.resource else "Categorical"
            sql += f" AND {column}[{{segment_key:String}}] = {{segment_value:String}}"
            params.update(segment_key=self.segment.key, segment_value=self.segment.value)
        return sql, params


@dataclass(frozen=True)
class Segment:
    """The predictions whose categorical feature (or, `resource`, OTel resource attribute) `key` is `value`."""

    key: str
    value: str
    resource: bool = False

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


def to_ns(t: datetime) -> int:
    """`t` in nanoseconds since the epoch (naive: UTC), at microsecond precision."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(round(t.timestamp() * 1e6)) * 1000


def utc(t: datetime | None) -> datetime | None:
    """`t` as an aware UTC datetime (ClickHouse returns naive UTC values)."""
    if t is None:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def utc_ms(t: datetime) -> datetime:
    """`t` in UTC, truncated to milliseconds: as a DateTime64(3) column stores it."""
    t = utc(t)
    assert t is not None
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str | None, now: datetime, what: str) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise) or an age like ``24h``, ``7d``, ``30m`` before `now`."""
    if text is None or text == "now":
        return now
    age = _AGE.match(text)
    if age:
        return now - timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is neither an ISO time (2026-11-20T08:00) nor an age (24h, 7d)") from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
