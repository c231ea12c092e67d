"""The Slack channel: an alert body as the one message a Slack incoming webhook posts (sent by :mod:`.webhook`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwatch_analyzer.outputs.alerts.rules import RETRAIN


def slack_text(payload: Mapping[str, Any]) -> str:
    """The one-message Slack rendering of an alert body."""
    a = payload.get("alert", {})
    head = "retrain triggered" if a.get("rule") == RETRAIN else "alert"
    text = f"[{str(a.get('severity', '')).upper()}] modelwatch {head} ({a.get('rule')}): {a.get('message')}"
    if payload.get("trace_ids"):
        text += "\ntraces: " + ", ".join(payload["trace_ids"][:5])
    return text
