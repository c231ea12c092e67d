"""Exceptions of the server side.

Hierarchy::

    ModelwatchError                 (modelwatch.errors)
    └── StoreError                  the store cannot be reached or refused a statement
        ├── StoreUnavailable        connection-level: retry later
        ├── NoStore                 a read-only command named an embedded store that does not exist
        └── UnsafeIdentifier        a name that cannot be put into SQL text (also a ValueError)
    ConfigError                     invalid analyzer configuration (also a ValueError)
    BaselineError                   a baseline cannot be built or found
"""

from __future__ import annotations

from modelwatch.errors import ModelwatchError


class StoreError(ModelwatchError):
    """ClickHouse refused a statement, or could not be reached."""


class StoreUnavailable(StoreError):
    """The store could not be reached (server down, embedded directory locked by another process)."""


class NoStore(StoreError):
    """An embedded store directory that holds no store (read-only commands do not create one)."""


class UnsafeIdentifier(StoreError, ValueError):
    """A database, table, column or cluster name that is not allowed into SQL text."""


class ConfigError(ModelwatchError, ValueError):
    """The analyzer's configuration (file or arguments) is invalid; the message says where and what to change."""


class BaselineError(ModelwatchError):
    """A baseline cannot be built or found (no data, unknown model version, unreadable training file)."""
