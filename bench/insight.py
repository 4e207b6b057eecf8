"""Dashboard queries over many events: roll-up counters vs the full-scan live query, same run.

    .venv/bin/python bench/insight.py [--events 10000000] [--db sqlite|URL]

Target: each dashboard query answers in ≤ 1 s at 10,000,000 events; the printed
ratio is full scan / dashboard query. Writes bench/results/insight.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src")]

from sqlalchemy import text  # noqa: E402

from sendwell.db.migrate import upgrade  # noqa: E402
from sendwell.db.session import make_engine, make_session_factory, transaction  # noqa: E402
from sendwell.insight.rates import breakdown  # noqa: E402
from sendwell.insight.rollup import dashboard_breakdown, merged_by_value, roll_up  # noqa: E402

CAMPAIGNS = 100


def build(engine, events: int) -> dict[str, float]:
    contacts = max(1000, events // 50)
    sends_per_campaign = max(100, min(contacts, events // CAMPAIGNS))
    timings = {}
    t = time.perf_counter()
    with engine.begin() as conn:
        seq = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) SELECT i FROM n"
               if engine.dialect.name == "sqlite" else "SELECT i FROM generate_series(1, :count) AS i")
        now = "'2026-11-01 00:00:00'" if engine.dialect.name == "sqlite" else "TIMESTAMPTZ '2026-11-01'"
        conn.execute(text(
            f"INSERT INTO contacts (id, email, email_hash, first_name, last_name, company, job_title, industry, stage,"
            f" country, region, language, timezone, tags, custom, source, frequency_tier, created_at, updated_at)"
            f" SELECT i, 'c' || i || '@x.example', 'h' || i, '', '', '', '',"
            f" CASE i % 4 WHEN 0 THEN 'lighting' WHEN 1 THEN 'furniture' WHEN 2 THEN 'hardware' ELSE 'textiles' END,"
            f" CASE i % 3 WHEN 0 THEN 'new_lead' WHEN 1 THEN 'prospect' ELSE 'customer' END,"
            f" CASE i % 5 WHEN 0 THEN 'DE' WHEN 1 THEN 'US' WHEN 2 THEN 'GB' WHEN 3 THEN 'FR' ELSE 'AU' END,"
            f" CASE i % 5 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' WHEN 2 THEN 'uk' WHEN 3 THEN 'eu' ELSE 'au' END,"
            f" 'en', '', '[]', '{{}}', 'bench', 'default', {now}, {now} FROM ({seq}) AS s"), {"count": contacts})
        conn.execute(text(
            f"INSERT INTO campaigns (id, name, subject, html, text, segment_expr, kind, status, created_at)"
            f" SELECT i, 'campaign ' || i, 's', 'h', '', '', 'marketing', 'finished', {now} FROM ({seq}) AS s"),
            {"count": CAMPAIGNS})
        conn.execute(text(
            f"INSERT INTO sends (campaign_id, contact_id, state, attempts, sent_at, updated_at)"
            f" SELECT 1 + (i - 1) / :per, 1 + ((i - 1) % :per), 'sent', 1, {now}, {now} FROM ({seq}) AS s"),
            {"count": CAMPAIGNS * sends_per_campaign, "per": sends_per_campaign})
        # Events: mostly clicks, some unsubscribes, bounces and complaints, spread over campaigns.
        conn.execute(text(
            f"INSERT INTO events (kind, contact_id, campaign_id, method, ip, user_agent, data, occurred_at)"
            f" SELECT CASE WHEN i % 50 = 0 THEN 'unsubscribed' WHEN i % 97 = 0 THEN 'bounced'"
            f"  WHEN i % 997 = 0 THEN 'complained' WHEN i % 7 = 0 THEN 'delivered_ping' ELSE 'clicked' END,"
            f" 1 + (i % :per), 1 + (i % {CAMPAIGNS}),"
            f" CASE WHEN i % 50 = 0 THEN (CASE i % 3 WHEN 0 THEN 'one_click' WHEN 1 THEN 'page' ELSE 'mailto' END) ELSE '' END,"
            f" '', '', CASE WHEN i % 97 = 0 THEN '{{\"kind\": \"hard\"}}' ELSE '{{\"first\": true}}' END, {now}"
            f" FROM ({seq}) AS s"), {"count": events, "per": sends_per_campaign})
    timings["build_s"] = time.perf_counter() - t
    return timings


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--db", default="sqlite")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = f"sqlite:///{tmp.name}/bench.db" if args.db == "sqlite" else args.db
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    result: dict[str, object] = {"events": args.events, "database": engine.dialect.name}
    print(f"building {args.events:,} events on {engine.dialect.name} …", flush=True)
    result.update(build(engine, args.events))
    print(f"  built in {result['build_s']:.1f} s", flush=True)
    with transaction(factory) as session:
        result["rollup_s"], _ = timed(lambda: roll_up(session))
    print(f"  rolled up in {result['rollup_s']:.1f} s (the scheduler does this incrementally, once a minute)")
    queries = {
        "overview (all campaigns)": (lambda s: dashboard_breakdown(s, dimension="all"),
                                     lambda s: breakdown(s, dimension="campaign")),
        "by region": (lambda s: merged_by_value(dashboard_breakdown(s, dimension="region")),
                      lambda s: breakdown(s, dimension="region")),
        "one campaign by stage": (lambda s: dashboard_breakdown(s, dimension="stage", campaign_id=7),
                                  lambda s: breakdown(s, dimension="stage", campaign_id=7)),
    }
    rows = []
    for name, (fast, full) in queries.items():
        with transaction(factory) as session:
            fast_s, _ = timed(lambda: fast(session))
            full_s, _ = timed(lambda: full(session))
        ratio = full_s / fast_s if fast_s else float("inf")
        rows.append({"query": name, "dashboard_s": round(fast_s, 4), "full_scan_s": round(full_s, 4),
                     "ratio": round(ratio, 1), "target_met": fast_s <= 1.0})
        print(f"  {name:28} dashboard {fast_s * 1000:8.1f} ms   full scan {full_s * 1000:9.1f} ms"
              f"   ratio {ratio:7.1f}×   target ≤ 1 s: {'met' if fast_s <= 1.0 else 'MISSED'}")
    result["queries"] = rows
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / "insight.json").write_text(json.dumps(result, indent=2))
    engine.dispose()


if __name__ == "__main__":
    main()
