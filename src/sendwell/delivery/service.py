"""Campaigns into sends: create, plan, queue, claim, deliver, and report their states."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.content.footer import RecipientFacts
from sendwell.content.recipients import recipient_facts
from sendwell.content.render import CompiledCampaign, Links, TemplateError
from sendwell.contacts.service import ensure_topic
from sendwell.db.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Contact,
    Send,
    SendState,
    Topic,
)
from sendwell.db.session import transaction
from sendwell.delivery.mime import HeaderInjection, build_message, make_message_id
from sendwell.delivery.transport import Transport, TransportUnavailable
from sendwell.delivery.verp import make_return_path
from sendwell.metrics import smtp_timer
from sendwell.optout.tokens import (
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    TokenData,
    make_mailto_token,
    make_token,
)
from sendwell.optout.gate import hold_for_send
from sendwell.policy.caps import OVER_CAP_MODES, FrequencyPolicy
from sendwell.policy.eligibility import SKIP_FREQUENCY_CAP, skip_reason
from sendwell.policy.service import defer_outside_window, defer_over_cap, defer_sends, earliest_allowed, lock_planning
from sendwell.segments.expression import compile_segment

BATCH_SIZE = 200
LEASE = timedelta(minutes=10)


class CampaignError(ValueError):
    """The campaign cannot be created or changed as asked."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def create_campaign(
    session: Session,
    *,
    settings: Settings,
    name: str,
    subject: str,
    html: str,
    text: str = "",
    segment: str = "",
    topic: str | None = None,
    kind: str = CampaignKind.MARKETING.value,
    over_cap: str = "skip",
) -> Campaign:
    """Validate and store a draft campaign."""
    if over_cap not in OVER_CAP_MODES:
        raise CampaignError(f"unknown over-cap handling {over_cap!r} (use skip or defer)")
    if kind not in {k.value for k in CampaignKind}:
        raise CampaignError(f"unknown campaign kind {kind!r} (use one of {', '.join(k.value for k in CampaignKind)})")
    if not name.strip():
        raise CampaignError("the campaign needs a name")
    if not subject.strip():
        raise CampaignError("the campaign needs a subject")
    compile_segment(segment)  # SegmentError names the field or token at fault
    CompiledCampaign(subject=subject, html=html, text=text, settings=settings, kind=kind)  # TemplateError
    campaign = Campaign(
        name=name.strip(), subject=subject, html=html, text=text, segment_expr=segment, kind=kind, over_cap=over_cap,
        topic_id=ensure_topic(session, slug=topic).id if topic else None,
    )
    session.add(campaign)
    session.flush()
    return campaign


def get_campaign(session: Session, *, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign with id {campaign_id}")
    return campaign


def _topic_slug(session: Session, campaign: Campaign) -> str | None:
    if campaign.topic_id is None:
        return None
    return session.scalar(select(Topic.slug).where(Topic.id == campaign.topic_id))


def plan_campaign(
    session: Session, *, campaign: Campaign, now: datetime | None = None, settings: Settings | None = None
) -> dict[str, int]:
    """One `sends` row per contact in the segment, eligible ones planned, others skipped with a reason.

    The frequency policy comes from `settings` (else the campaign's snapshot, else the
    defaults) and is stored on the campaign, so the claim-time re-check applies the same rules.
    """
    now = now or _now()
    if campaign.status in (CampaignStatus.CANCELLED.value, CampaignStatus.FINISHED.value):
        raise CampaignError(f"campaign {campaign.id} is {campaign.status}")
    policy = FrequencyPolicy.from_settings(settings) if settings is not None else FrequencyPolicy.from_json(campaign.policy)
    campaign.policy = policy.to_json()
    lock_planning(session)  # before the INSERT's snapshot: see lock_planning for why
    reason = skip_reason(campaign, _topic_slug(session, campaign), now, policy=policy)
    # One INSERT … SELECT for the whole segment: planned when the reason is NULL, skipped
    # otherwise. Re-planning is harmless: existing (campaign, contact) rows are kept.
    source = select(
        literal(campaign.id).label("campaign_id"),
        Contact.id.label("contact_id"),
        reason.label("skip_reason"),
    ).where(compile_segment(campaign.segment_expr))
    sub = source.subquery()
    state = case((sub.c.skip_reason.is_(None), SendState.PLANNED.value), else_=SendState.SKIPPED.value)
    select_rows = select(
        sub.c.campaign_id, sub.c.contact_id, state, sub.c.skip_reason, literal(0), literal(now)
    ).where(true())  # SQLite: INSERT … SELECT needs a WHERE before ON CONFLICT (parsing ambiguity)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Send).from_select(
        ["campaign_id", "contact_id", "state", "skip_reason", "attempts", "updated_at"], select_rows
    )
    # ON CONFLICT makes PostgreSQL insert each row speculatively; a first plan cannot conflict
    # (plans of every campaign are serialised by lock_planning), so only a re-plan pays for it.
    if session.scalar(select(Send.id).where(Send.campaign_id == campaign.id).limit(1)) is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
    session.execute(stmt)
    defer_over_cap(session, campaign=campaign, policy=policy, now=now)
    defer_outside_window(session, campaign=campaign, policy=policy, now=now)
    if campaign.status == CampaignStatus.DRAFT.value:
        campaign.status = CampaignStatus.SENDING.value
        campaign.started_at = now
    session.flush()
    return state_counts(session, campaign_id=campaign.id)


