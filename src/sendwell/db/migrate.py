"""Run Alembic migrations from code, for `sendwell init`, `sendwell migrate`, the tests and CI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


class UnknownRevision(RuntimeError):
    """The database is at a revision this code does not know: a newer release migrated it."""

    def __init__(self, current: str, head: str) -> None:
        super().__init__(f"the database is at revision {current}, which this version of Sendwell does not know "
                         f"(its newest is {head}): refusing to downgrade; run the newer release")
        self.current, self.head = current, head


@dataclass(frozen=True)
class MigrationResult:
    before: str | None  # None: an empty database
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest revision this code ships."""
    head = ScriptDirectory.from_config(alembic_config(None)).get_current_head()  # type: ignore[arg-type]
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind `engine` to `revision`."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def migrate(engine: Engine) -> MigrationResult:
    """Upgrade to the newest schema; a no-op when already there. Raises UnknownRevision for a newer database."""
    head = head_revision()
    before = current_revision(engine)
    if before is not None:
        script = ScriptDirectory.from_config(alembic_config(engine))
        try:
            known = script.get_revision(before) is not None
        except Exception:  # alembic raises for an id it cannot resolve
            known = False
        if not known:
            raise UnknownRevision(before, head)
    if before != head:
        upgrade(engine)
    return MigrationResult(before=before, after=current_revision(engine) or head)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration file (a developer tool)."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)
