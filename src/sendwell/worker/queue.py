"""The job queue: Huey on SQLite in the data folder (embedded) or on Redis (scale-out).

Jobs carry ids only and are idempotent: the database decides what is still to send, so a
re-delivered job finds its sends already claimed or sent and does nothing. Lease recovery,
the re-enqueueing of due retries, the start of scheduled campaigns, the reading of settings
saved in the admin and the hygiene scheduler run in a thread next to the consumer, every
SENDWELL_RECOVERY_INTERVAL seconds (Huey's periodic tasks fire at most once a minute, and
would fire in every worker; the hygiene lease lets only one process run it).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import redis
from huey import Huey, RedisHuey, SqliteHuey

from sendwell.campaigns.service import get_campaign
from sendwell.db.models import CampaignStatus
from sendwell.db.processes import Heartbeat
from sendwell.db.session import transaction
from sendwell.delivery.claims import (
    claim_sends,
    due_batches,
    new_claim_token,
    recover_claim,
    recover_dead_owners,
    recover_expired_leases,
)
from sendwell.delivery.progress import finish_if_done
from sendwell.flows import run_hygiene_if_due, start_due_campaigns
from sendwell.insight.alerts import Thresholds, check_recent, check_sending
from sendwell.insight.rollup import roll_up
from sendwell.mail.transport import TransportUnavailable
from sendwell.runtime import Runtime
from sendwell.sequences.service import advance_due
from sendwell.signup.service import expire_signups

log = logging.getLogger("sendwell.worker")


INSIGHT_INTERVAL = 60.0  # seconds between alert re-checks and counter roll-ups
# Seconds between asks "is a hygiene pass due?" (the first one after start-up too): each ask
# is a write transaction, and on SQLite every writer waits its turn.
HYGIENE_CHECK_INTERVAL = 60.0


class QueueUnavailable(Exception):
    """The queue (Redis) cannot be reached; the message names it."""


class Queue:
    """The queue port: enqueue batches; run a consumer in this process or as a worker."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        name = settings.queue_name
        if settings.queue_url.startswith(("redis://", "rediss://")):
            self.huey: Huey = RedisHuey(name, url=settings.queue_url, results=False)
        elif settings.queue_url in ("", "embedded"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey(name, filename=str((settings.data_dir / "queue.db").resolve()), results=False)
        else:
            raise ValueError(
                f"unsupported SENDWELL_QUEUE_URL {settings.queue_url!r}: leave empty for embedded, or redis://host:port/db"
            )
        self._local = threading.local()
        self._stop_flag: Any = None  # the consumer's stop flag, once a consumer runs here
        # This process's registration while a consumer runs here: claims carry its id (db/processes.py).
        self.process: Heartbeat | None = None
        self._orphans: list[str] = []  # claim tokens a failed batch could not hand back yet
        self._deliver = self.huey.task(retries=3, retry_delay=10, name="deliver_batch")(self._deliver_batch)

    # ---- jobs -----------------------------------------------------------
    def _stopping(self) -> bool:
        return self._stop_flag is not None and self._stop_flag.is_set()

    def _deliverer(self) -> Any:
        # One deliverer, hence one SMTP session, per consumer thread: the connection pool.
        deliverer = getattr(self._local, "deliverer", None)
        if deliverer is None:
            deliverer = self._local.deliverer = self.runtime.make_deliverer(should_stop=self._stopping)
        return deliverer

    def _deliver_batch(self, campaign_id: int, send_ids: list[int]) -> None:
        settings = self.runtime.settings
        if self._stopping():
            self._deliver(campaign_id, send_ids)  # not started: leave it for the next worker
            return
        deliverer = self._deliverer()
        token = new_claim_token(self.process.id if self.process is not None else None)  # names this process
        with transaction(self.runtime.factory) as session:
            claimed = claim_sends(session, campaign_id=campaign_id, send_ids=send_ids, limit=len(send_ids),
                                  lease=deliverer.lease, token=token)
        released: list[int] = []
        if claimed:
            try:
                released = deliverer.deliver(campaign_id, claimed, token=token)["released"]
                deliverer.check_rates(campaign_id)  # the circuit breaker (insight/alerts.py)
            except TransportUnavailable as exc:
                # deliver() deferred the batch with a retry time; the recovery scan re-enqueues it.
                log.warning("campaign %s: %s; %d mails deferred", campaign_id, exc, len(claimed))
            except Exception:
                # E.g. the database restarted mid-batch. This process lives on, so neither the
                # heartbeat nor (for a lease) the lease would free the batch: hand it back now,
                # or after the next heartbeat that reaches the database; Huey retries the job.
                self._hand_back(token)
                raise
        with transaction(self.runtime.factory) as session:
            finish_if_done(session, campaign_id=campaign_id)
            running = get_campaign(session, campaign_id=campaign_id).status == CampaignStatus.SENDING.value
        if released and running:
            # A graceful stop handed these back unsent: queue them for whoever runs next.
            for i in range(0, len(released), settings.batch_size):
                self._deliver(campaign_id, released[i : i + settings.batch_size])

    def _hand_back(self, token: str) -> None:
        try:
            with transaction(self.runtime.factory) as session:
                report = recover_claim(session, token=token)
        except Exception:
            self._orphans.append(token)
            return
        self._enqueue_recovered(report.requeued)

    def _hand_back_orphans(self) -> None:
        """After a heartbeat reached the database: hand back the batches that failed while it was away."""
        while self._orphans:
            token = self._orphans[0]
            with transaction(self.runtime.factory) as session:
                report = recover_claim(session, token=token)
            self._orphans.pop(0)
            self._enqueue_recovered(report.requeued)

    def _enqueue_recovered(self, requeued: dict[int, list[int]]) -> None:
        size = self.runtime.settings.batch_size
        for campaign_id, ids in requeued.items():
            for i in range(0, len(ids), size):
                self._deliver(campaign_id, ids[i : i + size])

    def recover(self) -> dict[str, Any]:
        """Return dead processes' and expired claims to the queue and re-enqueue due retries; one pass."""
        settings = self.runtime.settings
        queue_dry = self.pending() == 0  # only then can a queued send's job have been lost (due_batches)
        with transaction(self.runtime.factory) as session:
            report = recover_dead_owners(session, timeout=timedelta(seconds=settings.heartbeat_timeout))
            report.add(recover_expired_leases(session))
            # A lost job shows within seconds once the queue is dry: the heartbeat timeout.
            batches = due_batches(session, batch_size=settings.batch_size,
                                  lease=timedelta(seconds=settings.lease_seconds), lost_queued=queue_dry,
                                  lost_after=timedelta(seconds=settings.heartbeat_timeout))
        self._enqueue_recovered(report.requeued)
        for campaign_id, ids in batches:
            self._deliver(campaign_id, ids)
        if report.count:
            log.warning("recovered %d sends from dead processes and expired leases (%d possibly duplicated)",
                        report.count, len(report.possibly_duplicated))
        return {"recovered": report.count, "possibly_duplicated": report.possibly_duplicated,
                "due_batches": len(batches)}

    def insight(self) -> None:
        """Re-judge recently sent campaigns (opt-outs keep arriving) and fold new events into
        the dashboard counters (insight/rollup.py)."""
        with transaction(self.runtime.factory) as session:
            check_recent(session, thresholds=Thresholds.from_settings(self.runtime.settings))
        with transaction(self.runtime.factory) as session:
            roll_up(session)

    def start_scheduled(self) -> list[int]:
        """Start the scheduled campaigns whose time has come and queue their mails (flows.py)."""
        started = start_due_campaigns(self.runtime.factory, settings=self.runtime.settings)
        for campaign_id, batches in started:
            self.enqueue_batches(campaign_id, batches)
        return [campaign_id for campaign_id, _ in started]

    def hygiene(self) -> dict[str, Any] | None:
        """Run the hygiene pass if it is due and this process holds the scheduler lease
        (hygiene/scheduler.py: one process per installation, whatever the shape); queue its mails."""
        result = run_hygiene_if_due(self.runtime.factory, settings=self.runtime.settings)
        if result is None:
            return None
        for campaign_id, batches in result.batches:
            self.enqueue_batches(campaign_id, batches)
        log.info("hygiene pass %s done", result.run_id)
        return result.report

    def expire_signups(self) -> int:
        """Delete the signups nobody confirmed in time, with their addresses (signup/service.py)."""
        with transaction(self.runtime.factory) as session:
            return expire_signups(session)

    def reload_settings(self) -> list[str]:
        """Swap in the settings saved in the admin (the database; then this machine's sendwell.env
        for the others), if they changed (Runtime.refresh_settings)."""
        applied = self.runtime.refresh_settings()
        for name in applied:
            log.info("setting %s changed (saved in the admin or in sendwell.env): applied", name)
        return applied

    def judge_sending(self) -> None:
        """The breaker between batches: judge sending campaigns whose opt-outs, complaints or
        bounces changed, so a campaign with no batch left to claim is still paused promptly."""
        with transaction(self.runtime.factory) as session:
            check_sending(session, thresholds=Thresholds.from_settings(self.runtime.settings),
                          seen=self.__dict__.setdefault("_breaker_seen", {}))

    def _recovery_loop(self, stop: threading.Event) -> None:
        interval = self.runtime.settings.recovery_interval
        next_insight = 0.0
        next_hygiene = time.monotonic() + HYGIENE_CHECK_INTERVAL
        next_scan = 0.0
        while not stop.is_set():
            # A short tick for the breaker; the scans below keep their own interval.
            tick = max(min(self.runtime.settings.alert_check_interval, interval), 0.5)
            try:
                self.judge_sending()
            except Exception:
                log.exception("judging sending campaigns failed; retrying in %ss", tick)
            if time.monotonic() < next_scan:
                stop.wait(min(tick, next_scan - time.monotonic()))
                continue
            next_scan = time.monotonic() + interval
            try:
                self.recover()
            except Exception:  # a database hiccup must not kill the scanner
                log.exception("lease recovery failed; retrying in %ss", interval)
            try:
                self.reload_settings()
            except Exception:
                log.exception("reading sendwell.env failed; retrying in %ss", interval)
            try:
                self.start_scheduled()
            except Exception:
                log.exception("starting scheduled campaigns failed; retrying in %ss", interval)
            try:  # lifecycle sequences: enrol, exit and run due steps; their mails join the queue
                for campaign_id, batch in advance_due(self.runtime.factory, settings=self.runtime.settings):
                    self._deliver(campaign_id, batch)
            except Exception:
                log.exception("advancing sequences failed; retrying in %ss", interval)
            if time.monotonic() >= next_hygiene:
                next_hygiene = time.monotonic() + HYGIENE_CHECK_INTERVAL
                try:
                    self.hygiene()
                except Exception:
                    log.exception("hygiene pass failed; the next check tries again")
                try:
                    self.expire_signups()
                except Exception:
                    log.exception("deleting expired signups failed; the next check tries again")
            if time.monotonic() >= next_insight:
                next_insight = time.monotonic() + INSIGHT_INTERVAL
                try:
                    self.insight()
                except Exception:
                    log.exception("insight roll-up failed; retrying in %ss", INSIGHT_INTERVAL)
            stop.wait(min(tick, interval))

    # ---- port -----------------------------------------------------------
    def enqueue_batches(self, campaign_id: int, batches: list[list[int]]) -> int:
        try:
            for batch in batches:
                self._deliver(campaign_id, batch)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return len(batches)

    def check(self) -> None:
        """Raise QueueUnavailable unless the queue answers (Redis: a PING; the embedded queue always does)."""
        if isinstance(self.huey, RedisHuey):
            try:
                self.huey.storage.conn.ping()
            except Exception as exc:
                raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> Exception:
        if not isinstance(exc, redis.RedisError):
            return exc
        where = self.runtime.settings.queue_url.rsplit("@", 1)[-1]  # never print a password
        return QueueUnavailable(f"the queue (Redis at {where}) is unreachable: {' '.join(str(exc).split())[:200]}")

    def pending(self) -> int:
        return self.huey.pending_count()

    def consumer(self, workers: int | None = None, role: str = "worker") -> Any:
        """A Huey consumer whose SIGTERM is graceful, plus the recovery scanner thread.

        Huey treats SIGTERM as "stop now" by default; a deployment's stop (systemd,
        Kubernetes, docker stop) sends SIGTERM, so here it finishes the mail in flight
        on each session and hands the rest of the batch back: zero duplicates.
        """
        workers = workers or self.runtime.settings.smtp_concurrency
        consumer = self.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                             graceful_signal="TERM", initial_delay=0.05, backoff=1.3,
                                             max_delay=0.5)
        self._stop_flag = consumer.stop_flag
        stop = threading.Event()
        scanner = threading.Thread(target=self._recovery_loop, args=(stop,), name="lease-recovery", daemon=True)
        original_stop = consumer.stop

        def stop_all(graceful: bool = False) -> None:
            stop.set()
            original_stop(graceful=graceful)
            if self.process is not None:  # a clean exit: whatever is still claimed is recovered at once
                self.process.stop()

        original_start = consumer.start

        def start_all() -> None:
            # Registered before the first job: every claim of this consumer names its process.
            settings = self.runtime.settings
            self.process = Heartbeat.start(self.runtime.engine, role=role, interval=settings.heartbeat_interval)
            self.process.after_beat.append(self._hand_back_orphans)
            original_start()
            scanner.start()

        consumer.stop = stop_all
        consumer.start = start_all
        return consumer
