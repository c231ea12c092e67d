"""Text from the store made safe for a terminal: every control character shown as an escape.

Model names, versions, feature names, categories, alert messages and
baseline sources come from whoever sends telemetry or builds baselines. A
terminal interprets some characters as commands (``\\x1b[2J`` clears the
screen, ``\\r`` and ``\\n`` fake lines, a bidirectional override reorders
what follows), so every text output of the CLI passes such values through
:func:`escape`: C0 controls, DEL, C1 controls, the Unicode line and
paragraph separators and the bidirectional embedding, override and isolate
characters are written as Python-style escapes (``\\n``, ``\\t``, ``\\x1b``,
``\\x9b``, ``\\u202e``), everything else is left as it is. JSON output needs
no such step (``json.dumps`` escapes control characters) and the HTML report
escapes its text with :func:`html.escape`.
"""

from __future__ import annotations

from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_OTHER = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_TABLE = {c: _NAMED.get(chr(c)) or (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _OTHER}


def escape(value: Any) -> str:
    """``str(value)`` with control characters written as visible escapes (see the module docstring)."""
    return str(value).translate(_TABLE)


def escape_all(data: Any) -> Any:
    """`data` (dicts, lists, tuples of plain values) with every string in it, keys too, passed through :func:`escape`."""
    if isinstance(data, str):
        return escape(data)
    if isinstance(data, dict):
        return {escape_all(k): escape_all(v) for k, v in data.items()}
    if isinstance(data, list):
        return [escape_all(v) for v in data]
    if isinstance(data, tuple):
        return tuple(escape_all(v) for v in data)
    return data
