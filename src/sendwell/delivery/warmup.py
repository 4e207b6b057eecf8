"""Warm-up plans: a new sending domain or IP sends each provider group a growing daily allowance, engaged first.

How it holds under several workers (docs/delivery.md, "Warm-up"):

- The allowance is a counter in the database, one row per plan × day × provider group. A
  claim locks the rows it needs (SELECT … FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
  already makes writers take turns), grants what is left and adds it, in the claim's own
  transaction: two claimers never both take the last slot.
- Engaged first: the first claim of a day for a campaign ranks the campaign's open sends
  of each group (latest human click or open, then newest signup) and stores, per group, the
  rank of the last send that fits today's allowance. Sends ranked below it wait for
  tomorrow at once; a claimer holding a batch at that moment checks its sends against the
  stored rank. The ranking row is unique per plan × campaign × day, so one claimer ranks.
- Lock order is rankings (by plan), then counters (by group, then plan), the same in every
  claimer; the ranking defers only rows nobody holds (SKIP LOCKED), so it never waits on a
  claimer that waits on it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from fnmatch import translate
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sendwell.db.models import (
    Campaign,
    CampaignKind,
    Contact,
    Event,
    ProviderMx,
    Send,
    SendState,
    WarmupPlan,
    WarmupRanking,
    WarmupUsage,
)
from sendwell.delivery.providers import OTHER, ProviderGroups
from sendwell.policy.caps import FrequencyPolicy
from sendwell.policy.service import defer_sends
from sendwell.policy.windows import window_for, zone_for

DEFER_WARM_UP = "warm_up"
EVERY_GROUP = "*"
# Mails per provider group per day, day 1 to day 30; the plan ends after the last day.
# The shape of the published warm-up guides of large senders and ESPs: a few dozen mails to
# each mailbox provider on day one, about doubling while the volume is small, then +20–30 %
# a day, reaching six figures a day in about a month (docs/delivery.md, "Warm-up").
DEFAULT_SCHEDULE = (50, 100, 200, 400, 600, 800, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 7_000,
                    8_000, 10_000, 12_000, 14_000, 16_000, 18_000, 20_000, 25_000, 30_000, 35_000, 40_000, 50_000,
                    60_000, 75_000, 100_000)

# The built-in groups' globs (matched on the domain's name; no DNS), one regular expression per
# group: a day's first claim groups every domain of a campaign, often tens of thousands, and
# fnmatch glob by glob costs a third of a millisecond per domain.
_BY_NAME = [(group, re.compile("|".join(f"(?:{translate(g)})" for g in globs)))
            for group, globs in ProviderGroups().patterns]


@lru_cache(maxsize=65536)
def _group_by_name(domain: str) -> str | None:
    return next((group for group, pattern in _BY_NAME if pattern.match(domain)), None)


def provider_groups(session: Session, domains: set[str]) -> dict[str, str]:
    """Each recipient domain's provider group (delivery/providers.py), without waiting for DNS.

    By name first (gmail.com, qq.com, …), else by the MX hosts delivery last stored for the domain
    (table provider_mx, however old): a claim holds row locks and must never wait on a lookup. A
    company domain nobody has looked up yet counts as "other" until the throttle has looked it up.
    """
    groups: dict[str, str] = {}
    unknown = []
    for domain in domains:
        group = _group_by_name(domain)
        if group is None:
            unknown.append(domain)
        else:
            groups[domain] = group
    for start in range(0, len(unknown), 1000):
        chunk = unknown[start : start + 1000]
        groups.update(session.execute(select(ProviderMx.domain, ProviderMx.provider)
                                      .where(ProviderMx.domain.in_(chunk))).all())
    return {d: groups.get(d, OTHER) for d in domains}


class WarmupError(ValueError):
    """A warm-up plan cannot be started, read or stopped as asked."""


def parse_schedule(text: str, *, setting: str = "--schedule") -> dict[str, list[int]]:
    """`50,100,200` for every group, `;google=20,40,80` overrides per group → {"*": […], "google": […]}."""
    schedule: dict[str, list[int]] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, numbers = part.partition("=")
        group = name.strip().lower() if sep else EVERY_GROUP
        if sep and not group.replace("-", "").replace("_", "").isalnum():
            raise WarmupError(f"{setting}: {name.strip()!r} is not a provider group name")
        if group in schedule:
            raise WarmupError(f"{setting}: the schedule of {group!r} is given twice")
        days: list[int] = []
        for index, item in enumerate((numbers if sep else part).split(","), start=1):
            item = item.strip()
            if not item.isdigit() or int(item) < 1:
                where = f"{group}'s " if sep else ""
                raise WarmupError(f"{setting}: {item!r} ({where}day {index}) is not a whole number of mails above 0")
            days.append(int(item))
        schedule[group] = days
    if not schedule:
        raise WarmupError(f"{setting}: the schedule is empty")
    schedule.setdefault(EVERY_GROUP, list(DEFAULT_SCHEDULE))
    return schedule


def default_schedule(setting_text: str = "") -> dict[str, list[int]]:
    """The schedule of a new plan: SENDWELL_WARMUP_SCHEDULE when set, else the built-in one."""
    if setting_text.strip():
        return parse_schedule(setting_text, setting="SENDWELL_WARMUP_SCHEDULE")
    return {EVERY_GROUP: list(DEFAULT_SCHEDULE)}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def plan_day(plan: WarmupPlan, now: datetime) -> int:
    """0 on the plan's first (UTC) day; negative before it starts."""
    return (now.astimezone(timezone.utc).date() - plan.starts_at.astimezone(timezone.utc).date()).days


