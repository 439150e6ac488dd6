"""What the benchmarks measure around a real job: each output line timed as it arrives (the jobs' own log
lines are the phase marks; their timestamps have whole seconds only), and the peak RSS of the job's
process tree, sampled with psutil. stdout and stderr are read as one stream: spark-submit hands the
Python driver's stderr (where the jobs log) to its own stdout anyway.

The driver is the process started (spark-submit's JVM with the Python driver below it, or torchrun); the
others in its tree are executors, Python workers, ranks. Peak RSS: the highest RSS each process reached, for
the driver side (the JVM + the Python driver) and for the largest other process, sampled every `interval`.
"""
from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Run:
    """One finished command: exit status, (seconds since start, line) for every output line, all the output, peaks."""
    rc: int
    lines: list[tuple[float, str]]
    stdout: str
    wall_s: float
    peak_rss_mb: dict = field(default_factory=dict)

    def first(self, marker: str) -> float | None:
        """Seconds since the start at which the first line containing `marker` arrived."""
        return next((t for t, line in self.lines if marker in line), None)

    def last(self, marker: str) -> float | None:
        return next((t for t, line in reversed(self.lines) if marker in line), None)

    def tail(self, n: int = 40) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


class TreeRss:
    """Samples the RSS of a process and all its descendants on a thread; keeps each pid's peak."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.root, self.interval = pid, interval
        self.peaks: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            root = psutil.Process(self.root)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2 ** 20
                    name = " ".join(p.cmdline())
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if rss > self.peaks.get(p.pid, ("", 0.0))[1]:
                    self.peaks[p.pid] = (name, rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self, driver_markers: tuple[str, ...] = ("SparkSubmit", "pyspark-shell", "jobs/", "torch.distributed.run")) -> dict:
        """Peak RSS (MiB): `driver` (the largest process whose command line names the driver side), `other`
        (the largest of the rest: executors, Python workers, ranks) and `processes` (how many were seen)."""
        driver = [rss for name, rss in self.peaks.values() if any(m in name for m in driver_markers)]
        other = [rss for name, rss in self.peaks.values() if not any(m in name for m in driver_markers)]
        return {"driver": round(max(driver, default=0.0)), "other": round(max(other, default=0.0)),
                "processes": len(self.peaks)}


def run_timed(cmd: list[str], cwd=None, env=None, rss: bool = False) -> Run:
    """Runs `cmd`, timing each line of its output (stdout and stderr together) on arrival; with `rss`, samples
    the tree's peak RSS."""
    t0 = time.perf_counter()
    lines: list[tuple[float, str]] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)
    sampler = TreeRss(proc.pid) if rss else None
    if sampler:
        sampler.__enter__()
    try:
        for line in proc.stdout:
            lines.append((time.perf_counter() - t0, line.rstrip()))
        rc = proc.wait()
    finally:
        if sampler:
            sampler.__exit__()
    return Run(rc, lines, "\n".join(line for _, line in lines), time.perf_counter() - t0,
               sampler.summary() if sampler else {})
