"""Demo step: the ready-made trade-fair sequence runs end to end over ten simulated days.

It is split in two so that the seconds a person needs before clicking (a click sooner is a
link scanner's) pass while the demo's other steps run: `start_fair_sequence` tags the stand
visitors and sends the thank-you and the catalogue; `finish_fair_sequence` has some of them
click the catalogue, runs the branch and the sample offer, and reports per step.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import func, select

from sendwell.contacts.manage import bulk_change
from sendwell.db.models import Contact, Send
from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends
from sendwell.delivery.progress import finish_if_done
from sendwell.demo.engagement_signals import PERSON_AGENT
from sendwell.followups import dispatch_outbox
from sendwell.insight.tracking import read_link_token
from sendwell.runtime import Runtime
from sendwell.segments.expression import compile_segment
from sendwell.sequences.report import due_campaigns, enrollments, step_report
from sendwell.sequences.service import advance, create_sequence
from sendwell.sequences.templates import load_template

TAG = "canton-fair-visitor"
# Buyers from outside the regions the demo's campaigns mailed, in trades its floodlight campaign
# left alone: their stage caps are untouched, so every step's mail goes out on its day.
VISITORS = "stage = new_lead and region = other and industry not in (furniture, textiles)"
VISITOR_COUNT, CLICKERS = 8, 4
CATALOGUE = "/catalogue-2026"  # under the demo company's website
_URL = re.compile(r"<(https?://[^>]+)>")


def _deliver_as_of(runtime: Runtime, sequence_id: int, now: datetime) -> int:
    """Deliver the sequence's queued mails as of a simulated day; returns how many went.

    The claim re-checks eligibility as of that day: claimed today, the three mails of ten days
    would meet the stage caps that the days in between free.
    """
    deliverer = runtime.make_deliverer()
    sent = 0
    try:
        with transaction(runtime.factory) as session:
            campaigns = due_campaigns(session, sequence_id=sequence_id)
        for campaign_id in campaigns:
            while True:
                with transaction(runtime.factory) as session:
                    claimed = claim_sends(session, campaign_id=campaign_id, now=now, limit=runtime.settings.batch_size)
                if not claimed:
                    break
                sent += deliverer.deliver(campaign_id, claimed)["sent"]
            with transaction(runtime.factory) as session:
                finish_if_done(session, campaign_id=campaign_id)
    finally:
        deliverer.transport.close()
    return sent


def _advance(runtime: Runtime, now: datetime) -> dict[str, Any]:
    with transaction(runtime.factory) as session:
        return advance(session, settings=runtime.settings, now=now)


def start_fair_sequence(runtime: Runtime, received: list[Any], say: Any = print) -> dict[str, Any]:
    """Create the sequence from the template, tag the visitors, send the thank-you now and the catalogue 3 days on."""
    settings = runtime.settings
    now = datetime.now(timezone.utc)
    before = len(received)
    with transaction(runtime.factory) as session:
        sequence = create_sequence(session, settings=settings, data=load_template("trade-fair", {
            "name": "Canton Fair 2026 follow-up", "tag": TAG, "fair": "the Canton Fair",
            "catalogue_url": settings.website + CATALOGUE}))
        visitors = list(session.scalars(select(Contact.id).where(compile_segment(VISITORS, now=now))
                                        .order_by(Contact.id).limit(VISITOR_COUNT)))
        bulk_change(session, ids=visitors, action="add_tag", value=TAG, by="demo", now=now)  # as the admin's list does
        sequence_id = sequence.id
    _advance(runtime, now)
    thanked = _deliver_as_of(runtime, sequence_id, now)
    # One visitor leaves with one click on the thank-you mail: the catalogue never reaches them.
    leaver = received[before]
    msg = email.message_from_bytes(leaver.data, policy=email.policy.default)
    url = _URL.search(str(msg["List-Unsubscribe"])).group(1)  # type: ignore[union-attr]
    httpx.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10).raise_for_status()
    thank_you = dispatch_outbox(runtime)["done"]  # the opt-out's one thank-you mail, now
    day3 = now + timedelta(days=3, minutes=1)
    _advance(runtime, day3)
    catalogues = _deliver_as_of(runtime, sequence_id, day3)
    say(f"9b. Sequence {sequence_id} “Canton Fair 2026 follow-up” from the ready-made trade-fair template: "
        f"{len(visitors)} stand visitors tagged {TAG} got the thank-you now; {leaver.rcpt_tos[0]} unsubscribed "
        f"with one click, so the catalogue (as of {day3.date().isoformat()}, `sequences run --as-of`) "
        f"went to {catalogues}")
    return {"id": sequence_id, "started": now, "visitors": visitors, "leaver": leaver.rcpt_tos[0],
            "sent": [thanked, catalogues], "thank_you_sent": thank_you, "catalogue_mails": received[-catalogues:]}


def finish_fair_sequence(runtime: Runtime, started: dict[str, Any], say: Any = print) -> dict[str, Any]:
    """Some visitors click the catalogue; 10 days on the clickers become prospects and get the sample offer."""
    settings = runtime.settings
    clickers = started["catalogue_mails"][:CLICKERS]
    with transaction(runtime.factory) as session:
        last_sent = session.scalar(select(func.max(Send.sent_at)).where(
            Send.campaign_id.in_(due_campaigns(session, sequence_id=started["id"]))))
    # A person reads before clicking: wait out what is left of the seconds in which only a scanner clicks.
    since = (datetime.now(timezone.utc) - last_sent).total_seconds()
    time.sleep(max(0.0, settings.machine_click_seconds + 1 - since))
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        for mail in clickers:
            client.get(_catalogue_link(mail.data, settings), headers={"User-Agent": PERSON_AGENT})
    day10 = started["started"] + timedelta(days=10, minutes=2)
    _advance(runtime, day10)
    samples = _deliver_as_of(runtime, started["id"], day10)
    with transaction(runtime.factory) as session:
        report = step_report(session, sequence_id=started["id"])
        states = [(e.state, e.exited_reason) for e in enrollments(session, sequence_id=started["id"])]
        prospects = session.scalar(select(func.count()).select_from(Contact).where(
            Contact.id.in_(started["visitors"]), Contact.stage == "prospect"))
    steps = [{k: s.get(k) for k in ("id", "kind", "runs", "sent", "opened", "clicked", "unsubscribed")}
             for s in report["steps"]]
    done = sum(1 for state, _ in states if state == "done")
    say(f"15b. {len(clickers)} visitors clicked the catalogue link (seconds later than a scanner would); "
        f"as of {day10.date().isoformat()} they became prospects and got the sample offer ({samples} mails), "
        f"the others' sequence ended at the branch; {done} passes done, "
        f"{sum(1 for state, _ in states if state == 'exited')} exited")
    summary = {"id": started["id"], "visitors": len(started["visitors"]), "leaver": started["leaver"],
               "sent": sum(started["sent"]) + samples, "thank_you_sent": started["thank_you_sent"],
               "clicked": len(clickers), "done": done, "prospects": prospects,
               "exited": sorted(reason for state, reason in states if state == "exited"),
               "open_tracking": settings.open_tracking, "steps": steps}
    for line in format_sequence(summary)[1:]:
        say(line)
    return summary


def _catalogue_link(data: bytes, settings: Any) -> str:
    """The tracked link in the mail that leads to the catalogue (not the hidden trap link)."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    part = message.get_body(("html",))
    html = part.get_content() if part is not None else ""  # type: ignore[union-attr]
    for url in re.findall(rf'href="({re.escape(settings.base_url)}/r/[^"]+)"', html):
        _, target, trap = read_link_token(settings.secret_keys, url.rsplit("/", 1)[1])
        if not trap and target.endswith(CATALOGUE):
            return url
    raise RuntimeError("the catalogue mail has no catalogue link")


def format_sequence(summary: dict[str, Any]) -> list[str]:
    """Lines for the demo's closing summary: the sequence's report per step."""
    shown = ("sent", "opened", "clicked", "unsubscribed") if summary["open_tracking"] else (
        "sent", "clicked", "unsubscribed")
    lines = [f"Sequence {summary['id']} (trade fair, {summary['visitors']} visitors): {summary['sent']} mails; "
             f"{summary['done']} passes done, exited: {', '.join(summary['exited']) or 'none'}"]
    for step in summary["steps"]:
        if step["kind"] == "mail":
            lines.append(f"    {step['id']:<12} " + ", ".join(f"{k} {step[k]}" for k in shown))
    if not summary["open_tracking"]:
        lines.append("    (opens not counted: open tracking is off, SENDWELL_OPEN_TRACKING)")
    return lines
