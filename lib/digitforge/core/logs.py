"""One logging setup for jobs, the CLI and training ranks."""
import logging
import os
import sys
import warnings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | None = None) -> None:
    """Log to stderr as `time LEVEL logger: message` (level from DIGITFORGE_LOG_LEVEL), once per process, with
    library chatter quietened."""
    level = (level or os.environ.get("DIGITFORGE_LOG_LEVEL", "INFO")).upper()
    root = logging.getLogger()
    if not any(getattr(h, "_digitforge", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        handler._digitforge = True
        root.addHandler(handler)
    root.setLevel(level)
    # petastorm 0.13.1 on pyarrow 14 warns on every reader; the pins are deliberate (see README).
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
    warnings.filterwarnings("ignore", message=".*pyarrow.localfs is deprecated.*", category=FutureWarning)
    # Snapshots carry a Unischema (for make_reader), yet make_batch_reader is the fast path we mean.
    warnings.filterwarnings("ignore", message="Please use make_reader", category=UserWarning)
    # py4j and the driver's chatter drown the job's own progress lines.
    for noisy in ("py4j", "cassandra", "petastorm", "urllib3", "matplotlib", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A refused or lost connection is reported once, as one line naming the setting (core/failures): the
    # driver's own tracebacks and "failed to connect" errors for the same failure would bury it.
    for h in root.handlers:
        if getattr(h, "_digitforge", False) and not any(isinstance(f, DriverFailureFilter) for f in h.filters):
            h.addFilter(DriverFailureFilter())


class DriverFailureFilter(logging.Filter):
    """Drops the cassandra-driver's ERROR records and tracebacks (warnings stay, as one line each)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("cassandra"):
            return True
        if record.levelno >= logging.ERROR:
            return False
        record.exc_info, record.exc_text = None, None
        return True
