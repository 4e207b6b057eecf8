"""Benchmark: inbound bounces processed and committed one by one on SQLite, against classification alone."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert

from sendwell.config import load_settings
from sendwell.db.migrate import upgrade
from sendwell.db.models import Campaign, Contact, Send
from sendwell.db.session import transaction
from sendwell.delivery.verp import make_return_path
from sendwell.feedback.classify import classify_message
from sendwell.feedback.inbound import process_inbound
from sendwell.runtime import Runtime
from sendwell.suppression.service import hash_email

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
DOMAIN = "bright-lighting.example"


def _dsn(rcpt: str, to: str, status: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example\nTo: {to}\nSubject: Undelivered Mail Returned to Sender\n"
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; 550 {status} failure\n\n--B--\n"
    ).encode()


def main() -> int:
    """Seed contacts and sends, then time process_inbound + commit per message; write bench/results/feedback.json."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), secret_key="bench-secret", hash_pepper="bench-pepper",
                                 from_=f"Bench <sales@{DOMAIN}>", database_url=f"sqlite:///{tmp}/bench.db")
        runtime = Runtime(settings)
        upgrade(runtime.engine)
        now = datetime.now(timezone.utc)
        with transaction(runtime.factory) as session:
            campaign = Campaign(name="bench", subject="s", html="h", status="sending")
            session.add(campaign)
            session.flush()
            emails = [f"buyer{i}@importer{i % 97}.example" for i in range(MESSAGES)]
            session.execute(insert(Contact), [
                {"email": e, "email_hash": hash_email(settings.pepper, e), "tags": [], "custom": {}} for e in emails])
            session.execute(insert(Send), [
                {"campaign_id": campaign.id, "contact_id": i + 1, "state": "sent", "sent_at": now,
                 "message_id": f"<{i + 1}.x@{DOMAIN}>"} for i in range(MESSAGES)])
        # A realistic mix: hard bounces, mailbox-full soft bounces and delays.
        statuses = ["5.1.1", "5.2.2", "4.4.1"]
        raws = [(_dsn(emails[i], make_return_path(settings.secret_keys, i + 1, DOMAIN), statuses[i % 3]),
                 make_return_path(settings.secret_keys, i + 1, DOMAIN)) for i in range(MESSAGES)]

        start = time.perf_counter()
        for raw, _ in raws:
            classify_message(raw)
        classify_rate = MESSAGES / (time.perf_counter() - start)

        start = time.perf_counter()
        for raw, rcpt in raws:
            with transaction(runtime.factory) as session:
                process_inbound(session, raw=raw, rcpt_to=[rcpt], settings=settings, source="bench")
        elapsed = time.perf_counter() - start
        runtime.dispose()
    rate = MESSAGES / elapsed
    print(f"processed and committed {MESSAGES} bounces in {elapsed:.2f} s: {rate:,.0f} msg/s on SQLite; "
          f"classification alone {classify_rate:,.0f} msg/s (ceiling); ratio {rate / classify_rate:.2f}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback.json").write_text(json.dumps({
        "benchmark": "feedback.process_inbound (one transaction per message, SQLite)",
        "messages": MESSAGES, "seconds": round(elapsed, 3), "messages_per_second": round(rate, 1),
        "classify_only_per_second": round(classify_rate, 1), "ratio_to_ceiling": round(rate / classify_rate, 3),
        "python": platform.python_version(), "machine": platform.machine(),
    }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