def plan_length(plan: WarmupPlan) -> int:
    return max((len(days) for days in plan.schedule.values()), default=0)


def allowance(plan: WarmupPlan, group: str, day: int) -> int | None:
    """The group's allowance on day `day` (0-based), or None when the plan no longer limits it."""
    days = plan.schedule.get(group) or plan.schedule.get(EVERY_GROUP) or []
    return days[day] if 0 <= day < len(days) else None


def plan_state(plan: WarmupPlan, now: datetime) -> str:
    """stopped | scheduled (starts later) | active | ended (past its last day)."""
    if plan.stopped_at is not None:
        return "stopped"
    day = plan_day(plan, now)
    if day < 0:
        return "scheduled"
    return "active" if day < plan_length(plan) else "ended"


def active_plans(session: Session, *, now: datetime) -> list[WarmupPlan]:
    """The plans limiting mail today, in id order."""
    plans = session.scalars(select(WarmupPlan).where(WarmupPlan.stopped_at.is_(None)).order_by(WarmupPlan.id))
    return [p for p in plans if plan_state(p, now) == "active"]


def start_plan(session: Session, *, target: str, kind: str = "domain", schedule: dict[str, list[int]],
               start: date, now: datetime | None = None) -> WarmupPlan:
    """Start warming `target` (a domain or an IP) from day `start`; one running plan per target."""
    now = now or datetime.now(timezone.utc)
    target = target.strip().lower().rstrip(".")
    if kind not in ("domain", "ip") or not target:
        raise WarmupError("give a sending domain or an IP to warm up")
    for running in session.scalars(select(WarmupPlan).where(
            WarmupPlan.target_kind == kind, WarmupPlan.target == target, WarmupPlan.stopped_at.is_(None))):
        if plan_state(running, now) == "ended":
            continue
        raise WarmupError(f"{kind} {target} already has a warm-up plan (#{running.id}, started "
                          f"{running.starts_at:%Y-%m-%d}): stop it first")
    plan = WarmupPlan(target_kind=kind, target=target, starts_at=_midnight(start), schedule=schedule, created_at=now)
    session.add(plan)
    session.flush()
    return plan


