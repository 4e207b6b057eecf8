"""Benchmark: what a warm-up plan adds to a claim — the day's first claim (it ranks the campaign) and the others.

Two campaigns of N sends each to the same kind of audience (a third each at gmail.com, outlook.com
and company domains; 10 % with a person's click): the first claimed without a plan, the second
under a plan whose allowance is a fifth of each group. Prints the day's first claim (ranking and
deferring the excess) and the mean of the following claims, with and without the plan.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from sendwell.campaigns.service import create_campaign
from sendwell.config import load_settings
from sendwell.db.migrate import upgrade
from sendwell.db.models import Consent, Contact, Event
from sendwell.db.session import make_engine, make_session_factory, transaction
from sendwell.delivery.claims import claim_sends
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.warmup import start_plan

PG_ADMIN_URL = os.environ.get("SENDWELL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
DOMAINS = ("gmail.com", "outlook.com", None)


def seed(factory, n: int) -> None:
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with transaction(factory) as s:
        for start in range(0, n, 10_000):
            rows = [{"email": f"buyer{i}@{DOMAINS[i % 3] or f'importer{i % 5000}.example'}", "email_hash": f"h{i}",
                     "tags": [], "custom": {}, "created_at": base + timedelta(seconds=i)}
                    for i in range(start, min(start + 10_000, n))]
            ids = list(s.scalars(insert(Contact).returning(Contact.id), rows))
            s.execute(insert(Consent), [{"contact_id": i, "kind": "express", "source": "bench", "obtained_at": base}
                                        for i in ids])
            s.execute(insert(Event), [{"kind": "clicked", "contact_id": i, "occurred_at": NOW - timedelta(days=i % 90),
                                       "machine": False, "data": {}} for i in ids[::10]])


def campaign(factory, settings) -> int:
    with transaction(factory) as s:
        c = create_campaign(s, settings=settings, name="bench", subject="bench", html="<p>Hi</p>")
        plan_campaign(s, campaign=c, settings=settings, now=NOW - timedelta(hours=1))
        queue_campaign(s, campaign=c)
        return c.id


def claims(factory, campaign_id: int, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        with transaction(factory) as s:
            claim_sends(s, campaign_id=campaign_id, now=NOW)
        times.append(time.perf_counter() - t)
    return times


def run(url: str, n: int, rounds: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings(database_url=url, secret_key="bench-secret-key-0123456789", hash_pepper="bench-pepper",
                             stage_caps="new_lead=100/1d,prospect=100/1d,customer=100/1d")
    factory = make_session_factory(engine)
    seed(factory, n)
    plain = claims(factory, campaign(factory, settings), rounds + 1)
    second = campaign(factory, settings)
    with transaction(factory) as s:
        start_plan(s, target="bench.example", schedule={"*": [n // 15]}, start=NOW.date())
    warm = claims(factory, second, rounds + 1)
    base, held = statistics.mean(plain[1:]) * 1000, statistics.mean(warm[1:]) * 1000
    print(f"{engine.dialect.name}: {n:,} sends; first claim of the day {plain[0] * 1000:.0f} ms without a plan, "
          f"{warm[0] * 1000:.0f} ms with one (ranks {n:,} sends, defers the excess); "
          f"later claims of 200: {base:.1f} ms without, {held:.1f} ms with (ratio {held / base:.2f})")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--postgresql", action="store_true", help="also on PostgreSQL (a scratch database)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.sends, args.rounds)
    if args.postgresql:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS sendwell_bench_warmup WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE sendwell_bench_warmup"))
        try:
            run(PG_ADMIN_URL.rsplit("/", 1)[0] + "/sendwell_bench_warmup", args.sends, args.rounds)
        finally:
            with admin.connect() as conn:
                conn.execute(text("DROP DATABASE IF EXISTS sendwell_bench_warmup WITH (FORCE)"))
            admin.dispose()


if __name__ == "__main__":
    main()
