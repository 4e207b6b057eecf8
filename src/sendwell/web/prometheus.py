"""GET /metrics for Prometheus: database-derived families collected at scrape time, plus SMTP latency.

Several processes (web, `sendwell worker`s on other machines) share one database, so what
can be counted there is counted there when Prometheus scrapes: any web process answers with
the same numbers, and nothing is lost when a worker restarts. Only SMTP latency is measured
in the process that sends (delivery/instruments.py); with PROMETHEUS_MULTIPROC_DIR set (the
same directory for every process on a machine) prometheus-client keeps it in shared files
that /metrics adds up. The route wants an API token with the `metrics:read` scope.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from sendwell.access.service import allows, authenticate
from sendwell.db.models import Alert, Event, OutboxMessage, Send, SendState, Suppression, WebhookDelivery
from sendwell.db.session import transaction
from sendwell.delivery.instruments import made_here, multiprocess_dir, smtp_seconds
from sendwell.delivery.limiter import StoreUnavailable
from sendwell.runtime import Runtime
from sendwell.worker.queue import Queue


class DatabaseCollector(Collector):
    """Families counted in the database at scrape time: the same answer from every process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: Queue | None = None

    def collect(self) -> Iterable[Metric]:
        with transaction(self.runtime.factory) as session:
            states = dict(session.execute(select(Send.state, func.count()).group_by(Send.state)).all())
            skips = session.execute(
                select(Send.skip_reason, func.count()).where(Send.state == SendState.SKIPPED.value)
                .group_by(Send.skip_reason)).all()
            waiting = session.execute(
                select(Send.skip_reason, func.count()).where(Send.state == SendState.DEFERRED.value)
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
        deferred = GaugeMetricFamily("sendwell_sends_deferred", "Deferred sends, by reason (throttled: their provider "
                                     "group was at its limit; retry: an SMTP deferral)", labels=["reason"])
        for reason, count in waiting:
            deferred.add_metric([reason or "retry"], count)
        yield deferred
        yield from self._provider_pace()
        jobs = self._pending_jobs()
        if jobs is not None:
            pending = GaugeMetricFamily("sendwell_queue_jobs", "Jobs waiting in the queue (Huey)")
            pending.add_metric([], jobs)
            yield pending

    def _provider_pace(self) -> Iterable[Metric]:
        """Each provider group's current pace, from the limit store every worker shares (delivery/throttle.py)."""
        try:
            paces = self.runtime.throttle.paces()
        except StoreUnavailable:  # the limit store being down must not take the database metrics with it
            return
        ratio = GaugeMetricFamily("sendwell_provider_pace_ratio", "Share of a provider group's per-second limit "
                                  "allowed now (halved on a slow-down deferral, climbing back)", labels=["group"])
        rate = GaugeMetricFamily("sendwell_provider_rate", "Mails per second a provider group may get now",
                                 labels=["group"])
        slowed = CounterMetricFamily("sendwell_provider_slowdowns", "Halvings of a provider group's pace",
                                     labels=["group"])
        for p in paces:
            ratio.add_metric([p["group"]], p["factor"])
            if p["per_second"] is not None:
                rate.add_metric([p["group"]], p["per_second"])
            slowed.add_metric([p["group"]], p["slowdowns"])
        yield ratio
        yield rate
        yield slowed

    def _pending_jobs(self) -> int | None:
        try:
            if self._queue is None:
                self._queue = Queue(self.runtime)
            return int(self._queue.pending())
        except Exception:  # the queue being down must not take the database metrics with it
            return None


class _Local(Collector):
    """This process's own histogram and throttle counters, when metrics are not shared across processes."""

    def collect(self) -> Iterable[Metric]:
        smtp_seconds()
        for metric in made_here():
            yield from metric.collect()


def exposition(runtime: Runtime | None, collector: Collector | None = None) -> bytes:
    """The text exposition: database families plus SMTP latency (from every process in multiprocess mode)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector or DatabaseCollector(runtime))
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Local())
    return generate_latest(registry)


def metrics_router(runtime: Runtime) -> APIRouter:
    """The /metrics route, with one database collector kept across scrapes (it holds the queue client)."""
    router = APIRouter()
    collector = DatabaseCollector(runtime)

    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        # Counts of mail, opt-outs and alerts are business data: Prometheus sends a bearer token
        # (`authorization: {credentials: …}` in its scrape config) like any API client.
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        token = None
        if scheme.lower() == "bearer" and secret:
            with transaction(runtime.factory) as session:
                token = authenticate(session, secret=secret.strip())
        if token is None:
            return PlainTextResponse("a bearer token with the metrics:read scope is required\n", status_code=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="sendwell"'})
        if not allows(token, "metrics:read"):
            return PlainTextResponse("this token lacks the metrics:read scope\n", status_code=403)
        return Response(exposition(runtime, collector), media_type=CONTENT_TYPE_LATEST)

    return router
