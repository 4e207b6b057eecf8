"""A simulated year of hygiene passes (`--as-of`), checking each contact's transitions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi.testclient import TestClient
from sqlalchemy import select

from sendwell.db.models import Consent, Contact, Event, Reengagement, Send, Suppression
from sendwell.db.session import transaction
from sendwell.insight.engagement import record_engagement
from sendwell.optout.service import unsubscribe_contact, update_preferences
from sendwell.policy.service import set_frequency_preference
from sendwell.suppression.service import suppress
from sendwell.web.app import create_app
from tests.hygiene.conftest import cli_pass, keep_url, old_contact

DAY = timedelta(days=1)
# The year runs in the past, so every simulated time is before the real clock (engagement
# recorded "in the future" would be clamped to now).
Y0 = datetime.now(timezone.utc).replace(microsecond=0) - 400 * DAY


def at(day: int) -> datetime:
    return Y0 + day * DAY


def test_a_year_of_hygiene(mail_runtime, smtp_server) -> None:
    rt = mail_runtime
    names = ("quiet", "keeper", "replier", "opener", "clicker", "prefs", "paused", "unsubscribed",
             "complained", "bounced", "casl")
    with transaction(rt.factory) as s:
        c = {n: old_contact(s, at=Y0, email=f"{n}@buyer-{n}.example", country="US") for n in names if n != "casl"}
        c["casl"] = old_contact(s, at=Y0, email="casl@buyer-casl.example", country="CA", consent="implied_inquiry")
        ids = {n: x.id for n, x in c.items()}
        for consent in s.scalars(select(Consent).where(Consent.contact_id == ids["casl"])):
            consent.expires_at = None  # the consent-expiry job sets it (CASL s10(10): 6 months)
        # Row 19's three: never part of the flow, never mailed.
        unsubscribe_contact(s, contact_id=ids["unsubscribed"], method="page", now=at(50))
        suppress(s, email_hash=c["complained"].email_hash, reason="complaint", contact_id=ids["complained"])
        suppress(s, email_hash=c["bounced"].email_hash, reason="hard_bounce", contact_id=ids["bounced"])
        # Opens are not engagement (privacy proxies fake them); a click is.
        s.add(Event(kind="opened", contact_id=ids["opener"], occurred_at=at(100)))
        record_engagement(s, contact_id=ids["clicker"], kind="clicked", occurred_at=at(100))
        set_frequency_preference(s, contact_id=ids["paused"], paused_until=at(120), now=at(30))

    timeline: dict[str, list[tuple[int, str]]] = {n: [] for n in names}
    reports = {}
    client = TestClient(create_app(rt, outbox=False))
    kept_clicked = False
    for day in range(15, 391, 15):
        with transaction(rt.factory) as s:
            if day == 150:
                update_preferences(s, contact_id=ids["prefs"], method="preference_center", frequency="monthly",
                                   now=at(150))
            if day == 210:
                record_engagement(s, contact_id=ids["replier"], kind="replied", occurred_at=at(205))
        reports[day] = cli_pass(rt, at(day))["jobs"]  # `sendwell hygiene run --as-of … --wait`
        if not kept_clicked and _received(smtp_server, "keeper"):
            url = keep_url(_received(smtp_server, "keeper")[0])
            path = url.split("://", 1)[1].split("/", 1)[1]
            assert client.get("/" + path).status_code == 200  # a GET (a scanner) changes nothing
            with transaction(rt.factory) as s:
                assert _state(s, ids["keeper"]) == "mailing"
            assert client.post("/" + path).status_code == 200
            kept_clicked = True
        with transaction(rt.factory) as s:
            for n in names:
                state = _state(s, ids[n])
                if not timeline[n] or timeline[n][-1][1] != state:
                    timeline[n].append((day, state))

    # Inactive since day 0: enters at the first pass past 180 days and gets the reconfirmation
    # mail; the next pass sees it delivered (asked as of day 195); 30 days after the ask,
    # without an answer, it is suppressed with reason sunset.
    assert timeline["quiet"] == [(15, "active"), (195, "mailing"), (210, "asked"), (225, "sunset")]
    assert timeline["opener"] == timeline["quiet"]
    # The keep-me click (right after the mail arrived; asked until then, checked above) takes
    # the contact out of the flow; it never reaches sunset.
    assert timeline["keeper"] == [(15, "active"), (195, "kept")]
    # A reply is engagement: out of the flow at the next pass; 180 days after the reply
    # (day 205) the contact is inactive again and a new cycle starts.
    # (That second mail waits: the first one really went out minutes ago, and the frequency
    # cap holds for reconfirmation mail too, so it is deferred rather than skipped.)
    assert timeline["replier"] == [(15, "active"), (195, "mailing"), (210, "engaged"), (390, "mailing")]
    # The clock starts at the last click (day 100) or preference change (day 150).
    assert timeline["clicker"] == [(15, "active"), (285, "mailing"), (300, "asked"), (315, "sunset")]
    assert timeline["prefs"] == [(15, "active"), (345, "mailing"), (360, "asked"), (375, "sunset")]
    # The pause was chosen on day 30 (engagement), ended on day 120 and was cleared then.
    assert timeline["paused"] == [(15, "active"), (225, "mailing"), (240, "asked"), (255, "sunset")]
    assert reports[120]["pauses"]["resumed"] == 1 and ids["paused"] in reports[120]["pauses"]["contacts"]
    # COMPLIANCE row 19: the unsubscribed, complained and bounced are never in the flow.
    assert timeline["unsubscribed"] == [(15, "suppressed:unsubscribe")]
    assert timeline["complained"] == [(15, "suppressed:complaint")]
    assert timeline["bounced"] == [(15, "suppressed:hard_bounce")]
    # CASL implied inquiry consent lapses after six months (day 183): its date is set at the
    # first pass, the lapse recorded once, and with no lawful basis left it is never asked.
    assert reports[15]["consent_expiry"]["dates_set"] == 1
    assert reports[195]["consent_expiry"]["expired"] == 1
    assert sum(r["consent_expiry"]["expired"] for r in reports.values()) == 1
    assert timeline["casl"] == [(15, "active")]

    with transaction(rt.factory) as s:
        sunset_rows = s.scalars(select(Suppression).where(Suppression.reason == "sunset")).all()
        assert {r.contact_id for r in sunset_rows} == {ids[n] for n in ("quiet", "opener", "clicker", "prefs",
                                                                         "paused")}
        paused = s.get(Contact, ids["paused"])
        assert paused.paused_until is None
        assert s.scalar(select(Event.id).where(Event.contact_id == ids["paused"], Event.kind == "pause_ended"))
    # Who got a reconfirmation mail: one per cycle, never the suppressed or the lapsed consent.
    mailed = sorted(r.rcpt_tos[0].split("@")[0] for r in smtp_server.messages)
    assert mailed == sorted(["quiet", "opener", "keeper", "replier", "clicker", "prefs", "paused"])
    with transaction(rt.factory) as s:
        second = s.scalar(select(Send).join(Reengagement, Reengagement.campaign_id == Send.campaign_id).where(
            Reengagement.contact_id == ids["replier"], Reengagement.resolved_at.is_(None),
            Send.contact_id == ids["replier"]))
        assert (second.state, second.skip_reason) == ("deferred", "frequency_cap")
    assert all(b"Do you still want to hear from" in r.data for r in smtp_server.messages)


def _received(smtp_server, name: str) -> list[bytes]:
    return [r.data for r in smtp_server.messages if r.rcpt_tos[0].startswith(name + "@")]


def _state(s, contact_id: int) -> str:
    contact = s.get(Contact, contact_id)
    reasons = s.scalars(select(Suppression.reason).where(Suppression.email_hash == contact.email_hash)).all()
    if reasons:
        return f"suppressed:{reasons[0]}" if reasons[0] != "sunset" else "sunset"
    row = s.scalar(select(Reengagement).where(Reengagement.contact_id == contact_id)
                   .order_by(Reengagement.id.desc()).limit(1))
    if row is None:
        return "active"
    if row.resolved_at is None:
        return "asked" if row.asked_at is not None else "mailing" if row.campaign_id else "entered"
    return row.outcome
