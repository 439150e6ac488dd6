"""Progress of long driver-side work (downloads, staging, imports, snapshot writes, evaluations, report
rendering): a tqdm bar when stderr is a terminal, otherwise a log line every `every_s` seconds (and one
at the end, if any was written), so job logs stay readable. DIGITFORGE_PROGRESS=bar|log|off overrides."""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Iterator

log = logging.getLogger("digitforge.progress")


def _mode() -> str:
    mode = os.environ.get("DIGITFORGE_PROGRESS", "").lower()
    if mode in ("bar", "log", "off"):
        return mode
    return "bar" if sys.stderr.isatty() else "log"


class _LogLines:
    """tqdm's small interface (update, iteration, close, with-block) as periodic log lines."""

    def __init__(self, iterable, total, desc, unit, every_s, enabled):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every_s, self.enabled = every_s, enabled
        self.n, self.started = 0, time.monotonic()
        self._last, self._logged = self.started, False

    def update(self, n: float = 1) -> None:
        """Count n more units done; log a line if every_s has passed since the last one."""
        self.n += n
        now = time.monotonic()
        finished = self.total is not None and self.n >= self.total  # close() says so, if anything was said
        if self.enabled and not finished and now - self._last >= self.every_s:
            self._last, self._logged = now, True
            log.info("%s: %s", self.desc, self._status(now))

    def _status(self, now: float) -> str:
        done = f"{self.n:,.0f}" + (f" of {self.total:,.0f}" if self.total else "") + f" {self.unit}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = self.n / max(now - self.started, 1e-9)
        return f"{done}{share}, {rate:,.1f} {self.unit}/s"

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def close(self) -> None:
        """Log the final line, if the work was long enough to have been reported at all."""
        if self._logged:  # only work long enough to have been reported says it ended
            self._logged = False
            log.info("%s: done, %s", self.desc, self._status(time.monotonic()))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable: Iterable | None = None, total: float | None = None, desc: str = "", unit: str = "it",
             every_s: float = 10.0):
    """Wrap an iterable (or, without one, call .update(n) yourself, e.g. bytes downloaded) to show its
    progress: `for batch in progress(batches, total=len(batches), desc="staging", unit="file"): ...`."""
    mode = _mode()
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if mode == "bar":
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                    unit_scale=unit == "B", dynamic_ncols=True)
    return _LogLines(iterable, total, desc, unit, every_s, enabled=mode == "log")
