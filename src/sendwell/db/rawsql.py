"""Driver-level SQL for the hot paths: one statement text for SQLite and PostgreSQL, run on the DB-API cursor.

The one-click POST and the deliverer's per-mail statements must be durable before they
answer; ORM statements cost ~0.3 ms each in Python, driver-level statements ~0.02 ms, and
SQLAlchemy's execution and result layers cost several times the statement itself there
(cProfile of a deliverer: ~0.3 ms of ~2.4 ms per mail). Placeholders are written `:name`
(sqlite3's named style) and rewritten to `%(name)s` for psycopg; `JSON(:name)` marks a JSON
value (a cast on PostgreSQL).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

_JSON = re.compile(r"JSON\(:(\w+)\)")
_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def driver_cursor(conn: Connection) -> Any:
    """A DB-API cursor of a SQLAlchemy Connection, in its transaction; made once per connection."""
    cursor = conn.info.get("sendwell_cursor")
    if cursor is None:
        cursor = conn.info["sendwell_cursor"] = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    return cursor


class Statement:
    """One SQL text, pre-rendered for each driver's parameter style."""

    def __init__(self, sql: str) -> None:
        self.sqlite = _JSON.sub(r":\1", sql)
        self.postgresql = _PARAM.sub(r"%(\1)s", _JSON.sub(r"CAST(:\1 AS json)", sql))

    def execute(self, conn: Connection, **params: Any) -> Any:
        """Execute on the connection (its transaction); the cursor, for `rowcount` or `fetchone`."""
        is_pg = conn.dialect.name == "postgresql"
        cursor = driver_cursor(conn)
        cursor.execute(self.postgresql if is_pg else self.sqlite, {k: _bind(v, is_pg) for k, v in params.items()})
        return cursor

    def run(self, session: Session, **params: Any) -> list[tuple[Any, ...]]:
        """Execute on the session's connection (its transaction) and return all rows."""
        cursor = self.execute(session.connection(), **params)
        return list(cursor.fetchall()) if cursor.description else []


def db_time(value: datetime, *, is_pg: bool) -> Any:
    """A timestamp as the driver should bind it: SQLAlchemy's SQLite DateTime text (naive UTC), else as is."""
    if is_pg:
        return value
    # isoformat is C and a fifth of strftime's cost; the same text for a UTC time.
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def _bind(value: Any, is_pg: bool) -> Any:
    if isinstance(value, datetime):
        return db_time(value, is_pg=is_pg)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def read_datetime(value: Any) -> datetime | None:
    """A timestamp column read through the driver, as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
