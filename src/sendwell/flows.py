"""Use cases that cross contexts; every adapter (CLI, REST API, demo) starts a send through here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from sendwell.config import Settings


def start_sending(
    session: Session, *, settings: Settings, campaign_id: int, now: datetime | None = None
) -> list[list[int]]:
    """Gate, plan and queue a campaign; returns the batches of send ids to hand to the queue.

    The blocking compliance lint runs first (content.service.ComplianceError: nothing is
    planned), then the plan with the configured frequency policy, then the queue step. One
    function, so no entry point can skip the gate or plan with the wrong caps. `now` plans as
    of another time (the hygiene pass's --as-of).
    """
    from sendwell.content.service import assert_sendable
    from sendwell.delivery.service import get_campaign, plan_campaign, queue_campaign

    campaign = get_campaign(session, campaign_id=campaign_id)
    assert_sendable(session, settings=settings, campaign_id=campaign_id)
    plan_campaign(session, campaign=campaign, settings=settings, now=now)
    return queue_campaign(session, campaign=campaign, batch_size=settings.batch_size)


def send_test(session: Session, *, settings: Settings, campaign_id: int, to: str, signer: object | None,
              transport: object) -> dict[str, str]:
    """Mail the campaign as rendered for its first sample recipient to `to`, marked as a test.

    Nothing is planned or recorded: no send row, no event, no frequency-cap use. The links
    in a test mail are preview links, so they do not unsubscribe anyone.
    """
    import email
    import email.policy
    from email.utils import parseaddr

    from sendwell.contacts.fields import normalise_email
    from sendwell.content.service import ContentError, preview_campaign

    address = normalise_email(to)  # ValueError names what is wrong
    rendered = next((p for p in preview_campaign(session, settings=settings, campaign_id=campaign_id)
                     if "eml" in p), None)
    if rendered is None:
        raise ContentError("the campaign cannot be rendered for any sample recipient; see the compliance check")
    message = email.message_from_bytes(rendered["eml"].encode("ascii", "replace"), policy=email.policy.SMTP)
    message.replace_header("To", address)
    message.replace_header("Subject", f"[TEST] {rendered['subject']}")
    data = message.as_bytes()
    if signer is not None:
        data = signer.sign(data) + data  # type: ignore[attr-defined]
    outcome = transport.send(parseaddr(settings.from_)[1], address, data)  # type: ignore[attr-defined]
    return {"to": address, "sample": rendered["label"], "status": outcome.status, "message": outcome.message}
