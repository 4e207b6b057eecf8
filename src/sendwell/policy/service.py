"""Frequency policy around planning and claiming: the planning lock, cap deferrals, sending windows."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from sendwell.db.models import Campaign, CampaignKind, Contact, Event, Send, SendState
from sendwell.policy.caps import TIERS, FrequencyPolicy, PolicyError
from sendwell.policy.eligibility import DEFER_FREQUENCY_CAP, DEFER_SEND_WINDOW, IN_FLIGHT, SKIP_FREQUENCY_CAP
from sendwell.policy.windows import window_for, zone_for

# Any constant works; it only has to be the same for every process planning on this database.
PLAN_LOCK_KEY = 0x53454E44_574C  # "SENDWL"


def lock_planning(session: Session) -> None:
    """Serialise campaign planning so two plans can never both fill a contact's last cap slot.

    Why one lock per plan and not per contact: a plan is a single INSERT … SELECT over up to
    millions of contacts; locking each contact row (SELECT … FOR UPDATE in id order) would
    write a lock into every row and cost more than the plan itself, while plans are rare
    and take seconds, so queueing them behind each other costs nothing. The lock is
    transaction-scoped and taken before the INSERT, whose READ COMMITTED snapshot then sees
    every send the previous plan committed. Claim-time re-checks need no lock: they only
    move existing sends out of flight, and in-flight sends already count toward caps.
    SQLite needs nothing: BEGIN IMMEDIATE (db/session.py) already makes writers take turns.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(PLAN_LOCK_KEY)))
        # The plan's INSERT … SELECT is costed high enough to trigger JIT compilation, which
        # takes ~0.5 s and gains nothing on per-row CASE/EXISTS work (measured, bench/plan.py).
        session.execute(text("SET LOCAL jit = off"))


def earliest_allowed(
    session: Session, *, policy: FrequencyPolicy, send_ids: list[int], now: datetime
) -> dict[int, datetime]:
    """For capped sends: the earliest time each could go out without breaking any cap.

    A cap of N per window W frees a slot when the N-th most recent counted mail leaves the
    window; in-flight mails count as going out now, so their slot frees at now + W at the
    earliest (the claim-time re-check moves the send on again if they went out later).
    """
    if not send_ids:
        return {}
    longest = timedelta(seconds=max(policy.windows_in_use(), default=0))
    me, other = aliased(Send), aliased(Send)
    transactional = select(Campaign.id).where(Campaign.kind == CampaignKind.TRANSACTIONAL.value)
    rows = session.execute(
        select(me.id, Contact.stage, Contact.frequency_tier, other.state, other.sent_at)
        .join(Contact, Contact.id == me.contact_id)
        .outerjoin(other, and_(
            other.contact_id == me.contact_id,
            other.campaign_id.not_in(transactional),
            or_(and_(other.state == SendState.SENT.value, other.sent_at > now - longest),
                and_(other.state.in_(IN_FLIGHT), other.id < me.id)),
        ))
        .where(me.id.in_(bindparam("ids", expanding=True))),
        {"ids": send_ids},
    ).all()
    times: dict[int, list[datetime]] = defaultdict(list)
    who: dict[int, tuple[str, str]] = {}
    for send_id, stage, tier, state, sent_at in rows:
        who[send_id] = (stage, tier)
        if state is not None:
            times[send_id].append(sent_at if state == SendState.SENT.value and sent_at else now)
    result: dict[int, datetime] = {}
    for send_id, (stage, tier) in who.items():
        allowed = now
        for cap in policy.caps_for(stage, tier):
            recent = sorted((t for t in times[send_id] if t > now - cap.delta), reverse=True)
            if len(recent) >= cap.count:
                allowed = max(allowed, (recent[cap.count - 1] if cap.count else now) + cap.delta)
        # A cap of 0 never frees a slot; a minute's nudge keeps the retry strictly in the future.
        result[send_id] = max(allowed, now + timedelta(minutes=1))
    return result


def defer_sends(session: Session, *, retry: dict[int, datetime], reason: str, now: datetime) -> None:
    """Move sends to `deferred` until their retry time, noting why in skip_reason."""
    if not retry:
        return
    session.execute(
        update(Send),
        [{"id": i, "state": SendState.DEFERRED.value, "retry_at": t, "skip_reason": reason,
          "lease_until": None, "updated_at": now} for i, t in retry.items()],
    )


