"""The job queue: Huey on SQLite in the data folder (embedded) or on Redis (scale-out).

Jobs carry ids only and are idempotent: the database decides what is still to send, so a
re-delivered job finds its sends already claimed or sent and does nothing.
"""

from __future__ import annotations

import threading
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey

from sendwell.runtime import Runtime


class Queue:
    """The queue port: enqueue batches; run a consumer in this process or as a worker."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        if settings.queue_url.startswith(("redis://", "rediss://")):
            self.huey: Huey = RedisHuey("sendwell", url=settings.queue_url, results=False)
        elif settings.queue_url in ("", "embedded"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey(
                "sendwell", filename=str((settings.data_dir / "queue.db").resolve()), results=False
            )
        else:
            raise ValueError(
                f"unsupported SENDWELL_QUEUE_URL {settings.queue_url!r}: leave empty for embedded, or redis://host:port/db"
            )
        self._local = threading.local()
        self._deliver = self.huey.task(retries=3, retry_delay=10, name="deliver_batch")(self._deliver_batch)
        self._recover = self.huey.periodic_task(_every_minute(), name="recover_leases")(self._recover_leases)

    # ---- jobs -----------------------------------------------------------
    def _deliverer(self) -> Any:
        # One transport (one SMTP session) per consumer thread.
        deliverer = getattr(self._local, "deliverer", None)
        if deliverer is None:
            deliverer = self._local.deliverer = self.runtime.make_deliverer()
        return deliverer

    def _deliver_batch(self, campaign_id: int, send_ids: list[int]) -> None:
        from sendwell.db.session import transaction
        from sendwell.delivery.service import claim_sends, finish_if_done

        with transaction(self.runtime.factory) as session:
            claimed = claim_sends(session, campaign_id=campaign_id, send_ids=send_ids, limit=len(send_ids))
        if claimed:
            deliverer = self._deliverer()
            deliverer.deliver(campaign_id, claimed)
            deliverer.check_rates(campaign_id)
        with transaction(self.runtime.factory) as session:
            finish_if_done(session, campaign_id=campaign_id)

    def _recover_leases(self) -> None:
        """Every minute: return dead workers' sends to the queue, re-enqueue due retries, re-judge
        rates, and fold new events into the dashboard counters."""
        from sendwell.db.session import transaction
        from sendwell.delivery.service import due_batches, recover_expired_leases

        from sendwell.insight.alerts import Thresholds, check_recent
        from sendwell.insight.rollup import roll_up

        with transaction(self.runtime.factory) as session:
            recover_expired_leases(session)
            batches = due_batches(session)
        with transaction(self.runtime.factory) as session:
            check_recent(session, thresholds=Thresholds.from_settings(self.runtime.settings))
        with transaction(self.runtime.factory) as session:
            roll_up(session)
        for campaign_id, send_ids in batches:
            self._deliver(campaign_id, send_ids)

    # ---- port -----------------------------------------------------------
    def enqueue_batches(self, campaign_id: int, batches: list[list[int]]) -> int:
        for batch in batches:
            self._deliver(campaign_id, batch)
        return len(batches)

    def pending(self) -> int:
        return self.huey.pending_count()

    def consumer(self, workers: int = 2) -> Any:
        # Idle polling backs off to at most 1 s, so a queued campaign starts promptly.
        return self.huey.create_consumer(workers=workers, worker_type="thread", periodic=True, max_delay=1.0)


def _every_minute() -> Any:
    from huey import crontab

    return crontab(minute="*")
