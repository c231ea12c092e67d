"""Exceptions raised by modelwatch.

The SDK raises only at configuration time, into code that asked for something
impossible (a bad argument to :func:`modelwatch.monitor` or
:func:`modelwatch.configure`). It never raises into a wrapped inference call:
failures there are logged once, counted, and swallowed.

Hierarchy::

    ModelwatchError
    └── ConfigurationError (also a ValueError)
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "ModelwatchError"]


class ModelwatchError(Exception):
    """Base class of every exception modelwatch raises."""


class ConfigurationError(ModelwatchError, ValueError):
    """An argument given in code is invalid (wrong type, out of range, unknown name)."""
