"""The worker's periodic scan deletes the signups nobody confirmed in time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from sendwell.db.models import Signup
from sendwell.db.session import transaction
from sendwell.signup import service
from sendwell.worker.queue import Queue


def test_the_scan_deletes_expired_signups(runtime) -> None:
    queue = Queue(runtime)
    try:
        past = datetime.now(timezone.utc) - timedelta(days=8)
        with transaction(runtime.factory) as s:
            form = service.create_form(s, name="Website")
            for n, when in enumerate((past, datetime.now(timezone.utc))):
                service.submit_signup(s, form_id=form.id, values={"email": f"b{n}@importer.example"}, topics=None,
                                      pepper=runtime.settings.pepper, expire_days=7, now=when)
        assert queue.expire_signups() == 1
        with transaction(runtime.factory) as s:
            assert s.scalar(select(func.count()).select_from(Signup)) == 1
    finally:
        queue.huey.flush()
