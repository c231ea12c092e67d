"""The webhook channel: one JSON POST with a timeout; the outcome is an error text or None, never an exception."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from modelwatch_analyzer.outputs.alerts.rows import jsonable


def post(url: str, body: Any, headers: Mapping[str, str], timeout: float) -> str | None:
    data = json.dumps(body, default=jsonable, ensure_ascii=False).encode("utf-8")
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
