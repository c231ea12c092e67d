"""What ``modelwatch demo`` is asked to do: the store, how many simulated days and applications, the seed, the report."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class DemoOptions:
    url: str | None = None  # store; default a fresh temporary directory
    database: str | None = None
    days: int = 7
    per_day: int = 2000
    drift_day: int = 4  # 1-based: the first drifted day
    label_share: float = 0.7  # share of loans whose outcome is known a day later
    sampling_rate: float = 0.1
    seed: int = 7
    out: str = "modelwatch-demo-report.html"
    ui: bool = False  # afterwards, serve the web UI on the demo's store until Ctrl-C (or `ui_stop` is set)
    ui_port: int = 4320
    ui_stop: threading.Event = field(default_factory=threading.Event)
    print: Callable[[str], None] = field(default=lambda s: print(s, flush=True))

    def problem(self) -> str | None:
        """Why these options cannot make the story (too few days, the event outside them), or None."""
        if self.days < 3 or not 2 <= self.drift_day <= self.days or self.per_day < 100:
            return "needs --days >= 3, 2 <= --drift-day <= --days and --per-day >= 100"
        return None