def queue_campaign(session: Session, *, campaign: Campaign, batch_size: int = BATCH_SIZE) -> list[list[int]]:
    """Move planned sends to queued; returns the batches of send ids to hand to the queue."""
    ids = list(
        session.scalars(
            select(Send.id)
            .where(Send.campaign_id == campaign.id, Send.state == SendState.PLANNED.value)
            .order_by(Send.id)
        )
    )
    for chunk in _chunks(ids, 1000):
        session.execute(
            update(Send)
            .where(Send.id.in_(chunk), Send.state == SendState.PLANNED.value)
            .values(state=SendState.QUEUED.value, updated_at=_now())
        )
    session.flush()
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]


def claim_sends(
    session: Session,
    *,
    campaign_id: int,
    send_ids: list[int] | None = None,
    limit: int = BATCH_SIZE,
    now: datetime | None = None,
) -> list[int]:
    """Atomically take queued (or due deferred) sends into `sending`, re-checking eligibility.

    An unsubscribe committed before this transaction turns the send into `skipped`: the
    claim and the re-check happen in one transaction (DESIGN.md: eligibility twice).
    """
    now = now or _now()
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING.value:
        return []
    due = (Send.state == SendState.QUEUED.value) | (
        (Send.state == SendState.DEFERRED.value) & (Send.retry_at <= now)
    )
    candidates = select(Send.id).where(Send.campaign_id == campaign_id, due).order_by(Send.id).limit(limit)
    if send_ids is not None:
        candidates = candidates.where(Send.id.in_(send_ids))
    if session.get_bind().dialect.name == "postgresql":
        # Several workers claim at once: skip rows another worker holds instead of waiting.
        candidates = candidates.with_for_update(skip_locked=True)
    # Two statements on purpose: inside `UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE
    # SKIP LOCKED)` PostgreSQL may rescan the subquery and lock (and claim) more than n rows.
    # SQLite needs no row locks: BEGIN IMMEDIATE already serialises writers.
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    claimed = list(
        session.scalars(
            update(Send)
            .where(Send.id.in_(ids), due)
            .values(state=SendState.SENDING.value, lease_until=now + LEASE, updated_at=now, skip_reason=None)
            .returning(Send.id)
        )
    )
    if not claimed:
        return []
    policy = FrequencyPolicy.from_json(campaign.policy)
    # The same eligibility as the plan; only in-flight sends planned before this one count
    # toward its caps (eligibility._cap_clause explains why).
    reason = skip_reason(campaign, _topic_slug(session, campaign), now, policy=policy, before=Send.id)
    rows = session.execute(
        select(Send.id, reason).join(Contact, Contact.id == Send.contact_id).where(
            Send.id.in_(claimed), reason.is_not(None)
        )
    ).all()
    capped = [send_id for send_id, why in rows if why == SKIP_FREQUENCY_CAP and campaign.over_cap == "defer"]
    defer_sends(session, retry=earliest_allowed(session, policy=policy, send_ids=capped, now=now),
                reason=SKIP_FREQUENCY_CAP, now=now)
    for send_id, why in rows:
        if send_id in capped:
            continue
        session.execute(
            update(Send).where(Send.id == send_id).values(
                state=SendState.SKIPPED.value, skip_reason=why, lease_until=None, updated_at=now
            )
        )
    held = {r[0] for r in rows}
    # Outside the recipient's local sending window: wait for the next opening, never skip.
    held.update(defer_outside_window(session, campaign=campaign, policy=policy, now=now,
                                     send_ids=[i for i in claimed if i not in held]))
    session.flush()
    return [i for i in claimed if i not in held]


