"""Prometheus metrics: database-derived families collected at scrape time, and the SMTP latency histogram.

Several processes (web, `sendwell worker`s on other machines) share one database, so what
can be counted there is counted there when Prometheus scrapes: any web process answers with
the same numbers, and nothing is lost when a worker restarts. Only SMTP latency is measured
in the process that sends; with PROMETHEUS_MULTIPROC_DIR set (the same directory for every
process on a machine) prometheus-client keeps it in shared files that /metrics adds up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from sendwell.db.models import Alert, Event, OutboxMessage, Send, SendState, Suppression, WebhookDelivery

# Not registered in the global registry: /metrics builds its own per scrape (see exposition).
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


class DatabaseCollector(Collector):
    """Families counted in the database at scrape time: the same answer from every process."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._queue: Any = None

    def collect(self) -> Iterable[Metric]:
        from sendwell.db.session import transaction

        with transaction(self.runtime.factory) as session:
            states = dict(session.execute(select(Send.state, func.count()).group_by(Send.state)).all())
            skips = session.execute(
                select(Send.skip_reason, func.count()).where(Send.state == SendState.SKIPPED.value)
                .group_by(Send.skip_reason)).all()
            unsubscribes = session.execute(
                select(Event.method, func.count()).where(Event.kind == "unsubscribed").group_by(Event.method)).all()
            events = session.execute(select(Event.kind, func.count()).group_by(Event.kind)).all()
            suppressions = session.execute(
                select(Suppression.reason, func.count()).group_by(Suppression.reason)).all()
            alerts = session.execute(
                select(Alert.kind, Alert.severity, Alert.resolved_at.is_(None), func.count())
                .group_by(Alert.kind, Alert.severity, Alert.resolved_at.is_(None))).all()
            deliveries = session.execute(
                select(WebhookDelivery.event_type, WebhookDelivery.status, func.count())
                .group_by(WebhookDelivery.event_type, WebhookDelivery.status)).all()
            webhooks_pending = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.kind.in_(("event", "webhook")), OutboxMessage.status == "pending")) or 0

        sent = CounterMetricFamily("sendwell_mails_sent", "Mails accepted by the SMTP server")
        sent.add_metric([], states.get(SendState.SENT.value, 0))
        yield sent
        by_state = GaugeMetricFamily("sendwell_sends", "Sends by state", labels=["state"])
        for state in SendState:
            by_state.add_metric([state.value], states.get(state.value, 0))
        yield by_state
        skipped = CounterMetricFamily("sendwell_sends_skipped", "Sends skipped, by reason", labels=["reason"])
        for reason, count in skips:
            skipped.add_metric([reason or "unknown"], count)
        yield skipped
        unsub = CounterMetricFamily("sendwell_unsubscribes", "Opt-outs, by method", labels=["method"])
        for method, count in unsubscribes:
            unsub.add_metric([method or "unknown"], count)
        yield unsub
        ev = CounterMetricFamily("sendwell_events", "Events recorded, by kind", labels=["kind"])
        for kind, count in events:
            ev.add_metric([kind], count)
        yield ev
        sup = GaugeMetricFamily("sendwell_suppressions", "Suppression-list entries, by reason", labels=["reason"])
        for reason, count in suppressions:
            sup.add_metric([reason], count)
        yield sup
        raised = CounterMetricFamily("sendwell_alerts", "Alerts raised", labels=["kind", "severity"])
        open_ = GaugeMetricFamily("sendwell_alerts_open", "Alerts not yet resolved", labels=["kind", "severity"])
        totals: dict[tuple[str, str], int] = {}
        for kind, severity, is_open, count in alerts:
            totals[(kind, severity)] = totals.get((kind, severity), 0) + count
            if is_open:
                open_.add_metric([kind, severity], count)
        for (kind, severity), count in sorted(totals.items()):
            raised.add_metric([kind, severity], count)
        yield raised
        yield open_
        hooks = CounterMetricFamily("sendwell_webhook_deliveries", "Webhook POST attempts, by event type and outcome",
                                    labels=["event_type", "status"])
        for event_type, status, count in deliveries:
            hooks.add_metric([event_type, status], count)
        yield hooks
        backlog = GaugeMetricFamily("sendwell_webhooks_pending", "Webhook events and POSTs waiting for the dispatcher")
        backlog.add_metric([], webhooks_pending)
        yield backlog
        depth = GaugeMetricFamily("sendwell_queue_depth", "Sends waiting for a worker (queued or deferred)")
        depth.add_metric([], states.get(SendState.QUEUED.value, 0) + states.get(SendState.DEFERRED.value, 0))
        yield depth
        jobs = self._pending_jobs()
        if jobs is not None:
            pending = GaugeMetricFamily("sendwell_queue_jobs", "Jobs waiting in the queue (Huey)")
            pending.add_metric([], jobs)
            yield pending

    def _pending_jobs(self) -> int | None:
        try:
            if self._queue is None:
                from sendwell.worker.queue import Queue

                self._queue = Queue(self.runtime)
            return int(self._queue.pending())
        except Exception:  # the queue being down must not take the database metrics with it
            return None


class _Local(Collector):
    """This process's own histogram, when metrics are not shared across processes."""

    def collect(self) -> Iterable[Metric]:
        return SMTP_SECONDS.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def exposition(runtime: Any, collector: DatabaseCollector | None = None) -> bytes:
    """The text exposition: database families plus SMTP latency (from every process in multiprocess mode)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector or DatabaseCollector(runtime))
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Local())
    return generate_latest(registry)
