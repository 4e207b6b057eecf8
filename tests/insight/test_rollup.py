"""The roll-up's dashboard figures equal the exact live query, before, during and after roll-up."""

from __future__ import annotations

from datetime import datetime, timezone

from sendwell.db.models import Event
from sendwell.insight.rates import breakdown
from sendwell.insight.rollup import dashboard_breakdown, merged_by_value, roll_up, roll_up_events
from tests.insight.test_alerts import add_events, make_sent_campaign


def _same(session, dimension: str) -> None:
    live = {r.key: r.as_dict() for r in breakdown(session, dimension=dimension)}
    fast = {r.key: r.as_dict() for r in merged_by_value(dashboard_breakdown(session, dimension=dimension))}
    assert fast == live


def test_fast_figures_equal_the_live_query(session) -> None:
    done, people = make_sent_campaign(session, delivered=60, status="finished", finished_at=datetime.now(timezone.utc),
                                      contact_fields=lambda i: {"country": ("DE", "US", "GB")[i % 3],
                                                                "stage": ("new_lead", "customer")[i % 2]})
    add_events(session, done, people[:10], "unsubscribed", 10, method="one_click")
    add_events(session, done, people[10:14], "unsubscribed", 4, method="page")
    add_events(session, done, people[20:23], "bounced", 3, kind="hard")
    add_events(session, done, people[30:31], "complained", 1)
    for contact in people[40:45]:
        session.add(Event(kind="clicked", contact_id=contact.id, campaign_id=done.id, data={"first": True}))
        session.add(Event(kind="clicked", contact_id=contact.id, campaign_id=done.id, data={"first": False}))
    session.flush()
    live, more = make_sent_campaign(session, delivered=30, status="sending", name="live")
    add_events(session, live, more, "unsubscribed", 2)
    for dim in ("stage", "region", "country"):
        _same(session, dim)  # nothing rolled up: all from the tail and live deliveries
    roll_up_events(session, batch=7)  # part of the events rolled, the rest is tail
    _same(session, "region")
    assert roll_up(session)["campaigns"] == 1  # the finished campaign's deliveries are now counters
    add_events(session, live, more[5:], "unsubscribed", 3, method="mailto")  # new tail after the roll-up
    for dim in ("stage", "region", "country", "industry", "language"):
        _same(session, dim)
    totals = dashboard_breakdown(session, dimension="all")
    assert totals[done.id][""].delivered == 60 and totals[done.id][""].unsubscribed == 14
    assert totals[done.id][""].clicked == 5