@dataclass
class Deliverer:
    """Renders, signs and hands mail to a transport; one per worker, reused across batches."""

    settings: Settings
    factory: sessionmaker[Session]
    transport: Transport
    signer: Any = None  # sendwell.delivery.dkim.DkimSigner, when DKIM is configured
    _compiled: dict[int, CompiledCampaign] = field(default_factory=dict)
    _last_rate_check: dict[int, float] = field(default_factory=dict)

    def check_rates(self, campaign_id: int) -> None:
        """Judge the campaign's rates after a batch; a critical spike pauses it (circuit breaker).

        Throttled per worker (alert_check_interval): each check reads the campaign's sends, and
        a million-mail campaign has thousands of batches.
        """
        import time

        from sendwell.insight.alerts import Thresholds, check_campaign

        now = time.monotonic()
        last = self._last_rate_check.get(campaign_id)
        if last is not None and now - last < self.settings.alert_check_interval:
            return
        self._last_rate_check[campaign_id] = now
        with transaction(self.factory) as session:
            check_campaign(session, campaign_id=campaign_id, thresholds=Thresholds.from_settings(self.settings))

    def compiled(self, campaign: Campaign) -> CompiledCampaign:
        if campaign.id not in self._compiled:
            self._compiled[campaign.id] = CompiledCampaign(
                subject=campaign.subject, html=campaign.html, text=campaign.text, settings=self.settings,
                kind=campaign.kind,
            )
        return self._compiled[campaign.id]

    def deliver(self, campaign_id: int, send_ids: list[int]) -> dict[str, int]:
        """Send already-claimed sends; each result is committed right after its SMTP transaction."""
        counts = {"sent": 0, "deferred": 0, "failed": 0}
        with transaction(self.factory) as session:
            campaign = get_campaign(session, campaign_id=campaign_id)
            rows = session.execute(
                select(Send, Contact).join(Contact, Contact.id == Send.contact_id).where(Send.id.in_(send_ids))
            ).all()
            # Footer facts (consent kind → lawful basis / US ad notice, data source) in one query.
            facts = recipient_facts(session, contact_ids=[contact.id for _, contact in rows])
            session.expunge_all()
        compiled = self.compiled(campaign)
        pending = {send.id for send, _ in rows}
        try:
            for send, contact in rows:
                try:
                    envelope_from, data, message_id = self.build(campaign, compiled, send, contact,
                                                                 facts.get(contact.id))
                except (TemplateError, HeaderInjection, ValueError) as exc:
                    # One contact's bad data fails that send only, never the campaign.
                    counts[record_outcome(self.factory, send_id=send.id, status="permanent", code=0,
                                          message=f"cannot build message: {exc}", message_id="")] += 1
                    pending.discard(send.id)
                    continue
                # Opt-out gate (sendwell.optout.gate): the hand-off and an opt-out never interleave,
                # so no mail leaves after a person's unsubscribe POST has returned.
                with transaction(self.factory) as gate:
                    why = hold_for_send(gate, contact_id=contact.id, email_hash=contact.email_hash)
                    if why is not None:
                        gate.execute(update(Send).where(Send.id == send.id).values(
                            state=SendState.SKIPPED.value, skip_reason=why, lease_until=None, updated_at=_now()))
                        outcome = None
                    else:
                        with smtp_timer():  # Prometheus SMTP latency (sendwell.metrics)
                            outcome = self.transport.send(envelope_from, contact.email, data)
                if outcome is None:
                    pending.discard(send.id)
                    continue
                result = record_outcome(
                    self.factory, send_id=send.id, status=outcome.status, code=outcome.code,
                    message=outcome.message, message_id=message_id,
                )
                counts[result] += 1
                pending.discard(send.id)
        except TransportUnavailable:
            # Nothing was accepted for these: hand them back so nothing is lost.
            release_sends(self.factory, send_ids=sorted(pending))
            raise
        return counts

    def build(self, campaign: Campaign, compiled: CompiledCampaign, send: Send, contact: Contact,
              facts: RecipientFacts | None = None) -> tuple[str, bytes, str]:
        """The VERP envelope sender, the signed message bytes and its Message-ID."""
        s = self.settings
        keys = s.secret_keys
        token_data = TokenData(contact.id, campaign.id, campaign.topic_id)
        unsubscribe_url = f"{s.base_url}/u/{make_token(keys, SALT_UNSUBSCRIBE, token_data)}"
        links = Links(
            unsubscribe=unsubscribe_url,
            preferences=f"{s.base_url}/p/{make_token(keys, SALT_PREFERENCES, token_data)}",
        )
        rendered = compiled.render(contact, links, facts)
        html = rendered.html
        if s.click_tracking:
            from sendwell.insight.tracking import make_click_token, rewrite_links

            html = rewrite_links(
                html, lambda url: f"{s.base_url}/r/{make_click_token(keys, send.id, url)}",
                keep={links.unsubscribe, links.preferences},
            )
        domain = s.sender_domain
        mailto = f"mailto:unsubscribe+{make_mailto_token(keys, contact.id, campaign.id)}@{domain}?subject=unsubscribe"
        message_id = make_message_id(send.id, domain)
        data = build_message(
            from_header=s.from_,
            to_name=" ".join(x for x in (contact.first_name, contact.last_name) if x),
            to_address=contact.email,
            subject=rendered.subject,
            text=rendered.text,
            html=html,
            message_id=message_id,
            list_unsubscribe=[unsubscribe_url, mailto],
            list_id=f"{s.list_id_name} <{s.list_id_name}.{domain}>",
            feedback_id=f"{campaign.id}:{campaign.kind}:{domain}",
            one_click=True,
        )
        if self.signer is not None:
            data = self.signer.sign(data) + data
        return make_return_path(keys, send.id, domain), data, message_id


