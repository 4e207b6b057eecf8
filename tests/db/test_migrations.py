"""Migrations run from empty to head and agree with the models, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from sendwell.db.models import Base
from sendwell.db.session import make_engine


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
    from sendwell.db.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(engine)
    upgrade(engine)  # a second run is a no-op, not an error
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    from alembic.script import ScriptDirectory

    from sendwell.db.migrate import MIGRATIONS

    assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()  # one head: a linear history
