"""Migrations run from empty to head and agree with the models, on every backend."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sendwell.db.migrate import alembic_config, upgrade
from sendwell.db.models import (
    Base,
    Campaign,
    Consent,
    Contact,
    Event,
    Send,
    Subscription,
    Suppression,
    Topic,
)
from sendwell.db.session import make_engine
from tests.helpers import make_contact


def test_migrated_schema_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"
    expected = {"contacts", "topics", "subscriptions", "consents", "segments", "campaigns",
                "sends", "events", "suppressions", "alerts", "outbox", "vocabulary", "api_tokens",
                "insight_counters", "webhook_deliveries", "alembic_version"}
    assert expected <= tables


def test_upgrade_from_empty_on_a_new_sqlite_file(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(engine)
    upgrade(engine)  # a second run is a no-op, not an error
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    from alembic.script import ScriptDirectory

    from sendwell.db.migrate import MIGRATIONS

    assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()  # one head: a linear history


def test_addresses_differing_in_case_are_merged_into_the_oldest_contact(db_url: str) -> None:
    """Migration 0021: duplicates by letter case become one contact, nothing of theirs lost."""
    engine = make_engine(db_url)
    config = alembic_config(engine)
    with engine.begin() as connection:  # back to the revision before, where duplicates could exist
        config.attributes["connection"] = connection
        command.downgrade(config, "0020")
    with Session(engine) as session:
        old = make_contact(session, email="Anna@licht.example", tags=["fair"], custom={"a": "old"})
        dup = make_contact(session, email="anna@licht.example", tags=["vip"], custom={"a": "new", "b": "2"})
        other = make_contact(session, email="bob@acme.example")
        topic = Topic(slug="led", name="LED")
        first, second = (Campaign(name=n, subject="s", html="<p>x</p>") for n in ("one", "two"))
        session.add_all([topic, first, second])
        session.flush()
        session.add_all([
            Subscription(contact_id=old.id, topic_id=topic.id, status="subscribed"),
            Subscription(contact_id=dup.id, topic_id=topic.id, status="unsubscribed"),
            Send(contact_id=old.id, campaign_id=first.id), Send(contact_id=dup.id, campaign_id=first.id),
            Send(contact_id=dup.id, campaign_id=second.id),
            Suppression(email_hash=dup.email_hash, reason="unsubscribe", contact_id=dup.id),
        ])
        session.flush()
        dup_send = session.scalar(select(Send.id).where(Send.contact_id == dup.id, Send.campaign_id == first.id))
        session.add(Event(kind="click", contact_id=dup.id, send_id=dup_send))
        session.commit()
        ids = (old.id, dup.id, other.id)
        campaign_ids = [first.id, second.id]
    upgrade(engine)
    with Session(engine) as session:
        contacts = session.scalars(select(Contact).order_by(Contact.id)).all()
        assert [c.id for c in contacts] == [ids[0], ids[2]]
        kept = contacts[0]
        assert kept.email == "Anna@licht.example" and kept.tags == ["fair", "vip"]
        assert kept.custom == {"a": "old", "b": "2"}
        assert session.scalar(select(Subscription.status).where(Subscription.contact_id == kept.id)) == "unsubscribed"
        assert len(session.scalars(select(Consent).where(Consent.contact_id == kept.id)).all()) == 2
        sends = session.scalars(select(Send).where(Send.contact_id == kept.id)).all()
        assert sorted(s.campaign_id for s in sends) == campaign_ids
        event = session.scalars(select(Event).where(Event.kind == "click")).one()
        assert event.contact_id == kept.id and event.send_id in {s.id for s in sends}
        assert session.scalar(select(Suppression.contact_id)) == kept.id
        session.add(Contact(email="ANNA@licht.example", email_hash=kept.email_hash))
        with pytest.raises(IntegrityError):
            session.flush()
    engine.dispose()
