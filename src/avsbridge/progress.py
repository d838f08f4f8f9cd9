"""Progress of a long job as plain log lines: done/total, rate, ETA.

A shard job on real AVSBench runs for minutes to hours; its log (a file under
``logs/`` or SLURM's output) must show it is alive and when it will end. A bar
(tqdm) writes carriage returns that turn into one unreadable line in a file and
interleave when jobs share a terminal; here every update is one whole log line
through the job's logger, at most one per ``min_interval_s`` (plus the first
and the last).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

DEFAULT_INTERVAL_S = float(os.environ.get("AVSBRIDGE_PROGRESS_INTERVAL", "10"))


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``: short, no locale."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Count units of work and log ``what: 12/64 clips (19%), 0.42 clips/s, ETA 2 min 04 s``."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str = "clips",
        logger: logging.Logger | None = None,
        min_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = int(total)
        self.unit = unit
        self.log = logger or logging.getLogger("avsbridge.progress")
        self.min_interval_s = DEFAULT_INTERVAL_S if min_interval_s is None else min_interval_s
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last_logged: float | None = None

    def line(self) -> str:
        elapsed = self.clock() - self.started
        share = f" ({100.0 * self.done / self.total:.0f}%)" if self.total else ""
        text = f"{self.what}: {self.done}/{self.total} {self.unit}{share}"
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            text += f", {rate:.3g} {self.unit}/s"
            if self.done < self.total:
                text += f", ETA {format_duration((self.total - self.done) / rate)}"
            else:
                text += f", took {format_duration(elapsed)}"
        return text

    def update(self, n: int = 1) -> None:
        """Add ``n`` finished units; log when due (first update, interval passed, or done)."""
        self.done = min(self.total, self.done + int(n)) if self.total else self.done + int(n)
        now = self.clock()
        due = (
            self._last_logged is None
            or now - self._last_logged >= self.min_interval_s
            or self.done >= self.total
        )
        if due:
            self._last_logged = now
            self.log.info("%s", self.line())

    def set(self, done: int) -> None:
        """Set the count (for work that advances in batches of unequal size)."""
        if done > self.done:
            self.update(done - self.done)
