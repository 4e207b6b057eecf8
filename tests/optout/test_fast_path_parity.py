"""The opt-out's driver-level statements write the same rows as the ORM paths of the same tables.

Two levels: each fast statement against its context's ORM write (every column, timestamps
included, as stored), and a one-click POST (the fast path on SQLite) against the page's
unsubscribe button (the routed view) for the three tables an opt-out writes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text

from sendwell.db.models import Campaign, Event, SuppressionReason
from sendwell.db.session import transaction
from sendwell.optout.audit import record_unsubscribed
from sendwell.outbox.store import enqueue, enqueue_fast
from sendwell.suppression.fast import suppress_fast
from sendwell.suppression.service import suppress
from tests.helpers import make_contact
from tests.optout.conftest import u

NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone.utc)
IDENTITY = {"id", "contact_id", "email_hash", "dedupe_key"}


def _rows(session: Any, table: str, contact_id: int, drop: set[str] = IDENTITY) -> list[dict[str, Any]]:
    """The contact's rows as stored (driver values, not ORM objects), without identifying columns."""
    result = session.execute(text(f"SELECT * FROM {table} WHERE contact_id = :cid ORDER BY id"), {"cid": contact_id})
    return [{k: v for k, v in row.items() if k not in drop} for row in result.mappings()]


def test_each_fast_statement_writes_the_row_its_context_writes(session) -> None:
    fast, orm = make_contact(session), make_contact(session)
    campaign = Campaign(name="Spring", subject="s", html="h")
    session.add(campaign)
    session.flush()

    assert suppress_fast(session, email_hash=fast.email_hash, reason=SuppressionReason.UNSUBSCRIBE.value,
                         contact_id=fast.id, campaign_id=campaign.id, now=NOW)
    assert suppress(session, email_hash=orm.email_hash, reason=SuppressionReason.UNSUBSCRIBE.value,
                    contact_id=orm.id, campaign_id=campaign.id)
    # A repeat is refused by both, keeping the first row.
    assert not suppress_fast(session, email_hash=fast.email_hash, reason=SuppressionReason.COMPLAINT.value,
                             contact_id=fast.id, campaign_id=None, now=NOW)

    data = {"topics": [3, 1], "scanner_suspected": False, "note": "naïve ✓"}
    record_unsubscribed(session, contact_id=fast.id, campaign_id=campaign.id, method="one_click", ip="192.0.2.1",
                        user_agent="Mail/1.0", data=data, now=NOW)
    session.add(Event(kind="unsubscribed", contact_id=orm.id, campaign_id=campaign.id, method="one_click",
                      ip="192.0.2.1", user_agent="Mail/1.0", data=data, occurred_at=NOW))

    payload = {"event": "contact.unsubscribed", "data": {"campaign_id": campaign.id, "method": "one_click"}}
    enqueue_fast(session, kind="thank_you", contact_id=fast.id, payload={"campaign_id": None}, now=NOW,
                 dedupe_key=f"thank_you:{fast.id}")
    enqueue_fast(session, kind="event", contact_id=fast.id, payload=payload, now=NOW)
    enqueue(session, kind="thank_you", contact_id=orm.id, payload={"campaign_id": None}, now=NOW,
            dedupe_key=f"thank_you:{orm.id}")
    enqueue(session, kind="event", contact_id=orm.id, payload=payload, now=NOW)
    session.flush()

    # The ORM fills created_at itself (no `now` parameter): compared in the end-to-end test.
    assert _rows(session, "suppressions", fast.id, IDENTITY | {"created_at"}) == \
        _rows(session, "suppressions", orm.id, IDENTITY | {"created_at"})
    assert _rows(session, "events", fast.id) == _rows(session, "events", orm.id)
    assert _rows(session, "outbox", fast.id) == _rows(session, "outbox", orm.id)
    assert len(_rows(session, "outbox", fast.id)) == 2
    # The dedupe keys differ only by the contact they name.
    keys = session.execute(text("SELECT dedupe_key FROM outbox ORDER BY id")).scalars().all()
    assert keys == [f"thank_you:{fast.id}", None, f"thank_you:{orm.id}", None]


def _opt_out_rows(runtime, contact_id: int) -> dict[str, list[dict[str, Any]]]:
    # What differs by method and by moment: ids, the contact, the times, the method itself and
    # the link-scanner assessment that only a mail client's one-click gets.
    drop = IDENTITY | {"created_at", "occurred_at", "next_attempt_at", "method"}
    with transaction(runtime.factory) as s:
        rows = {table: _rows(s, table, contact_id, drop) for table in ("suppressions", "events", "outbox")}
    for event in rows["events"]:
        event["data"] = _without(event["data"], "scanner_suspected", "scanner_signals", "review")
    for message in rows["outbox"]:
        payload = _json(message["payload"])
        payload.pop("contact_id", None)
        payload.pop("email", None)
        payload.pop("occurred_at", None)
        if "data" in payload:
            payload["data"] = _without(payload["data"], "method", "scanner_suspected")
        message["payload"] = payload
    return rows


def _json(value: Any) -> dict[str, Any]:
    # SQLite returns JSON columns as text, psycopg as parsed values.
    return json.loads(value) if isinstance(value, str) else dict(value)


def _without(value: Any, *keys: str) -> dict[str, Any]:
    return {k: v for k, v in _json(value).items() if k not in keys}


def test_one_click_and_the_page_button_write_the_same_rows(runtime, web) -> None:
    with transaction(runtime.factory) as s:
        by_client, by_page = make_contact(s), make_contact(s)
        campaign = Campaign(name="Spring", subject="s", html="h")
        s.add(campaign)
        s.flush()
        campaign_id = campaign.id

    # A mail client's RFC 8058 POST (on SQLite the fast path outside routing) and a person's
    # click on the page's own button (the routed view).
    one_click = web.post(u(runtime, by_client.id, campaign_id=campaign_id), data={"List-Unsubscribe": "One-Click"})
    page = web.post(u(runtime, by_page.id, campaign_id=campaign_id), data={"source": "page"})
    assert (one_click.status_code, page.status_code) == (200, 200)

    client_rows, page_rows = _opt_out_rows(runtime, by_client.id), _opt_out_rows(runtime, by_page.id)
    assert [len(client_rows[t]) for t in ("suppressions", "events", "outbox")] == [1, 1, 2]
    assert client_rows == page_rows
    with transaction(runtime.factory) as s:
        methods = s.execute(text("SELECT contact_id, method FROM events ORDER BY id")).all()
    assert [tuple(m) for m in methods] == [(by_client.id, "one_click"), (by_page.id, "page")]
