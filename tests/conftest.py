"""Shared fixtures: every test starts with zeroed modelwatch aggregates."""

from __future__ import annotations

import pytest
from modelwatch import _safety, metrics


@pytest.fixture(autouse=True)
def _fresh_modelwatch_state(monkeypatch):
    metrics.registry.reset()
    _safety.reset()
    monkeypatch.setattr(metrics, "_delivery_installed", False)
    yield
