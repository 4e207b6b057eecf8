"""Benchmark: plan a campaign for 1,000,000 contacts (segment, caps, suppression) vs a raw INSERT … SELECT."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, text

from sendwell.campaigns.service import create_campaign
from sendwell.config import load_settings
from sendwell.db.migrate import upgrade
from sendwell.db.session import make_engine, make_session_factory, transaction
from sendwell.delivery.planning import plan_campaign

TARGETS = {"sqlite": 30.0, "postgresql": 20.0}  # seconds, BENCHMARKS.md
PG_ADMIN_URL = os.environ.get("SENDWELL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SEGMENT = "stage in (new_lead, prospect, customer) and region in (eu, us, uk, ca, au, other)"


def numbers(dialect: str, n: int) -> str:
    """A row source of i = 1..n without a table."""
    if dialect == "postgresql":
        return f"SELECT i FROM generate_series(1, {n}) AS g(i)"
    return f"WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) SELECT i FROM g"


def seed(engine, n: int, now: datetime) -> dict[str, int]:
    """Contacts across stages and tiers, consent for most, 2 % suppressed, 30 % with earlier mail."""
    dialect = engine.dialect.name
    ts = now.strftime("%Y-%m-%d %H:%M:%S.%f") + ("+00:00" if dialect == "postgresql" else "")
    cast = "::timestamptz" if dialect == "postgresql" else ""
    days = "(id % 40) * interval '1 day'" if dialect == "postgresql" else None
    with engine.begin() as conn:
        conn.execute(text(f"""
            INSERT INTO contacts (id, email, email_hash, first_name, last_name, company, job_title, industry,
                stage, country, region, language, timezone, tags, custom, source, frequency_tier,
                paused_until, created_at, updated_at)
            SELECT i, 'buyer' || i || '@importer' || (i % 5000) || '.example', 'h' || i, 'Anna', 'Buyer',
                'Importer ' || i, '', 'lighting',
                CASE i % 3 WHEN 0 THEN 'new_lead' WHEN 1 THEN 'prospect' ELSE 'customer' END,
                CASE i % 4 WHEN 0 THEN 'DE' WHEN 1 THEN 'US' WHEN 2 THEN 'GB' ELSE 'FR' END,
                CASE i % 4 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' WHEN 2 THEN 'uk' ELSE 'eu' END,
                'en', '', '[]', '{{}}', 'bench',
                CASE i % 20 WHEN 0 THEN 'weekly' WHEN 1 THEN 'monthly' WHEN 2 THEN 'launches_only' ELSE 'default' END,
                CASE WHEN i % 50 = 0 THEN '{ts}'{cast} + {'interval ' + chr(39) + '30 days' + chr(39) if dialect == 'postgresql' else "'0'"} ELSE NULL END,
                '{ts}'{cast}, '{ts}'{cast}
            FROM ({numbers(dialect, n)}) AS g
        """))
        if dialect == "sqlite":  # SQLite date arithmetic on the stored text form
            conn.execute(text("UPDATE contacts SET paused_until = strftime('%Y-%m-%d %H:%M:%f000', :t, '+30 days') "
                              "WHERE paused_until IS NOT NULL"), {"t": now.strftime("%Y-%m-%d %H:%M:%S")})
        conn.execute(text(f"""
            INSERT INTO consents (contact_id, kind, source, obtained_at, ip, wording)
            SELECT id, 'express', 'bench', '{ts}'{cast}, '', '' FROM contacts WHERE id % 97 <> 0
        """))
        conn.execute(text(f"""
            INSERT INTO suppressions (email_hash, scope, reason, created_at)
            SELECT email_hash, 'all', 'unsubscribe', '{ts}'{cast} FROM contacts WHERE id % 50 = 7
        """))
        conn.execute(text(f"""
            INSERT INTO campaigns (id, name, subject, html, text, segment_expr, kind, status, over_cap, created_at)
            VALUES (1, 'earlier', 's', 'h', '', '', 'marketing', 'finished', 'skip', '{ts}'{cast})
        """))
        sent_at = (f"'{ts}'::timestamptz - {days}" if dialect == "postgresql"
                   else f"strftime('%Y-%m-%d %H:%M:%f000', '{now:%Y-%m-%d %H:%M:%S}', '-' || (id % 40) || ' days')")
        conn.execute(text(f"""
            INSERT INTO sends (campaign_id, contact_id, state, attempts, sent_at, updated_at)
            SELECT 1, id, 'sent', 1, {sent_at}, '{ts}'{cast} FROM contacts WHERE id % 10 < 3
        """))
        if dialect == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('campaigns', 'id'), 1)"))
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return {"contacts": n}


def run_backend(url: str, n: int) -> dict[str, object]:
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    seed(engine, n, now)
    seed_s = time.perf_counter() - started
    factory = make_session_factory(engine)
    settings = load_settings(data_dir=Path(tempfile.gettempdir()), secret_key="bench", hash_pepper="bench")

    # Baseline: a raw INSERT … SELECT of one planned row per contact, same table, same indexes.
    with transaction(factory) as s:
        baseline_id = create_campaign(s, settings=settings, name="raw", subject="s", html="h").id
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sends (campaign_id, contact_id, state, attempts, updated_at) "
                          "SELECT :c, id, 'planned', 0, :now FROM contacts"), {"c": baseline_id, "now": now})
    raw_s = time.perf_counter() - started
    with engine.begin() as conn:  # leave the table as it was before the real plan
        conn.execute(text("DELETE FROM sends WHERE campaign_id = :c"), {"c": baseline_id})
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE sends"))

    with transaction(factory) as s:
        campaign_id = create_campaign(s, settings=settings, name="bench", subject="s", html="h", segment=SEGMENT).id
    started = time.perf_counter()
    with transaction(factory) as s:
        from sendwell.campaigns.service import get_campaign

        counts = plan_campaign(s, campaign=get_campaign(s, campaign_id=campaign_id), now=now, settings=settings)
    plan_s = time.perf_counter() - started
    with transaction(factory) as s:
        from sendwell.delivery.progress import campaign_status

        skipped = campaign_status(s, campaign_id=campaign_id)["skipped"]
    engine.dispose()
    return {"seed_seconds": round(seed_s, 2), "raw_insert_select_seconds": round(raw_s, 2),
            "plan_seconds": round(plan_s, 2), "ratio_plan_to_raw": round(plan_s / raw_s, 2),
            "rows": sum(counts.values()), "states": counts, "skipped": skipped}


def main() -> int:
    """Run on SQLite and PostgreSQL, print both figures and the ratio, write bench/results/plan.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    results: dict[str, object] = {}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                result = run_backend(f"sqlite:///{tmp}/bench.db", args.contacts)
        else:
            name = f"sendwell_bench_plan_{os.getpid()}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                result = run_backend(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", args.contacts)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        target = TARGETS[backend]
        result["target_seconds"] = target
        result["meets_target"] = result["plan_seconds"] <= target  # type: ignore[operator]
        results[backend] = result
        print(f"{backend}: planned {result['rows']:,} sends in {result['plan_seconds']} s "
              f"(target <= {target:.0f} s: {'meets' if result['meets_target'] else 'MISSES'}); "
              f"raw INSERT … SELECT {result['raw_insert_select_seconds']} s; "
              f"ratio {result['ratio_plan_to_raw']}x; skipped {result['skipped']}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps({
        "benchmark": "delivery.plan_campaign", "contacts": args.contacts, "segment": SEGMENT,
        "results": results, "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