def record_outcome(
    factory: sessionmaker[Session], *, send_id: int, status: str, code: int, message: str, message_id: str
) -> str:
    """Commit one send's result; returns sent | deferred | failed."""
    now = _now()
    with transaction(factory) as session:
        send = session.get(Send, send_id)
        assert send is not None
        send.attempts += 1
        send.lease_until = None
        send.message_id = message_id or None
        send.updated_at = now
        if status == "sent":
            send.state, send.sent_at, send.last_error = SendState.SENT.value, now, None
            return "sent"
        send.last_error = f"{code} {message}"[:1000]
        if status == "temporary" and send.attempts < 8:
            # Exponential backoff: 5 min, 10, 20, … capped at 6 h; a 72 h ceiling overall.
            delay = min(timedelta(minutes=5) * (2 ** (send.attempts - 1)), timedelta(hours=6))
            send.state, send.retry_at = SendState.DEFERRED.value, now + delay
            return "deferred"
        send.state = SendState.FAILED.value
        return "failed"


def release_sends(factory: sessionmaker[Session], *, send_ids: list[int]) -> None:
    """Hand claimed-but-unsent sends back to the queue."""
    if not send_ids:
        return
    with transaction(factory) as session:
        session.execute(
            update(Send)
            .where(Send.id.in_(send_ids), Send.state == SendState.SENDING.value)
            .values(state=SendState.QUEUED.value, lease_until=None, updated_at=_now())
        )


def recover_expired_leases(session: Session, *, now: datetime | None = None) -> int:
    """Sends whose worker died mid-batch go back to the queue; returns how many."""
    now = now or _now()
    result = session.execute(
        update(Send)
        .where(Send.state == SendState.SENDING.value, Send.lease_until < now)
        .values(state=SendState.QUEUED.value, lease_until=None, updated_at=now)
    )
    return result.rowcount or 0


def finish_if_done(session: Session, *, campaign_id: int) -> bool:
    """Mark the campaign finished when no send is left to try."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    open_states = (SendState.PLANNED.value, SendState.QUEUED.value, SendState.SENDING.value, SendState.DEFERRED.value)
    left = session.scalar(
        select(func.count()).select_from(Send).where(Send.campaign_id == campaign_id, Send.state.in_(open_states))
    )
    if left == 0 and campaign.status == CampaignStatus.SENDING.value:
        campaign.status = CampaignStatus.FINISHED.value
        campaign.finished_at = _now()
        return True
    return False


def run_campaign(
    factory: sessionmaker[Session],
    deliverer: Deliverer,
    *,
    campaign_id: int,
    on_progress: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, Any]:
    """Deliver every due send of a campaign in this process (used by `send --wait`)."""
    while True:
        with transaction(factory) as session:
            claimed = claim_sends(session, campaign_id=campaign_id)
        if not claimed:
            break
        deliverer.deliver(campaign_id, claimed)
        deliverer.check_rates(campaign_id)
        if on_progress is not None:
            with transaction(factory) as session:
                on_progress(state_counts(session, campaign_id=campaign_id))
    with transaction(factory) as session:
        finish_if_done(session, campaign_id=campaign_id)
        return campaign_status(session, campaign_id=campaign_id)


def state_counts(session: Session, *, campaign_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Send.state, func.count()).where(Send.campaign_id == campaign_id).group_by(Send.state)
    ).all()
    return {state: count for state, count in rows}


def campaign_status(session: Session, *, campaign_id: int) -> dict[str, Any]:
    """Counts by state and by skip reason, for `campaigns status`."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    skips = session.execute(
        select(Send.skip_reason, func.count())
        .where(Send.campaign_id == campaign_id, Send.state == SendState.SKIPPED.value)
        .group_by(Send.skip_reason)
    ).all()
    deferred = session.execute(
        select(Send.skip_reason, func.count())
        .where(Send.campaign_id == campaign_id, Send.state == SendState.DEFERRED.value)
        .group_by(Send.skip_reason)
    ).all()
    counts = state_counts(session, campaign_id=campaign_id)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "status": campaign.status,
        "total": sum(counts.values()),
        "states": {s.value: counts.get(s.value, 0) for s in SendState},
        "skipped": {reason: count for reason, count in sorted(skips)},
        # Why sends wait: frequency_cap (defer mode), send_window, or null (an SMTP retry).
        "deferred": {reason or "retry": count for reason, count in sorted(deferred, key=lambda r: r[0] or "")},
    }


