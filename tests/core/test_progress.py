"""The progress helper: periodic log lines when not on a terminal, the items passed through unchanged."""
import logging

from digitforge.core import progress as progress_mod
from digitforge.core.progress import progress


def test_log_lines_off_a_terminal(monkeypatch, caplog):
    monkeypatch.setenv("DIGITFORGE_PROGRESS", "log")
    with caplog.at_level(logging.INFO, logger="digitforge.progress"):
        assert list(progress(range(5), desc="staging", unit="file", every_s=0)) == list(range(5))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("staging: 1 of 5 file (20%)")
    assert lines[-1].startswith("staging: done, 5 of 5 file (100%)")


def test_quick_work_logs_nothing_and_updates_count(monkeypatch, caplog):
    monkeypatch.setenv("DIGITFORGE_PROGRESS", "log")
    with caplog.at_level(logging.INFO, logger="digitforge.progress"):
        with progress(total=100, desc="download", unit="B", every_s=3600) as bar:
            bar.update(60)
            bar.update(40)
        assert bar.n == 100
    assert caplog.records == []


def test_a_bar_on_a_terminal(monkeypatch):
    monkeypatch.delenv("DIGITFORGE_PROGRESS", raising=False)
    monkeypatch.setattr(progress_mod.sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress(range(3), desc="x")
    assert type(bar).__module__.startswith("tqdm") and list(bar) == [0, 1, 2]
