"""The hygiene page: the last passes' reports (dry runs marked) and the state of the sunset flow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sendwell.db.models import Reengagement
from sendwell.db.session import transaction
from sendwell.flows import run_hygiene
from tests.helpers import make_contact


def test_hygiene_page_shows_passes_and_the_sunset_flow(as_role, runtime) -> None:
    client = as_role("viewer")
    empty = client.get("/admin/hygiene")
    assert empty.status_code == 200 and "No pass has run yet" in empty.text
    now = datetime.now(timezone.utc)
    with transaction(runtime.factory) as s:
        old = make_contact(s, email="info@importer.example")  # a role address: flagged
        fresh = make_contact(s)
        s.flush()
        s.add_all([Reengagement(contact_id=old.id, inactive_since=now - timedelta(days=200), entered_at=now),
                   Reengagement(contact_id=fresh.id, inactive_since=now - timedelta(days=300),
                                entered_at=now - timedelta(days=40), asked_at=now - timedelta(days=39),
                                resolved_at=now - timedelta(days=5), outcome="kept")])
    with transaction(runtime.factory) as s:
        run_hygiene(s, settings=runtime.settings, now=now, trigger="cli", dry_run=True)
    page = client.get("/admin/hygiene").text
    assert "dry run: nothing was changed" in page and "sunset: entered re-engagement" in page
    assert 'data-reengagement="waiting_to_be_asked">1<' in page and 'data-reengagement="kept">1<' in page
    with transaction(runtime.factory) as s:
        run_hygiene(s, settings=runtime.settings, now=now, trigger="scheduler")
    page = client.get("/admin/hygiene").text
    assert page.count("<details") == 2 and 'data-flag="role_address">1<' in page
    chinese = as_role("marketer", language="zh_Hans").get("/admin/hygiene").text
    assert "名单清理" in chinese and "日落：进入重新激活" in chinese


def test_hygiene_page_needs_a_sign_in(client) -> None:
    answer = client.get("/admin/hygiene")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/admin/login")
