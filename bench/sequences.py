"""Benchmark: one sequence advance over 100,000 enrolled contacts on SQLite, against a bare INSERT … SELECT.

Two rounds, each timed against its own ceiling measured in the same run on the same rows:
- wait: every enrollment is due at a wait step: one step-run row each, then moved on with its
  next time (the advance itself: exit rules, grouping, the unique step-run insert, the update).
  Ceiling: the same step-run rows written by a bare INSERT … SELECT, rolled back.
- mail: every enrollment is then due at a mail step: planning only (the campaigns' eligibility
  per contact, stage-cap deferral, send windows, queueing), no SMTP. Ceiling: a bare INSERT …
  SELECT of one send per contact, rolled back.
Prints contacts/s for both and writes bench/results/sequences.json; the target is at least 2,000 contacts/s for the wait round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text

from sendwell.config import load_settings
from sendwell.db.migrate import upgrade
from sendwell.db.session import make_engine, make_session_factory, transaction
from sendwell.delivery.dkim import generate_private_key
from sendwell.sequences.service import advance, create_sequence

TARGET = 2000.0  # contacts/s for one advance of due wait steps

DEFINITION = {
    "name": "Bench follow-up",
    "trigger": {"kind": "tag_added", "tag": "bench"},
    "steps": [
        {"id": "wait-1d", "kind": "wait", "days": 1},
        {"id": "catalogue", "kind": "mail", "subject": "Our catalogue, {{ first_name }}",
         "html": "<p>Dear {{ first_name }}, here is our catalogue.</p>"},
        {"id": "wait-7d", "kind": "wait", "days": 7},
    ],
}


def seed(engine, n: int, sequence_id: int, now: datetime) -> None:
    """n contacts (a third of each stage, express consent) and an enrollment each, due at the first wait."""
    ts = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = f"WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) SELECT i FROM g"
    with engine.begin() as conn:
        conn.execute(text(f"""
            INSERT INTO contacts (id, email, email_hash, first_name, last_name, company, job_title, industry,
                stage, country, region, language, timezone, tags, custom, source, frequency_tier,
                created_at, updated_at)
            SELECT i, 'buyer' || i || '@importer' || (i % 5000) || '.example', 'h' || i, 'Anna', 'Buyer',
                'Importer ' || i, '', 'lighting',
                CASE i % 3 WHEN 0 THEN 'new_lead' WHEN 1 THEN 'prospect' ELSE 'customer' END,
                'DE', 'eu', 'en', '', '["bench"]', '{{}}', 'bench', 'default', '{ts}', '{ts}'
            FROM ({rows}) AS g"""))
        conn.execute(text(f"""
            INSERT INTO consents (contact_id, kind, source, obtained_at, ip, wording, wording_hash, source_kind)
            SELECT id, 'express', 'bench', '{ts}', '', 'yes', '', 'trade_fair' FROM contacts"""))
        conn.execute(text(f"""
            INSERT INTO sequence_enrollments (sequence_id, contact_id, version, round, step_id, next_at, state,
                exited_reason, wait_reason, entered_at, updated_at)
            SELECT {sequence_id}, id, 1, 1, 'wait-1d', '{ts}', 'active', '', '', '{ts}', '{ts}' FROM contacts"""))
        conn.execute(text("UPDATE sequences SET contacts_seen = (SELECT max(id) FROM contacts), "
                          "events_seen = (SELECT coalesce(max(id), 0) FROM events)"))


def ceiling(engine, sql: str) -> float:
    """Seconds for a bare statement over the same rows, rolled back."""
    with engine.connect() as conn:
        tx = conn.begin()
        start = time.perf_counter()
        conn.execute(text(sql))
        took = time.perf_counter() - start
        tx.rollback()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sendwell-bench-sequences-"))
    key = folder / "dkim.pem"
    key.write_bytes(generate_private_key("ed25519"))
    url = f"sqlite:///{folder / 'bench.db'}"
    settings = load_settings(
        data_dir=folder / "data", database_url=url, secret_key="bench-secret-key-0123456789",
        hash_pepper="bench-pepper-0123456789", smtp_url="capture", base_url="https://mail.bright-lighting.example",
        from_="Ningbo Bright Lighting <sales@bright-lighting.example>", company_name="Ningbo Bright Lighting Co., Ltd.",
        postal_address="88 Jiangnan Road, Ningbo 315040, China", contact_email="sales@bright-lighting.example",
        dkim_domain="bright-lighting.example", dkim_key_file=str(key),
        privacy_url="https://bright-lighting.example/privacy")
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    now = datetime.now(timezone.utc)
    with transaction(factory) as session:
        sequence_id = create_sequence(session, settings=settings, data=DEFINITION, now=now).id
    seed(engine, args.contacts, sequence_id, now)
    ts = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    results: dict[str, object] = {"contacts": args.contacts}
    for label, step, when in (("wait", "wait-1d", now), ("mail", "catalogue", now + timedelta(days=1, minutes=1))):
        if label == "wait":
            bare = ceiling(engine, f"""
                INSERT INTO sequence_step_runs (enrollment_id, step_id, kind, outcome, send_id, wait_reason, done_at)
                SELECT id, '{step}', 'wait', 'waited', NULL, '', '{ts}' FROM sequence_enrollments""")
        else:
            with transaction(factory) as session:  # the step's campaign exists before the bare insert
                campaign_id = session.execute(text("SELECT campaign_id FROM sequence_step_campaigns")).scalar()
            bare = ceiling(engine, f"""
                INSERT INTO sends (campaign_id, contact_id, state, attempts, updated_at, possible_duplicate)
                SELECT {campaign_id}, contact_id, 'planned', 0, '{ts}', 0 FROM sequence_enrollments""")
        start = time.perf_counter()
        with transaction(factory) as session:
            report = advance(session, settings=settings, now=when)
        took = time.perf_counter() - start
        moved = report["steps"].get(step, 0)
        assert moved == args.contacts, report["steps"]
        results[label] = {"seconds": round(took, 2), "contacts_per_second": round(moved / took),
                          "ceiling_seconds": round(bare, 2), "ceiling_contacts_per_second": round(moved / bare),
                          "of_ceiling": round(bare / took, 3)}
        if label == "mail":
            results[label]["queued"] = sum(len(b) for _, b in report["batches"])
    results["target_contacts_per_second"] = TARGET
    results["ok"] = results["wait"]["contacts_per_second"] >= TARGET
    results.update(python=platform.python_version(), cpus=os.cpu_count(), load_average=os.getloadavg()[0])
    print(json.dumps(results, indent=2))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sequences.json").write_text(json.dumps(results, indent=2) + "\n")
    engine.dispose()


if __name__ == "__main__":
    main()
