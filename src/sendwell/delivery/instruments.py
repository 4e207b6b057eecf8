"""SMTP latency and throttling, measured in the process that sends: the histogram and the timer around each
hand-off, and counters of the time spent waiting for limits and of the mails deferred as throttled.

The web adapter (web/prometheus.py) reports it at /metrics; with PROMETHEUS_MULTIPROC_DIR set
(the same directory for every process on a machine) prometheus-client keeps it in shared
files that /metrics adds up. A process makes its file only when it first sends (a CLI call
that sends nothing leaves the folder alone), and at exit folds its counts into one archive
file and removes its own, so the folder holds one file per live sender plus the archive.
"""

from __future__ import annotations

import atexit
import fcntl
import glob
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Histogram, multiprocess
from prometheus_client.mmap_dict import MmapedDict

ARCHIVE = "histogram_archive.db"  # the counts of every sender that has exited
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_lock = threading.Lock()
_histogram: Histogram | None = None
_throttle: tuple[Counter, Counter] | None = None
_retiring = False


def multiprocess_dir() -> str | None:
    """The directory prometheus-client shares metrics through, when several processes report."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def smtp_seconds() -> Histogram:
    """The histogram, made on first use: in multiprocess mode making it creates this process's file."""
    global _histogram
    with _lock:
        if _histogram is None:
            # Not registered in the global registry: /metrics builds its own per scrape (web/prometheus.py).
            _histogram = Histogram(
                "sendwell_smtp_send_seconds", "Time to hand one message to the SMTP server (or capture)",
                registry=None, buckets=_BUCKETS,
            )
            _retire_at_exit()
        return _histogram


def throttle_counters() -> tuple[Counter, Counter]:
    """(seconds delivery threads waited for a limit, mails deferred as throttled by provider group), made on first use."""
    global _throttle
    with _lock:
        if _throttle is None:
            _throttle = (
                Counter("sendwell_throttle_wait_seconds", "Seconds delivery threads waited for a provider group's, "
                        "a domain's or the global limit", registry=None),
                Counter("sendwell_throttled_mails", "Mails deferred because their provider group (or domain, or the "
                        "global limit) was full", ["group"], registry=None),
            )
            _retire_at_exit()
        return _throttle


def made_here() -> list[Any]:
    """The metrics this process has made (for /metrics without multiprocess mode)."""
    return [m for m in (_histogram, *(_throttle or ())) if m is not None]


def _retire_at_exit() -> None:
    # Called with _lock held, when this process first makes a metric (its file, in multiprocess mode).
    global _retiring
    folder = multiprocess_dir()
    if folder and not _retiring:
        _retiring = True
        atexit.register(retire_process_files, os.getpid(), folder)


def __getattr__(name: str) -> Any:
    # SMTP_SECONDS stays importable; it is made when first asked for, not at import.
    if name == "SMTP_SECONDS":
        return smtp_seconds()
    raise AttributeError(name)


def retire_process_files(pid: int, folder: str) -> None:
    """Fold a finished process's counter and histogram values into the archive and remove its files.

    Adding them up keeps every total monotonic for Prometheus (removing the file alone would
    look like a counter reset); the lock serialises processes that exit at the same time.
    """
    if os.getpid() != pid:  # a forked child inherited the handler: its parent retires the file
        return
    with open(os.path.join(folder, "archive.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        files = [f for kind in ("counter", "histogram") for f in glob.glob(os.path.join(folder, f"{kind}_{pid}.db"))]
        for path in files:
            kind = os.path.basename(path).split("_")[0]
            archive = MmapedDict(os.path.join(folder, f"{kind}_archive.db"))
            try:
                for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(path):
                    total, _ = archive.read_value(key)
                    archive.write_value(key, total + value, 0.0)
            finally:
                archive.close()
            os.remove(path)
    multiprocess.mark_process_dead(pid, folder)  # live gauges, should any be added


@contextmanager
def smtp_timer() -> Iterator[None]:
    """Observe the SMTP latency of the enclosed send (the hook in Deliverer.deliver)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        smtp_seconds().observe(time.perf_counter() - start)
