"""The date trigger: a contact's date (a custom field, consent expiry, creation) plus N days enrols them on that day."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sendwell.db.models import Consent
from sendwell.db.session import transaction
from sendwell.optout.service import unsubscribe_contact
from sendwell.sequences.definition import DefinitionError, parse_definition
from sendwell.sequences.report import enrollments
from sendwell.sequences.service import advance, create_sequence, dry_run
from tests.helpers import make_contact, run_once
from tests.sequences.test_sequences import dkim_key, runtime, smtp_runtime

__all__ = ["dkim_key", "runtime", "smtp_runtime"]  # fixtures shared with the sequence tests

WAIT = [{"id": "w", "kind": "wait", "days": 1}]


def _sequence(runtime, trigger: dict, steps=WAIT) -> int:
    with transaction(runtime.factory) as s:
        return create_sequence(s, settings=runtime.settings,
                               data={"name": f"Date {trigger['field']}", "trigger": trigger, "steps": steps}).id


def _advance(runtime, now: datetime) -> dict:
    with transaction(runtime.factory) as s:
        return advance(s, settings=runtime.settings, now=now)


def _entered(runtime, sequence_id: int) -> list[int]:
    with transaction(runtime.factory) as s:
        return [e.contact_id for e in enrollments(s, sequence_id=sequence_id)]


def test_custom_date_plus_days_enrols_on_its_day_once(runtime) -> None:
    today = datetime.now(timezone.utc)
    day = lambda n: (today + timedelta(days=n)).date().isoformat()  # noqa: E731
    sequence_id = _sequence(runtime, {"kind": "date", "field": "custom.last_order", "days": 90})
    with transaction(runtime.factory) as s:
        due_in_5 = make_contact(s, custom={"last_order": day(-85)}).id
        long_past = make_contact(s, custom={"last_order": day(-95)}).id  # came due before the sequence existed
        with_time = make_contact(s, custom={"last_order": day(-84) + "T10:30:00"}).id
        make_contact(s, custom={"last_order": "n/a"})
        make_contact(s)
    _advance(runtime, today)
    assert _entered(runtime, sequence_id) == []
    with transaction(runtime.factory) as s:
        assert dry_run(s, sequence_id=sequence_id, now=today + timedelta(days=5, hours=1))["would_enter"] == 1
    _advance(runtime, today + timedelta(days=5, hours=1))
    assert _entered(runtime, sequence_id) == [due_in_5]
    _advance(runtime, today + timedelta(days=6, hours=1))
    _advance(runtime, today + timedelta(days=7, hours=1))
    assert sorted(_entered(runtime, sequence_id)) == sorted([due_in_5, with_time])
    assert long_past not in _entered(runtime, sequence_id)


def test_consent_about_to_lapse_enrols_before_it_lapses_and_no_mail_reaches_an_unsubscribed_contact(
        smtp_runtime, smtp_server) -> None:
    now = datetime.now(timezone.utc)
    steps = [{"id": "ask", "kind": "mail", "subject": "May we keep writing to you?",
              "html": "<p>Dear {{ contact.first_name }}, your permission to hear from us ends soon.</p>"}]
    sequence_id = _sequence(smtp_runtime, {"kind": "date", "field": "consent_expires_at", "days": -30}, steps)
    with transaction(smtp_runtime.factory) as s:
        # Canada: CASL's implied consent lapses (two years after a purchase, six months after an inquiry).
        kept = make_contact(s, consent="implied_purchase", country="CA", language="en")
        gone = make_contact(s, consent="implied_purchase", country="CA", language="en")
        for consent in s.scalars(select(Consent).where(Consent.contact_id.in_([kept.id, gone.id]))):
            consent.expires_at = now + timedelta(days=40)
        unsubscribe_contact(s, contact_id=gone.id, method="one_click")
    assert _advance(smtp_runtime, now + timedelta(days=5))["entered"] == 0  # 35 days before: not yet
    report = _advance(smtp_runtime, now + timedelta(days=11))  # 29 days before the consent lapses
    for campaign_id in {c for c, _ in report["batches"]}:
        run_once(smtp_runtime, campaign_id)
    assert kept.id in _entered(smtp_runtime, sequence_id)
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [kept.email]


def test_created_at_trigger_counts_from_the_creation_time(runtime) -> None:
    now = datetime.now(timezone.utc)
    sequence_id = _sequence(runtime, {"kind": "date", "field": "created_at", "days": 14})
    with transaction(runtime.factory) as s:
        contact = make_contact(s).id
    _advance(runtime, now + timedelta(days=13))
    assert _entered(runtime, sequence_id) == []
    _advance(runtime, now + timedelta(days=14, minutes=5))
    assert _entered(runtime, sequence_id) == [contact]


@pytest.mark.parametrize(("trigger", "field"), [
    ({"kind": "date", "field": "birthday", "days": 1}, "trigger.field"),
    ({"kind": "date", "field": "custom.last_order", "days": "90"}, "trigger.days"),
    ({"kind": "date", "field": "custom.last_order", "days": 99999}, "trigger.days"),
    ({"kind": "date", "field": "created_at", "hours": 3}, "trigger"),
])
def test_a_bad_date_trigger_names_its_field(trigger: dict, field: str) -> None:
    with pytest.raises(DefinitionError, match=field):
        parse_definition({"name": "x", "trigger": trigger, "steps": WAIT})
