"""Exceptions of the server side.

Hierarchy::

    ModelwatchError                 (modelwatch.errors)
    └── StoreError                  the store cannot be reached or refused a statement
        ├── StoreUnavailable        connection-level: retry later
        └── UnsafeIdentifier        a name that cannot be put into SQL text (also a ValueError)
"""

from __future__ import annotations

from modelwatch.errors import ModelwatchError


class StoreError(ModelwatchError):
    """ClickHouse refused a statement, or could not be reached."""


class StoreUnavailable(StoreError):
    """The store could not be reached (server down, embedded directory locked by another process)."""


class UnsafeIdentifier(StoreError, ValueError):
    """A database, table, column or cluster name that is not allowed into SQL text."""
