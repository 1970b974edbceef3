"""A progress bar on the terminal for long reports: only when stderr is a terminal, so that
logs, pipes and CI output stay clean."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``tick()`` once per row; redraws at most five times a second."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.total, self.done = label, total, 0
        self.started = self._last = time.monotonic()

    def tick(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and (now := time.monotonic()) - self._last >= 0.2:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-6)
        if self.total:
            share = min(1.0, self.done / self.total)
            bar = "#" * int(share * 30)
            left = (self.total - self.done) / rate if rate else 0
            text = (f"\r{self.label} [{bar:<30}] {share:4.0%} {self.done:,}/{self.total:,} rows "
                    f"{rate:,.0f}/s, {left:,.0f} s left ")
        else:
            text = f"\r{self.label} {self.done:,} rows {rate:,.0f}/s "
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