def stop_plan(session: Session, *, plan_id: int | None = None, target: str | None = None,
              now: datetime | None = None) -> tuple[WarmupPlan, int]:
    """Stop a plan (by id, or the running one of a target); returns it and how many waiting sends now go.

    The sends waiting for warm-up become due at once when no plan is left to limit them.
    """
    now = now or datetime.now(timezone.utc)
    query = select(WarmupPlan).where(WarmupPlan.stopped_at.is_(None)).order_by(WarmupPlan.id.desc())
    if plan_id is not None:
        query = query.where(WarmupPlan.id == plan_id)
    elif target is not None:
        query = query.where(WarmupPlan.target == target.strip().lower().rstrip("."))
    plans = list(session.scalars(query))
    if not plans:
        raise WarmupError(f"no running warm-up plan {'#' + str(plan_id) if plan_id else 'for ' + target if target else ''}"
                          .rstrip())
    if plan_id is None and target is None and len(plans) > 1:
        raise WarmupError(f"{len(plans)} plans are running ({', '.join('#' + str(p.id) for p in plans)}): "
                          "say which with --id, --domain or --ip")
    plan = plans[0]
    plan.stopped_at = now
    session.flush()
    if active_plans(session, now=now):
        return plan, 0
    released = session.execute(
        update(Send).where(Send.state == SendState.DEFERRED.value, Send.skip_reason == DEFER_WARM_UP)
        # updated_at stays older than retry_at, so the worker's next scan hands them over (claims.due_batches).
        .values(retry_at=now).execution_options(synchronize_session=False)).rowcount
    return plan, released


def waiting_by_campaign(session: Session) -> list[dict[str, Any]]:
    """Per campaign, how many sends wait for warm-up."""
    rows = session.execute(
        select(Campaign.id, Campaign.name, func.count()).join(Send, Send.campaign_id == Campaign.id)
        .where(Send.state == SendState.DEFERRED.value, Send.skip_reason == DEFER_WARM_UP)
        .group_by(Campaign.id, Campaign.name).order_by(Campaign.id)).all()
    return [{"campaign_id": i, "name": name, "waiting": n} for i, name, n in rows]


def waiting_count(session: Session, *, campaign_id: int | None = None) -> int:
    """Sends deferred for warm-up (of one campaign, or all)."""
    query = select(func.count()).select_from(Send).where(
        Send.state == SendState.DEFERRED.value, Send.skip_reason == DEFER_WARM_UP)
    if campaign_id is not None:
        query = query.where(Send.campaign_id == campaign_id)
    return session.scalar(query) or 0


def plan_status(session: Session, *, now: datetime | None = None, include_stopped: bool = False) -> list[dict[str, Any]]:
    """Each plan with its day and, per provider group, today's allowance, used and remaining."""
    now = now or datetime.now(timezone.utc)
    query = select(WarmupPlan).order_by(WarmupPlan.id)
    if not include_stopped:
        query = query.where(WarmupPlan.stopped_at.is_(None))
    result = []
    for plan in session.scalars(query):
        day = plan_day(plan, now)
        used = dict(session.execute(select(WarmupUsage.provider_group, WarmupUsage.used).where(
            WarmupUsage.plan_id == plan.id, WarmupUsage.day == day)).all())
        groups = []
        for group in sorted(set(used) | set(plan.schedule), key=lambda g: (g == EVERY_GROUP, g)):
            limit = allowance(plan, group, day)
            taken = used.get(group, 0)
            groups.append({"group": group, "allowance": limit, "used": taken,
                           "remaining": None if limit is None else max(limit - taken, 0)})
        result.append({
            "id": plan.id, "kind": plan.target_kind, "target": plan.target, "state": plan_state(plan, now),
            "start_date": plan.starts_at.date().isoformat(), "day": day + 1, "days": plan_length(plan),
            "stopped_at": plan.stopped_at.isoformat() if plan.stopped_at else None,
            "groups": groups, "schedule": plan.schedule,
        })
    return result


# ---------------------------------------------------------------- enforcement at claim time

@dataclass(frozen=True)
class _Row:
    send_id: int
    group: str
    rank: list[float]
    zone: tuple[str, str, str]


def _rank(engaged: datetime | None, created: datetime | None, send_id: int) -> list[float]:
    """Smaller goes first: engaged people by their latest engagement, then the rest by newest signup."""
    signup = -created.timestamp() if created is not None else 0.0
    if engaged is not None:
        return [0, -engaged.timestamp(), signup, send_id]
    return [1, 0.0, signup, send_id]


