"""Each hygiene job on its own: addresses, soft bounces, deferrals, dry runs, engagement signals, keep-me."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from sendwell.contacts.importer import import_contacts
from sendwell.db.models import (
    AddressFlag,
    Campaign,
    Contact,
    Event,
    HygieneRun,
    Reengagement,
    Send,
    Suppression,
)
from sendwell.db.session import transaction
from sendwell.feedback.inbound import process_inbound
from sendwell.flows import run_hygiene
from sendwell.hygiene.service import keep_subscribed
from sendwell.optout.service import resubscribe_contact, unsubscribe_contact, update_preferences
from sendwell.optout.tokens import SALT_KEEP, TokenData, make_token
from sendwell.segments.expression import SegmentError, compile_segment
from sendwell.suppression.service import suppress
from sendwell.web.app import create_app
from tests.helpers import make_contact
from tests.hygiene.conftest import hygiene_pass, old_contact

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DAY = timedelta(days=1)


def _count(s, model, *where) -> int:
    return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


# ---------------------------------------------------------------- addresses
def test_address_cleaning_flags_and_suppresses_only_the_undeliverable(runtime) -> None:
    with transaction(runtime.factory) as s:
        info = make_contact(s, email="info@lamps.example")
        typo = make_contact(s, email="anna@gmial.com")
        throwaway = make_contact(s, email="x7@mailinator.com")
        broken = make_contact(s, email="bad@@lamps.example")
        fine = make_contact(s, email="anna@lamps.example")
    with transaction(runtime.factory) as s:
        report = run_hygiene(s, settings=runtime.settings, now=NOW).report["jobs"]["addresses"]
    assert report["checked"] == 5 and report["invalid_suppressed"] == 1
    assert report["flagged"] == {"invalid": 1, "role_address": 1, "disposable": 1, "typo_suspected": 1, "no_mx": 0}
    with transaction(runtime.factory) as s:
        flags = {(f.contact_id, f.flag) for f in s.scalars(select(AddressFlag))}
        assert flags == {(info.id, "role_address"), (typo.id, "typo_suspected"), (throwaway.id, "disposable")}
        # Flagged, not changed: the typo stays as given.
        assert s.get(Contact, typo.id).email == "anna@gmial.com"
        reasons = dict(s.execute(select(Suppression.contact_id, Suppression.reason)).all())
        assert reasons == {broken.id: "invalid_address"}
        # The flags are segment values.
        role = s.scalars(select(Contact.id).where(compile_segment("hygiene = role_address"))).all()
        assert role == [info.id] and fine.id not in role
    with pytest.raises(SegmentError, match="unknown hygiene value 'roles'"):
        compile_segment("hygiene = roles")
    # The next pass checks only contacts added since.
    with transaction(runtime.factory) as s:
        make_contact(s, email="sales@new.example")
        again = run_hygiene(s, settings=runtime.settings, now=NOW).report["jobs"]["addresses"]
    assert again["checked"] == 1 and again["flagged"]["role_address"] == 1


def test_role_addresses_are_configurable(tmp_path, db_url) -> None:
    from sendwell.runtime import Runtime
    from tests.conftest import make_settings

    rt = Runtime(make_settings(tmp_path / "d", database_url=db_url, role_addresses="einkauf, purchasing"))
    try:
        with transaction(rt.factory) as s:
            make_contact(s, email="einkauf@licht.example")
            make_contact(s, email="info@licht.example")
            report = run_hygiene(s, settings=rt.settings, now=NOW).report["jobs"]["addresses"]
        assert report["flagged"]["role_address"] == 1
        with transaction(rt.factory) as s:
            assert s.scalar(select(Contact.email).join(AddressFlag)) == "einkauf@licht.example"
    finally:
        rt.dispose()


def test_import_warns_on_a_likely_typo_and_keeps_the_address(session, tmp_path) -> None:
    path = tmp_path / "buyers.csv"
    path.write_text("email,company\nanna@gmial.com,Licht GmbH\ninfo@lamps.example,Lamps\nbo@lamps.example,Lamps\n",
                    encoding="utf-8")
    result = import_contacts(session, path=path, pepper=b"test-pepper-0123456789", consent="express")
    assert result.created == 3 and result.rejected == 0
    assert [str(w) for w in result.warnings] == [
        "row 2, field 'email': typo_suspected: did you mean anna@gmail.com?",
        "row 3, field 'email': role_address: info@ is a role address (a shared mailbox, not a person)",
    ]
    assert result.as_dict()["warning_count"] == 2
    assert session.scalar(select(Contact.email).where(Contact.email.like("anna@%"))) == "anna@gmial.com"


# ---------------------------------------------------------------- soft bounces, deferrals
def test_soft_bounce_streak_left_open_is_suppressed_on_schedule(runtime) -> None:
    with transaction(runtime.factory) as s:
        three, two = make_contact(s), make_contact(s)
        campaign = Campaign(name="old", subject="s", html="h", status="finished")
        s.add(campaign)
        s.flush()
        for contact, n in ((three, 3), (two, 2)):
            for i in range(n):
                other = Campaign(name=f"c{i}", subject="s", html="h", status="finished")
                s.add(other)
                s.flush()
                send = Send(campaign_id=other.id, contact_id=contact.id, state="sent", sent_at=NOW - DAY * (10 - i))
                s.add(send)
                s.flush()
                # As a crashed ingest would have left it: the bounce stored, the rule not applied.
                s.add(Event(kind="bounced", contact_id=contact.id, send_id=send.id, occurred_at=NOW - DAY * (9 - i),
                            data={"kind": "soft", "delay": False}))
    with transaction(runtime.factory) as s:
        report = run_hygiene(s, settings=runtime.settings, now=NOW).report["jobs"]["soft_bounces"]
    assert report == {"suppressed": 1, "contacts": [three.id]}
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Suppression.reason).where(Suppression.contact_id == three.id)) == "soft_bounce_streak"
        assert _count(s, Suppression, Suppression.contact_id == two.id) == 0


def test_deferrals_that_can_no_longer_go_are_cleared(runtime) -> None:
    with transaction(runtime.factory) as s:
        a, b, c = make_contact(s), make_contact(s), make_contact(s)
        cancelled = Campaign(name="x", subject="s", html="h", status="cancelled")
        live = Campaign(name="y", subject="s", html="h", status="sending")
        s.add_all([cancelled, live])
        s.flush()
        s.add_all([
            Send(campaign_id=cancelled.id, contact_id=a.id, state="deferred", retry_at=NOW + DAY,
                 skip_reason="frequency_cap"),
            Send(campaign_id=live.id, contact_id=b.id, state="deferred", retry_at=NOW + DAY,
                 skip_reason="send_window"),
            Send(campaign_id=live.id, contact_id=c.id, state="deferred", retry_at=NOW + DAY,
                 skip_reason="frequency_cap"),
        ])
        suppress(s, email_hash=b.email_hash, reason="unsubscribe", contact_id=b.id)
    with transaction(runtime.factory) as s:
        report = run_hygiene(s, settings=runtime.settings, now=NOW).report["jobs"]["deferrals"]
    assert report == {"cleared": 2, "by_reason": {"cancelled": 1, "suppressed": 1}}
    with transaction(runtime.factory) as s:
        states = dict(s.execute(select(Send.contact_id, Send.state)).all())
    assert states == {a.id: "skipped", b.id: "skipped", c.id: "deferred"}


# ---------------------------------------------------------------- dry run
def test_a_dry_run_reports_the_same_and_changes_nothing(mail_runtime) -> None:
    runtime = mail_runtime
    with transaction(runtime.factory) as s:
        for _ in range(3):
            old_contact(s, at=NOW - 200 * DAY)
        paused = make_contact(s, paused_until=NOW - DAY)
    with transaction(runtime.factory) as s:
        dry = run_hygiene(s, settings=runtime.settings, now=NOW, dry_run=True).report
    with transaction(runtime.factory) as s:
        assert _count(s, Reengagement) == 0 and _count(s, Campaign) == 0 and _count(s, Send) == 0
        assert s.get(Contact, paused.id).paused_until is not None
        assert _count(s, HygieneRun, HygieneRun.dry_run.is_(True)) == 1  # the report itself is kept
    with transaction(runtime.factory) as s:
        real = run_hygiene(s, settings=runtime.settings, now=NOW).report
    assert dry["dry_run"] and not real["dry_run"]
    assert dry["jobs"]["sunset"]["entered"] == real["jobs"]["sunset"]["entered"] == 3
    assert dry["jobs"]["pauses"] == real["jobs"]["pauses"] == {"resumed": 1, "contacts": [paused.id]}
    with transaction(runtime.factory) as s:
        assert _count(s, Reengagement) == 3 and _count(s, Campaign, Campaign.kind == "reconfirmation") == 1


def test_a_reconfirmation_the_lint_refuses_asks_nobody_and_the_other_jobs_still_run(runtime) -> None:
    with transaction(runtime.factory) as s:
        old_contact(s, at=NOW - 200 * DAY)
        make_contact(s, paused_until=NOW - DAY)
    with transaction(runtime.factory) as s:
        jobs = run_hygiene(s, settings=runtime.settings, now=NOW).report["jobs"]
    # The test settings have no DKIM key: COMPLIANCE row 23 blocks every marketing kind.
    assert jobs["sunset"]["campaign_id"] is None and "DKIM" in jobs["sunset"]["blocked"][0]
    assert jobs["pauses"]["resumed"] == 1
    with transaction(runtime.factory) as s:
        assert _count(s, Campaign) == 0 and _count(s, Reengagement, Reengagement.campaign_id.is_(None)) == 1


# ---------------------------------------------------------------- what counts as engagement
def test_preference_changes_and_replies_are_engagement_opens_are_not(runtime) -> None:
    with transaction(runtime.factory) as s:
        prefs, replier = make_contact(s), make_contact(s)
        campaign = Campaign(name="x", subject="Our LED panels", html="h", status="finished")
        s.add(campaign)
        s.flush()
        send = Send(campaign_id=campaign.id, contact_id=replier.id, state="sent", sent_at=NOW - DAY,
                    message_id="<42.abc@bright-lighting.example>")
        s.add(send)
        update_preferences(s, contact_id=prefs.id, method="preference_center", frequency="monthly", now=NOW)
        assert prefs.last_engaged_at == NOW
    raw = (b"From: Someone <" + replier.email.encode() + b">\r\nTo: sales@bright-lighting.example\r\n"
           b"Subject: Re: Our LED panels\r\nIn-Reply-To: <42.abc@bright-lighting.example>\r\n"
           b"Message-ID: <reply-1@buyer.example>\r\n\r\nPlease send the price list for 600x600 panels.\r\n")
    with transaction(runtime.factory) as s:
        process_inbound(s, raw=raw, rcpt_to=["sales@bright-lighting.example"], settings=runtime.settings)
    with transaction(runtime.factory) as s:
        assert s.get(Contact, replier.id).last_engaged_at is not None
        assert s.scalar(select(Event.kind).where(Event.contact_id == replier.id)) == "replied"


# ---------------------------------------------------------------- the keep-me link
def _keep_path(runtime, contact_id: int) -> str:
    return "/k/" + make_token(runtime.settings.secret_keys, SALT_KEEP, TokenData(contact_id, None, None))


def test_keep_link_get_changes_nothing_post_keeps_and_lifts_only_a_sunset(runtime) -> None:
    with transaction(runtime.factory) as s:
        asked = old_contact(s, at=NOW - 300 * DAY)
        sunset = old_contact(s, at=NOW - 300 * DAY)
        left = old_contact(s, at=NOW - 300 * DAY)
        s.add(Reengagement(contact_id=asked.id, inactive_since=NOW - 300 * DAY, entered_at=NOW - 10 * DAY,
                           asked_at=NOW - 9 * DAY))
        suppress(s, email_hash=sunset.email_hash, reason="sunset", contact_id=sunset.id)
        unsubscribe_contact(s, contact_id=left.id, method="page")
    client = TestClient(create_app(runtime, outbox=False))
    page = client.get(_keep_path(runtime, asked.id))
    assert page.status_code == 200 and 'method="post"' in page.text
    with transaction(runtime.factory) as s:
        assert s.scalar(select(Reengagement.resolved_at)) is None
        assert s.get(Contact, asked.id).last_engaged_at is None
    assert client.post(_keep_path(runtime, asked.id)).status_code == 200
    assert client.post(_keep_path(runtime, asked.id)[:-2] + "xx").status_code == 400  # tampered: nothing
    answer = client.post(_keep_path(runtime, sunset.id))
    assert answer.status_code == 200
    refused = client.post(_keep_path(runtime, left.id) + "?lang=en")
    assert refused.status_code == 200 and "does not change that" in refused.text
    with transaction(runtime.factory) as s:
        row = s.scalar(select(Reengagement))
        assert (row.outcome, row.resolved_at is not None) == ("kept", True)
        assert s.get(Contact, asked.id).last_engaged_at is not None
        reasons = dict(s.execute(select(Suppression.contact_id, Suppression.reason)).all())
        # The sunset is lifted by the person's own click; an unsubscribe is not (row 19).
        assert reasons == {left.id: "unsubscribe"}


def test_undo_on_the_unsubscribe_page_lifts_a_sunset(runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = old_contact(s, at=NOW - 300 * DAY)
        suppress(s, email_hash=contact.email_hash, reason="sunset", contact_id=contact.id)
    with transaction(runtime.factory) as s:
        assert resubscribe_contact(s, contact_id=contact.id).status == "resubscribed"
        assert _count(s, Suppression) == 0
    with transaction(runtime.factory) as s:
        assert keep_subscribed(s, contact_id=contact.id).status == "kept"


def test_the_reconfirmation_mail_carries_the_keep_link(mail_runtime, smtp_server) -> None:
    from tests.helpers import parse_strict
    from tests.hygiene.conftest import keep_url

    with transaction(mail_runtime.factory) as s:
        old_contact(s, at=NOW - 200 * DAY, first_name="Anna")
    result = hygiene_pass(mail_runtime, NOW)
    assert result.report["jobs"]["sunset"]["queued"] == 1
    [mail] = smtp_server.messages
    message = parse_strict(mail.data)
    assert message["Subject"] == "Do you still want to hear from us?"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # still a marketing mail
    assert "/k/" in keep_url(mail.data)
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Yes, keep me subscribed" in html and "/k/" in html
