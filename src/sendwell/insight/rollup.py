"""Incremental aggregates: the scheduler folds new events (and finished campaigns' deliveries)
into `insight_counters`, so dashboard queries read a few thousand counters, not every event."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sendwell.db.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Event,
    InsightCounter,
    InsightCursor,
    Send,
    SendState,
)
from sendwell.insight.rates import DIMENSIONS, Rates

ROLLED_KINDS = ("unsubscribed", "complained", "bounced", "clicked", "opened")
ALL = "all"
CURSOR = "events"


def _dim_expr(dimension: str) -> Any:
    if dimension == ALL:
        return literal("")
    return func.coalesce(DIMENSIONS[dimension], "(unknown)")


def metric_name(kind: str, method: str | None, bounce_kind: str | None, first_click: Any,
                machine: Any = False) -> str | None:
    """The counter an event adds to, or None when it is not counted (a repeat click)."""
    if kind == "unsubscribed":
        return f"unsubscribed:{method or 'unknown'}"
    if kind == "bounced":
        return f"bounced:{bounce_kind}" if bounce_kind in ("hard", "soft") else None
    if kind in ("clicked", "opened"):
        # Only the first click (open) per send and verdict counts: the dashboards show people,
        # not clicks; machines (scanners, image proxies) have counters of their own.
        if first_click not in (True, 1, "true"):
            return None
        return f"{kind}:machine" if machine in (True, 1) else kind
    return kind


def _add(session: Session, rows: dict[tuple[int, str, str, str], int], *, replace: bool = False) -> None:
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = [{"campaign_id": c, "dimension": d, "value": v[:100], "metric": m, "count": n}
              for (c, d, v, m), n in rows.items()]
    for start in range(0, len(values), 500):
        stmt = insert(InsightCounter).values(values[start:start + 500])
        new_count = stmt.excluded.count if replace else InsightCounter.count + stmt.excluded.count
        session.execute(stmt.on_conflict_do_update(
            index_elements=["campaign_id", "dimension", "value", "metric"], set_={"count": new_count}))


def cursor(session: Session) -> int:
    return session.scalar(select(InsightCursor.last_id).where(InsightCursor.name == CURSOR)) or 0


def roll_up_events(session: Session, *, batch: int = 500_000) -> int:
    """Fold events after the cursor into the counters; returns how many event ids were covered."""
    last = cursor(session)
    newest = session.scalar(select(func.max(Event.id))) or 0
    upto = min(newest, last + batch)
    if upto <= last:
        return 0
    # One pass grouped by every dimension at once, split per dimension here: reading the
    # events (and their JSON) once is what costs, not the few thousand groups.
    bounce_kind = Event.data["kind"].as_string()
    first = Event.data["first"].as_boolean()
    dims = [func.coalesce(col, "(unknown)") for col in DIMENSIONS.values()]
    query = (
        select(Event.campaign_id, *dims, Event.kind, Event.method, bounce_kind, first, Event.machine, func.count())
        .select_from(Event)
        .outerjoin(Contact, Contact.id == Event.contact_id)
        .where(Event.id > last, Event.id <= upto, Event.campaign_id.is_not(None), Event.kind.in_(ROLLED_KINDS))
        .group_by(Event.campaign_id, *dims, Event.kind, Event.method, bounce_kind, first, Event.machine)
    )
    counts: dict[tuple[int, str, str, str], int] = defaultdict(int)
    names = list(DIMENSIONS)
    for row in session.execute(query):
        campaign_id, values, (kind, method, b_kind, is_first, machine, n) = \
            row[0], row[1:1 + len(names)], row[1 + len(names):]
        metric = metric_name(kind, method, b_kind, is_first, machine)
        if not metric:
            continue
        counts[(campaign_id, ALL, "", metric)] += n
        for name, value in zip(names, values):
            counts[(campaign_id, name, str(value), metric)] += n
    _add(session, counts)
    _set_cursor(session, upto)
    session.flush()
    return upto - last


def _tail_query(dimension: str, *, after: int, upto: int | None = None, campaign_id: int | None = None) -> Any:
    value = _dim_expr(dimension).label("value")
    bounce_kind = Event.data["kind"].as_string()
    first = Event.data["first"].as_boolean()
    query = (
        select(Event.campaign_id, value, Event.kind, Event.method, bounce_kind, first, Event.machine, func.count())
        .select_from(Event)
        .outerjoin(Contact, Contact.id == Event.contact_id)
        # `kind || ''`: SQLite would otherwise pick the (kind, campaign_id) index and scan every
        # event of those kinds; the primary-key range `id > after` is the narrow one here.
        .where(Event.id > after, Event.campaign_id.is_not(None), (Event.kind + "").in_(ROLLED_KINDS))
        .group_by(Event.campaign_id, value, Event.kind, Event.method, bounce_kind, first, Event.machine)
    )
    if upto is not None:
        query = query.where(Event.id <= upto)
    if campaign_id is not None:
        query = query.where(Event.campaign_id == campaign_id)
    return query


def _set_cursor(session: Session, last_id: int) -> None:
    row = session.get(InsightCursor, CURSOR)
    if row is None:
        session.add(InsightCursor(name=CURSOR, last_id=last_id))
    else:
        row.last_id = last_id


def move_counted(session: Session, moves: list[tuple[Event, str | None]]) -> None:
    """Re-count events already folded into the counters after their verdict changed.

    Each move names an event (with its new verdict and `first` flag) and the metric it was
    counted under before; events after the cursor need nothing, the next roll-up reads them.
    """
    last = cursor(session)
    counts: dict[tuple[int, str, str, str], int] = defaultdict(int)
    for event, old in moves:
        if event.id is None or event.id > last or event.campaign_id is None:
            continue
        new = metric_name(event.kind, event.method, None, (event.data or {}).get("first"), event.machine)
        if new == old:
            continue
        contact = session.get(Contact, event.contact_id) if event.contact_id is not None else None
        values = [(name, getattr(contact, name, None)) for name in DIMENSIONS]
        for metric, n in ((old, -1), (new, 1)):
            if metric is None:
                continue
            counts[(event.campaign_id, ALL, "", metric)] += n
            for name, value in values:
                counts[(event.campaign_id, name, "(unknown)" if value is None else str(value), metric)] += n
    _add(session, {key: n for key, n in counts.items() if n})


def roll_up_delivered(session: Session) -> int:
    """Count the delivered mails of campaigns that finished since the last run; returns how many campaigns."""
    ids = session.scalars(
        select(Campaign.id).where(Campaign.status.in_((CampaignStatus.FINISHED.value, CampaignStatus.CANCELLED.value)),
                                  Campaign.delivered_rolled_up_at.is_(None))
    ).all()
    names = list(DIMENSIONS)
    dims = [func.coalesce(col, "(unknown)") for col in DIMENSIONS.values()]
    for campaign_id in ids:
        counts: dict[tuple[int, str, str, str], int] = defaultdict(int)
        query = (select(*dims, func.count()).select_from(Send).outerjoin(Contact, Contact.id == Send.contact_id)
                 .where(Send.campaign_id == campaign_id, Send.state == SendState.SENT.value).group_by(*dims))
        for row in session.execute(query):
            values, n = row[:-1], row[-1]
            counts[(campaign_id, ALL, "", "delivered")] += n
            for name, value in zip(names, values):
                counts[(campaign_id, name, str(value), "delivered")] += n
        _add(session, counts, replace=True)
        session.get(Campaign, campaign_id).delivered_rolled_up_at = datetime.now(timezone.utc)  # type: ignore[union-attr]
    session.flush()
    return len(ids)


def roll_up(session: Session) -> dict[str, int]:
    """One scheduler pass."""
    events = 0
    while True:
        done = roll_up_events(session)
        events += done
        if not done:
            break
    return {"events": events, "campaigns": roll_up_delivered(session)}


def dashboard_breakdown(session: Session, *, dimension: str = ALL, campaign_id: int | None = None) -> dict[int, dict[str, Rates]]:
    """Rates per campaign and dimension value: counters, plus the events and deliveries not rolled up yet."""
    if dimension != ALL and dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r} (use all or one of {', '.join(DIMENSIONS)})")
    out: dict[int, dict[str, Rates]] = defaultdict(dict)

    def rates(cid: int, value: str) -> Rates:
        return out[cid].setdefault(value, Rates(key=value))

    counters = select(InsightCounter.campaign_id, InsightCounter.value, InsightCounter.metric, InsightCounter.count) \
        .where(InsightCounter.dimension == dimension)
    if campaign_id is not None:
        counters = counters.where(InsightCounter.campaign_id == campaign_id)
    for cid, value, metric, n in session.execute(counters):
        _apply(rates(cid, value), metric, n)
    # The tail: events after the cursor (a minute's worth) read live.
    after = cursor(session)
    if (session.scalar(select(func.max(Event.id))) or 0) > after:
        for cid, value, kind, method, bounce_kind, first, machine, n in session.execute(
                _tail_query(dimension, after=after, campaign_id=campaign_id)):
            metric = metric_name(kind, method, bounce_kind, first, machine)
            if metric:
                _apply(rates(cid, str(value)), metric, n)
    # Deliveries of campaigns not rolled up yet (still sending, or finished a moment ago).
    pending = select(Campaign.id).where(Campaign.delivered_rolled_up_at.is_(None))
    if campaign_id is not None:
        pending = pending.where(Campaign.id == campaign_id)
    pending_ids = session.scalars(pending).all()
    for start in range(0, len(pending_ids), 500):
        chunk = list(pending_ids[start:start + 500])
        value = _dim_expr(dimension).label("value")
        query = (select(Send.campaign_id, value, func.count()).select_from(Send)
                 .outerjoin(Contact, Contact.id == Send.contact_id)
                 .where(Send.campaign_id.in_(chunk), Send.state == SendState.SENT.value)
                 .group_by(Send.campaign_id, value))
        for cid, val, n in session.execute(query):
            rates(cid, str(val)).delivered += n
    return out


def _apply(rates: Rates, metric: str, n: int) -> None:
    if metric == "delivered":
        rates.delivered += n
    elif metric.startswith("unsubscribed:"):
        rates.unsubscribed += n
        method = metric.split(":", 1)[1]
        rates.unsubscribed_by_method[method] = rates.unsubscribed_by_method.get(method, 0) + n
    elif metric == "complained":
        rates.complained += n
    elif metric == "bounced:hard":
        rates.hard_bounced += n
    elif metric == "bounced:soft":
        rates.soft_bounced += n
    elif metric == "clicked":
        rates.clicked += n
    elif metric == "opened":
        rates.opened += n
    elif metric == "clicked:machine":
        rates.machine_clicked += n
    elif metric == "opened:machine":
        rates.machine_opened += n


def merged_by_value(per_campaign: dict[int, dict[str, Rates]]) -> list[Rates]:
    """Sum a dashboard breakdown over campaigns: one Rates per dimension value."""
    total: dict[str, Rates] = {}
    for groups in per_campaign.values():
        for value, r in groups.items():
            t = total.setdefault(value, Rates(key=value))
            t.delivered += r.delivered
            t.unsubscribed += r.unsubscribed
            for method, n in r.unsubscribed_by_method.items():
                t.unsubscribed_by_method[method] = t.unsubscribed_by_method.get(method, 0) + n
            t.complained += r.complained
            t.hard_bounced += r.hard_bounced
            t.soft_bounced += r.soft_bounced
            t.clicked += r.clicked
            t.opened += r.opened
            t.machine_clicked += r.machine_clicked
            t.machine_opened += r.machine_opened
    return sorted(total.values(), key=lambda r: (-r.delivered, r.key))