def _rows(session: Session, where: Any) -> list[_Row]:
    # Core, not the ORM: rows are only read, and the ORM's row loading doubled the time on large pools.
    conn = session.connection()
    rows = conn.execute(
        select(Send.id, Send.contact_id, Contact.email, Contact.last_engaged_at, Contact.created_at,
               Contact.timezone, Contact.country, Contact.region)
        .join(Contact, Contact.id == Send.contact_id).where(where)
    ).all()
    # A person's latest click or open (machines' excluded; insight tells them apart), looked up by
    # contact in chunks on the (contact, kind, time) index. A separate query on purpose: joined to
    # the pool, PostgreSQL with stale statistics re-ran the grouped events once per send (19 s for 6,000).
    contact_ids = [r[1] for r in rows]
    human: dict[int, Any] = {}
    for start in range(0, len(contact_ids), 1000):
        human.update(conn.execute(
            select(Event.contact_id, func.max(Event.occurred_at))
            .where(Event.contact_id.in_(contact_ids[start : start + 1000]), Event.kind.in_(("clicked", "opened")),
                   Event.machine.is_(False))
            .group_by(Event.contact_id)).all())
    groups = provider_groups(session, {_domain(r[2]) for r in rows})
    out = []
    for send_id, contact_id, email, engaged, created, tz, country, region in rows:
        # ...or their last engagement from elsewhere (a reply, a preference change), whichever is later.
        opened = _aware(human.get(contact_id))
        latest = max((t for t in (engaged, opened) if t is not None), default=None)
        out.append(_Row(send_id, groups[_domain(email)], _rank(latest, created, send_id), (tz, country, region)))
    return out


def _domain(email: str) -> str:
    return email.rpartition("@")[2].lower().rstrip(".")


def _aware(value: Any) -> datetime | None:
    # A bare aggregate over a UTC column comes back as text (SQLite) or a naive value.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _reopening(rows: list[_Row], *, policy: FrequencyPolicy, now: datetime) -> dict[int, datetime]:
    """Tomorrow (UTC), at the recipient's sending window opening when the campaign has windows."""
    tomorrow = _midnight(now.astimezone(timezone.utc).date() + timedelta(days=1))
    openings: dict[tuple[str, str, str], datetime] = {}
    retry = {}
    for row in rows:
        when = openings.get(row.zone)
        if when is None:
            window = window_for(policy.windows, row.zone[2]) if policy.windows else None
            when = openings[row.zone] = window.next_opening(tomorrow, zone_for(*row.zone)) if window else tomorrow
        retry[row.send_id] = when
    return retry


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _used(session: Session, plan_id: int, day: int, group: str, *, lock: bool) -> int:
    """The counter's value; with `lock`, the row is created if missing and held until commit."""
    if lock:
        session.execute(_insert(session)(WarmupUsage).values(plan_id=plan_id, day=day, provider_group=group, used=0)
                        .on_conflict_do_nothing(index_elements=["plan_id", "day", "provider_group"]))
    query = select(WarmupUsage.used).where(
        WarmupUsage.plan_id == plan_id, WarmupUsage.day == day, WarmupUsage.provider_group == group)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query) or 0


def _cutoffs(session: Session, *, plan: WarmupPlan, campaign: Campaign, day: int, send_ids: list[int],
             policy: FrequencyPolicy, now: datetime) -> dict[str, list[float]]:
    """Today's engaged-first cut of the campaign under this plan, made by the first claimer of the day."""
    made = session.scalar(
        _insert(session)(WarmupRanking).values(plan_id=plan.id, campaign_id=campaign.id, day=day, cutoffs={},
                                               created_at=now)
        .on_conflict_do_nothing(index_elements=["plan_id", "campaign_id", "day"]).returning(WarmupRanking.id))
    if made is None:  # another claimer ranked today (on PostgreSQL its INSERT made this one wait for its commit)
        return session.scalar(select(WarmupRanking.cutoffs).where(
            WarmupRanking.plan_id == plan.id, WarmupRanking.campaign_id == campaign.id,
            WarmupRanking.day == day)) or {}
    day_end = _midnight(now.astimezone(timezone.utc).date() + timedelta(days=1))
    # Every send of the campaign that could still go today: queued, due (or due later today), and this batch.
    # A plain read: sends another claimer holds right now show as queued and are ranked too.
    pool = _rows(session, (Send.campaign_id == campaign.id) & or_(
        Send.state == SendState.QUEUED.value,
        (Send.state == SendState.DEFERRED.value) & (Send.retry_at < day_end),
        Send.id.in_(send_ids)))
    by_group: dict[str, list[_Row]] = defaultdict(list)
    for row in pool:
        by_group[row.group].append(row)
    cutoffs: dict[str, list[float]] = {}
    later: list[_Row] = []
    batch = set(send_ids)
    for group, rows in by_group.items():
        limit = allowance(plan, group, day)
        if limit is None:
            continue
        room = max(limit - _used(session, plan.id, day, group, lock=False), 0)
        if len(rows) <= room:
            continue
        rows.sort(key=lambda r: r.rank)
        cutoffs[group] = rows[room - 1].rank if room else [-1.0]  # [-1]: nobody of this group today
        later.extend(r for r in rows[room:] if r.send_id not in batch)
    session.execute(update(WarmupRanking).where(WarmupRanking.id == made).values(cutoffs=cutoffs))
    _defer_free(session, later, policy=policy, now=now)
    return cutoffs


