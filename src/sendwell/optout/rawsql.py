"""Hand-written SQL for the opt-out hot path, one text for SQLite and PostgreSQL.

The one-click POST is the busiest write in Sendwell and must be durable before its 200;
ORM statements cost ~0.3 ms each in Python, driver-level statements ~0.02 ms. Placeholders
are written `:name` (sqlite3's named style) and rewritten to `%(name)s` for psycopg;
`JSON(:name)` marks a JSON value (a cast on PostgreSQL).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

_JSON = re.compile(r"JSON\(:(\w+)\)")
_PARAM = re.compile(r"(?<![:\w]):(\w+)")


class Statement:
    """One SQL text, pre-rendered for each driver's parameter style."""

    def __init__(self, sql: str) -> None:
        self.sqlite = _JSON.sub(r":\1", sql)
        self.postgresql = _PARAM.sub(r"%(\1)s", _JSON.sub(r"CAST(:\1 AS json)", sql))

    def run(self, session: Session, **params: Any) -> list[tuple[Any, ...]]:
        """Execute on the session's connection (its transaction) and return all rows."""
        conn = session.connection()
        is_pg = conn.dialect.name == "postgresql"
        values = {k: _bind(v, is_pg) for k, v in params.items()}
        # The DB-API cursor directly: SQLAlchemy's result machinery costs more than the
        # statement itself here, and these statements need none of it.
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.postgresql if is_pg else self.sqlite, values)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()


def _bind(value: Any, is_pg: bool) -> Any:
    if isinstance(value, datetime):
        # The format SQLAlchemy's SQLite DateTime type writes and reads back (naive UTC).
        return value if is_pg else value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
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
