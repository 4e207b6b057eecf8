"""SMTP latency, measured in the process that sends: the histogram and the timer around each hand-off.

The web adapter (web/prometheus.py) reports it at /metrics; with PROMETHEUS_MULTIPROC_DIR set
(the same directory for every process on a machine) prometheus-client keeps it in shared
files that /metrics adds up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Histogram

# Not registered in the global registry: /metrics builds its own per scrape (web/prometheus.py).
SMTP_SECONDS = Histogram(
    "sendwell_smtp_send_seconds", "Time to hand one message to the SMTP server (or capture)",
    registry=None, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@contextmanager
def smtp_timer() -> Iterator[None]:
    """Observe the SMTP latency of the enclosed send (the hook in Deliverer.deliver)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        SMTP_SECONDS.observe(time.perf_counter() - start)
