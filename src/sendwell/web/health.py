"""Readiness checks (database, queue, keys) shared by GET /readyz and `sendwell health`."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from sendwell.config import Settings
from sendwell.keys import differing, recorded_fingerprints

# A probe answers within a container's health-check timeout even when a server hangs.
TIMEOUT_SECONDS = 3.0


def check_database(engine: Engine) -> str:
    """"ok", or why `SELECT 1` failed."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return _reason(exc)
    return "ok"


def check_queue(settings: Settings) -> str:
    """"ok" when Redis answers PING (scale-out) or the embedded queue's file opens."""
    try:
        if settings.queue_url.startswith(("redis://", "rediss://")):
            client = redis.Redis.from_url(settings.queue_url, socket_connect_timeout=TIMEOUT_SECONDS,
                                          socket_timeout=TIMEOUT_SECONDS)
            try:
                client.ping()
            finally:
                client.close()
            return "ok"
        path = (settings.data_dir / "queue.db").resolve()
        if not path.exists():
            # Not made yet (no process started the queue): the folder, or the nearest folder
            # that exists above it, must take it.
            folder = next(p for p in path.parents if p.exists())
            return "ok" if os.access(folder, os.W_OK) else f"cannot create {path}"
        conn = sqlite3.connect(str(path), timeout=TIMEOUT_SECONDS)
        try:
            conn.execute("SELECT 1")
        finally:
            conn.close()
    except Exception as exc:
        return _reason(exc)
    return "ok"


def check_keys(settings: Settings, engine: Engine | None = None) -> str:
    """"ok" when the secret key and pepper are set, a configured DKIM key file is readable and
    (with `engine`) the keys are the installation's: their fingerprints match the database's record."""
    missing = []
    if not settings.secret_key.strip(", "):
        missing.append("SENDWELL_SECRET_KEY is empty")
    if not settings.hash_pepper:
        missing.append("SENDWELL_HASH_PEPPER is empty")
    if settings.dkim_domain and settings.dkim_key_file:
        key = Path(settings.dkim_key_file)
        if not (key.is_file() and os.access(key, os.R_OK)):
            missing.append(f"DKIM key file {key} is not readable")
    if engine is not None and not missing:
        try:
            wrong = differing(settings, recorded_fingerprints(engine))
        except Exception as exc:
            wrong, missing = [], [f"cannot read the recorded key fingerprints: {_reason(exc)}"]
        if wrong:
            missing.append(f"this process's {', '.join(wrong)} differ from the installation's (recorded in the "
                           "database): copy sendwell.env and the DKIM key from an existing machine")
    return "; ".join(missing) or "ok"


def readiness(settings: Settings, engine: Engine) -> dict[str, str]:
    """Each check's result: "ok" or the reason it failed."""
    database = check_database(engine)
    # The keys are compared with the database's record only when the database answers.
    return {"database": database, "queue": check_queue(settings),
            "keys": check_keys(settings, engine if database == "ok" else None)}


def failed(checks: dict[str, str]) -> list[str]:
    return [name for name, result in checks.items() if result != "ok"]


def _reason(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