def set_campaign_status(session: Session, *, campaign_id: int, action: str) -> Campaign:
    """Pause, resume or cancel a campaign."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    allowed = {
        "pause": ({CampaignStatus.SENDING.value}, CampaignStatus.PAUSED.value),
        "resume": ({CampaignStatus.PAUSED.value}, CampaignStatus.SENDING.value),
        "cancel": ({CampaignStatus.DRAFT.value, CampaignStatus.SENDING.value, CampaignStatus.PAUSED.value},
                   CampaignStatus.CANCELLED.value),
    }
    sources, target = allowed[action]
    if campaign.status not in sources:
        raise CampaignError(f"cannot {action} campaign {campaign_id}: it is {campaign.status}")
    campaign.status = target
    if action == "cancel":
        session.execute(
            update(Send)
            .where(Send.campaign_id == campaign_id,
                   Send.state.in_([SendState.PLANNED.value, SendState.QUEUED.value, SendState.DEFERRED.value]))
            .values(state=SendState.SKIPPED.value, skip_reason="cancelled", updated_at=_now())
        )
    session.flush()
    return campaign


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "CampaignError",
    "TemplateError",
    "create_campaign",
    "plan_campaign",
    "queue_campaign",
    "claim_sends",
    "Deliverer",
    "run_campaign",
    "campaign_status",
    "recover_expired_leases",
    "set_campaign_status",
]


def due_batches(session: Session, *, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> list[tuple[int, list[int]]]:
    """(campaign id, send ids) for due deferred sends and stale queued ones of running campaigns.

    A queued send untouched for a lease period lost its job (a crash between commit and
    enqueue, a flushed Redis): enqueueing it again is safe because claiming is idempotent.
    """
    now = now or _now()
    due = ((Send.state == SendState.QUEUED.value) & (Send.updated_at < now - LEASE)) | (
        (Send.state == SendState.DEFERRED.value) & (Send.retry_at <= now)
    )
    rows = session.execute(
        select(Send.campaign_id, Send.id)
        .join(Campaign, Campaign.id == Send.campaign_id)
        .where(Campaign.status == CampaignStatus.SENDING.value, due)
        .order_by(Send.campaign_id, Send.id)
    ).all()
    batches: dict[int, list[int]] = {}
    for campaign_id, send_id in rows:
        batches.setdefault(campaign_id, []).append(send_id)
    return [
        (campaign_id, ids[i : i + batch_size])
        for campaign_id, ids in batches.items()
        for i in range(0, len(ids), batch_size)
    ]


# ---------------------------------------------------------------- listings (REST API, issue 12)
def list_campaigns(session: Session, *, after: int = 0, limit: int = 50) -> list[Campaign]:
    """Campaigns in id order after a cursor."""
    return list(session.scalars(select(Campaign).where(Campaign.id > after).order_by(Campaign.id).limit(limit)))


def list_sends(
    session: Session, *, campaign_id: int, state: str | None = None, after: int = 0, limit: int = 50
) -> list[Send]:
    """A campaign's sends in id order after a cursor, optionally in one state."""
    query = select(Send).where(Send.campaign_id == campaign_id, Send.id > after).order_by(Send.id).limit(limit)
    if state is not None:
        query = query.where(Send.state == state)
    return list(session.scalars(query))