def _defer_free(session: Session, rows: list[_Row], *, policy: FrequencyPolicy, now: datetime) -> None:
    """Send the ranked-out sends nobody holds to tomorrow; a held one is checked by its claimer.

    One UPDATE per retry time and thousand ids, not one per send: a first claim may defer
    most of a large campaign.
    """
    by_time: dict[datetime, list[int]] = defaultdict(list)
    for send_id, when in _reopening(rows, policy=policy, now=now).items():
        by_time[when].append(send_id)
    postgres = session.get_bind().dialect.name == "postgresql"
    for when, ids in by_time.items():
        for start in range(0, len(ids), 1000):
            free = select(Send.id).where(Send.id.in_(ids[start : start + 1000]),
                                         Send.state.in_((SendState.QUEUED.value, SendState.DEFERRED.value)))
            if postgres:
                free = free.with_for_update(skip_locked=True)
            session.execute(update(Send).where(Send.id.in_(free.scalar_subquery())).values(
                state=SendState.DEFERRED.value, retry_at=when, skip_reason=DEFER_WARM_UP, lease_until=None,
                updated_at=now).execution_options(synchronize_session=False))


def hold_for_warm_up(session: Session, *, campaign: Campaign, policy: FrequencyPolicy, now: datetime,
                     send_ids: list[int]) -> list[int]:
    """Claimed sends over today's warm-up allowance of their provider group wait for tomorrow; returns their ids.

    Transactional mail is never held: a receipt or a password mail must not wait a day.
    """
    if not send_ids or campaign.kind == CampaignKind.TRANSACTIONAL.value:
        return []
    plans = active_plans(session, now=now)
    if not plans:
        return []
    days = {p.id: plan_day(p, now) for p in plans}
    cuts = {p.id: _cutoffs(session, plan=p, campaign=campaign, day=days[p.id], send_ids=send_ids, policy=policy,
                           now=now) for p in plans}
    by_group: dict[str, list[_Row]] = defaultdict(list)
    for row in _rows(session, Send.id.in_(send_ids)):
        by_group[row.group].append(row)
    held: list[_Row] = []
    for group in sorted(by_group):
        rows = sorted(by_group[group], key=lambda r: r.rank)
        limited = [p for p in plans if allowance(p, group, days[p.id]) is not None]
        if not limited:
            continue
        fits = [r for r in rows if all(group not in cuts[p.id] or r.rank <= cuts[p.id][group] for p in limited)]
        room = min(allowance(p, group, days[p.id]) - _used(session, p.id, days[p.id], group, lock=True)  # type: ignore[operator]
                   for p in limited)
        go = fits[: max(room, 0)]
        if go:
            for p in limited:
                session.execute(update(WarmupUsage).where(
                    WarmupUsage.plan_id == p.id, WarmupUsage.day == days[p.id], WarmupUsage.provider_group == group)
                    .values(used=WarmupUsage.used + len(go)))
        chosen = {r.send_id for r in go}
        held.extend(r for r in rows if r.send_id not in chosen)
    defer_sends(session, retry=_reopening(held, policy=policy, now=now), reason=DEFER_WARM_UP, now=now)
    return [r.send_id for r in held]
