"""modelwatch's server side: storage in ClickHouse (embedded chDB or a server), schema, receiver, analyzer.

Installed with ``pip install 'modelwatch[analyzer]'``; the SDK (``modelwatch``)
never imports it.
"""

from __future__ import annotations

__all__ = ["__version__"]

from modelwatch.version import __version__