def defer_over_cap(session: Session, *, campaign: Campaign, policy: FrequencyPolicy, now: datetime) -> int:
    """In `defer` mode, turn the plan's frequency_cap skips into deferrals; returns how many."""
    if campaign.over_cap != "defer":
        return 0
    ids = list(session.scalars(select(Send.id).where(
        Send.campaign_id == campaign.id, Send.state == SendState.SKIPPED.value,
        Send.skip_reason == SKIP_FREQUENCY_CAP)))
    total = 0
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        defer_sends(session, retry=earliest_allowed(session, policy=policy, send_ids=chunk, now=now),
                    reason=DEFER_FREQUENCY_CAP, now=now)
        total += len(chunk)
    return total


def defer_outside_window(
    session: Session, *, campaign: Campaign, policy: FrequencyPolicy, now: datetime, send_ids: list[int] | None = None
) -> list[int]:
    """Sends whose recipient is outside their local sending window wait for its next opening.

    Planning passes no ids (every `planned` send of the campaign); claiming passes the batch.
    Contacts are grouped by (timezone, country, region), so a million sends cost one
    GROUP BY and one UPDATE per zone outside its window. Returns the ids deferred when ids
    were given.
    """
    if not policy.windows:
        return []
    if send_ids is not None:
        rows = session.execute(
            select(Send.id, Contact.timezone, Contact.country, Contact.region)
            .join(Contact, Contact.id == Send.contact_id).where(Send.id.in_(send_ids))
        ).all()
        retry = {}
        for send_id, tz, country, region in rows:
            window = window_for(policy.windows, region)
            if window is not None:
                opening = window.next_opening(now, zone_for(tz, country, region))
                if opening > now:
                    retry[send_id] = opening
        defer_sends(session, retry=retry, reason=DEFER_SEND_WINDOW, now=now)
        return list(retry)
    groups = session.execute(
        select(Contact.timezone, Contact.country, Contact.region)
        .join(Send, Send.contact_id == Contact.id)
        .where(Send.campaign_id == campaign.id, Send.state == SendState.PLANNED.value)
        .group_by(Contact.timezone, Contact.country, Contact.region)
    ).all()
    for tz, country, region in groups:
        window = window_for(policy.windows, region)
        if window is None:
            continue
        opening = window.next_opening(now, zone_for(tz, country, region))
        if opening <= now:
            continue
        in_group = select(Contact.id).where(Contact.timezone == tz, Contact.country == country, Contact.region == region)
        session.execute(
            update(Send)
            .where(Send.campaign_id == campaign.id, Send.state == SendState.PLANNED.value,
                   Send.contact_id.in_(in_group))
            .values(state=SendState.DEFERRED.value, retry_at=opening, skip_reason=DEFER_SEND_WINDOW, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return []


_UNSET: Any = object()


def set_frequency_preference(
    session: Session, *, contact_id: int, tier: str | None = None, paused_until: datetime | None = _UNSET,
    method: str = "preference_center", now: datetime | None = None,
) -> dict[str, Any]:
    """The recipient's own frequency choice (tier and/or pause); records `preferences_changed`.

    The seam for the preference center and the API: they call this, nothing else
    writes `frequency_tier` or `paused_until`. `paused_until=None` ends a pause now.
    Returns the changes made ({} when nothing changed).
    """
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise PolicyError(f"no contact with id {contact_id}")
    changes: dict[str, Any] = {}
    if tier is not None:
        if tier not in TIERS:
            raise PolicyError(f"unknown frequency tier {tier!r} (use one of {', '.join(TIERS)})")
        if tier != contact.frequency_tier:
            changes["frequency_tier"] = [contact.frequency_tier, tier]
            contact.frequency_tier = tier
    if paused_until is not _UNSET and paused_until != contact.paused_until:
        changes["paused_until"] = [_iso(contact.paused_until), _iso(paused_until)]
        contact.paused_until = paused_until
    if changes:
        when = now or datetime.now(timezone.utc)
        # A preference change is engagement for the sunset flow (docs/hygiene.md).
        if contact.last_engaged_at is None or contact.last_engaged_at < when:
            contact.last_engaged_at = when
        session.add(Event(kind="preferences_changed", contact_id=contact_id, method=method,
                          data={"changes": changes}, occurred_at=when))
        session.flush()
    return changes


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
