"""Provider-group limits shared by every worker, and the adaptive pace, counted at an SMTP sink.

    .venv/bin/python bench/provider_limits.py [--shape redis|embedded|both] [--limit 20]
                                              [--google 600] [--other 3000] [--yahoo 400] [--fault 6]

Shapes: `redis` runs 4 real `sendwell worker` processes (4 SMTP sessions each) on PostgreSQL and
Redis; `embedded` runs 2 on SQLite and the embedded queue (limits in the data folder's SQLite file).

1. Limits: one campaign to --google recipients at gmail.com / googlemail.com (provider group
   google, SENDWELL_PROVIDER_LIMITS=google=LIMIT/s) mixed with --other recipients at company
   domains (group other, no limit). The sink (aiosmtpd on loopback, in this process) counts
   mails per group in every sliding one-second window: google's busiest window may hold the
   limit plus one burst allowance (one second's worth, 2 × LIMIT: the bucket refills while the
   group is idle), its mean stays at the limit, and other goes at full speed meanwhile.
2. Adaptive pace: a campaign to --yahoo recipients at yahoo.com (yahoo=LIMIT/s); the sink answers
   `421 4.7.0 [TSS04] try again later` to every yahoo mail for --fault seconds. The bench reads
   the group's pace from the store every worker shares, every 0.25 s: it halves (at most once
   per 2 s while the 421s last), and climbs back a tenth of the limit per clean period
   (SENDWELL_PROVIDER_RECOVER_SECONDS, 2 s here so the run stays short; default 10 s) once they stop.

Prints the figures and writes bench/results/provider_limits.json. Never asserts: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Run as a script, this folder is sys.path[0] and bench/dkim.py would shadow dkimpy's `dkim`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from sendwell.campaigns.service import create_campaign  # noqa: E402
from sendwell.config import load_settings  # noqa: E402
from sendwell.db.migrate import upgrade  # noqa: E402
from sendwell.db.models import Campaign, Consent, Contact, Send  # noqa: E402
from sendwell.db.session import transaction  # noqa: E402
from sendwell.delivery.planning import plan_campaign, queue_campaign  # noqa: E402
from sendwell.delivery.providers import ProviderGroups  # noqa: E402
from sendwell.delivery.throttle import Throttle  # noqa: E402
from sendwell.demo.smtp_server import free_port  # noqa: E402
from sendwell.runtime import Runtime  # noqa: E402
from sendwell.suppression.service import hash_email  # noqa: E402
from sendwell.worker.queue import Queue  # noqa: E402

SENDWELL = str(Path(sys.executable).with_name("sendwell"))
DOMAIN = "bright-lighting.example"
GROUPS = ProviderGroups()  # by domain name only: the bench's recipients need no DNS


def log(msg: str) -> None:
    print(msg, flush=True)


class CountingSink:
    """Accepts every mail and notes (time, provider group); answers 421 to one group while `fault` is set."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, bool]] = []  # (time, group, accepted)
        self.fault_group = ""
        self.fault = threading.Event()
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, decode_data=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        group = GROUPS.group_for(envelope.rcpt_tos[0])
        refused = self.fault.is_set() and group == self.fault_group
        with self.lock:
            self.arrivals.append((time.time(), group, not refused))
        if refused:
            await asyncio.sleep(0)
            return "421 4.7.0 [TSS04] Messages temporarily deferred, try again later"
        return "250 OK"

    def times(self, group: str, accepted_only: bool = True) -> list[float]:
        with self.lock:
            return sorted(t for t, g, ok in self.arrivals if g == group and (ok or not accepted_only))


def busiest_window(times: list[float], width: float = 1.0) -> int:
    """The most arrivals in any window [t, t + width)."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


def per_second(times: list[float], start: float) -> list[int]:
    counts = Counter(int(t - start) for t in times)
    return [counts.get(s, 0) for s in range(max(counts, default=-1) + 1)]


def seed(runtime: Runtime, emails: list[str]) -> None:
    now = datetime.now(timezone.utc)
    pepper = runtime.settings.pepper
    rows = [dict(email=e, email_hash=hash_email(pepper, e), first_name=f"Anna{n}", last_name="Müller",
                 company=f"Importer {n} GmbH", job_title="", industry="lighting", stage="prospect", country="DE",
                 region="eu", language="en", timezone="", tags=[], custom={}, source="bench", frequency_tier="default",
                 created_at=now, updated_at=now) for n, e in enumerate(emails)]
    with transaction(runtime.factory) as s:
        ids = list(s.scalars(insert(Contact).returning(Contact.id), rows))
        s.execute(insert(Consent), [dict(contact_id=i, kind="express", source="bench", obtained_at=now, ip="",
                                         wording="bench") for i in ids])


def start_campaign(runtime: Runtime, queue: Queue, name: str, emails: list[str]) -> int:
    """A campaign to every contact: the earlier phase's recipients are skipped by the frequency cap (1 a week)."""
    seed(runtime, emails)
    with transaction(runtime.factory) as s:
        c = create_campaign(s, settings=runtime.settings, name=name, subject="LED panels for {{ contact.company }}",
                            html="<p>Dear {{ first_name }}, our 2026 LED panels: 30% less energy.</p>")
        plan_campaign(s, campaign=c)
        batches = queue_campaign(s, campaign=c, batch_size=runtime.settings.batch_size)
        campaign_id = c.id
    queue.enqueue_batches(campaign_id, batches)
    return campaign_id


def wait_finished(runtime: Runtime, campaign_id: int, workers: list[subprocess.Popen[bytes]], timeout: float,
                  every: float = 0.5, tick: Any = None) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        with transaction(runtime.factory) as s:
            status = s.get(Campaign, campaign_id).status
            states = dict(s.execute(select(Send.state, func.count()).where(Send.campaign_id == campaign_id)
                                    .group_by(Send.state)).all())
        if status == "finished" or any(w.poll() is not None for w in workers):
            return states
        time.sleep(every)
    return states


def run_shape(shape: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n_workers = 4 if shape == "redis" else 2
    sink = CountingSink()
    sink.controller.start()
    pg_db = None
    workers: list[subprocess.Popen[bytes]] = []
    try:
        data = tmp / shape
        data.mkdir()
        db_url = f"sqlite:///{data / 'sendwell.db'}"
        if shape == "redis":
            pg_db = f"sendwell_bench_limits_{os.getpid()}"
            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{pg_db}"'))
            admin.dispose()
            db_url = args.pg_url.rsplit("/", 1)[0] + "/" + pg_db
        env_settings = {
            "SENDWELL_DATA_DIR": str(data), "SENDWELL_DATABASE_URL": db_url,
            "SENDWELL_QUEUE_URL": "redis://127.0.0.1:6379/0" if shape == "redis" else "",
            "SENDWELL_QUEUE_NAME": f"sendwell-bench-limits-{os.getpid()}",
            "SENDWELL_SMTP_URL": f"smtp://127.0.0.1:{sink.port}", "SENDWELL_SECRET_KEY": "bench-secret-0123456789",
            "SENDWELL_HASH_PEPPER": "bench-pepper-0123456789", "SENDWELL_BASE_URL": f"https://mail.{DOMAIN}",
            "SENDWELL_FROM": f"Ningbo Bright Lighting <sales@{DOMAIN}>",
            "SENDWELL_SMTP_CONCURRENCY": "4", "SENDWELL_BATCH_SIZE": "50",
            "SENDWELL_PROVIDER_LIMITS": f"google={args.limit:g}/s,yahoo={args.limit:g}/s",
            "SENDWELL_PROVIDER_RECOVER_SECONDS": "2", "SENDWELL_RETRY_BASE_SECONDS": "2",
            "SENDWELL_RECOVERY_INTERVAL": "1", "SENDWELL_HYGIENE_INTERVAL_HOURS": "0",
        } | ({"SENDWELL_PROVIDER_MAX_WAIT": str(args.max_wait)} if args.max_wait is not None else {})
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")} | env_settings
        settings = load_settings(**{("from_" if k == "SENDWELL_FROM" else k.removeprefix("SENDWELL_").lower()): v
                                    for k, v in env_settings.items()})
        runtime = Runtime(settings)
        upgrade(runtime.engine)
        queue = Queue(runtime)
        if shape == "redis":  # a fresh pace for the run: no state from an earlier one under this name
            import redis

            client = redis.Redis.from_url(settings.queue_url)
            for key in client.scan_iter(f"{settings.queue_name}:limits:*"):
                client.delete(key)
        workers = [subprocess.Popen([SENDWELL, "worker"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=open(data / f"w{i}.log", "w")) for i in range(n_workers)]
        time.sleep(2)  # the workers start

        # Phase 1: a limited group mixed with an unlimited one.
        step = max(1, (args.google + args.other) // max(args.google, 1))
        emails = [f"buyer{n}@{'gmail.com' if (n // step) % 2 else 'googlemail.com'}" if n % step == 0 else
                  f"buyer{n}@importer{n % 211}.example" for n in range(args.google + args.other)]
        google_count = sum(1 for e in emails if GROUPS.group_for(e) == "google")
        t0 = time.time()
        campaign_id = start_campaign(runtime, queue, "Limits", emails)
        states = wait_finished(runtime, campaign_id, workers, timeout=args.timeout)
        google, other = sink.times("google"), sink.times("other")
        g_start = google[0] if google else t0
        steady = [t for t in google if t >= g_start + 3.0]  # the burst allowance is spent by then
        result: dict[str, Any] = {
            "workers": n_workers, "sessions_per_worker": 4, "limit_per_s": args.limit, "burst": args.limit,
            "phase1_states": states,
            "google_mails": len(google), "google_expected": google_count,
            "google_busiest_1s_window": busiest_window(google),
            "google_busiest_1s_window_from_third_second": busiest_window(steady),
            "google_mean_per_s": round(len(google) / max(google[-1] - google[0], 1e-9), 1) if len(google) > 1 else 0,
            "google_per_second": per_second(google, g_start),
            "other_mails": len(other),
            "other_mean_per_s": round(len(other) / max(other[-1] - other[0], 1e-9), 1) if len(other) > 1 else 0,
            "other_busiest_1s_window": busiest_window(other),
            "other_per_second": per_second(other, other[0] if other else t0),
            "other_done_after_s": round(other[-1] - t0, 1) if other else None,
            "google_done_after_s": round(google[-1] - t0, 1) if google else None,
        }
        log(f"[{shape}] {n_workers} workers × 4 sessions, google limited to {args.limit:g}/s (burst {args.limit:g}): "
            f"{len(google)}/{google_count} google mails, busiest 1 s window {result['google_busiest_1s_window']} "
            f"(limit + burst = {2 * args.limit:g}), from the third second on {result['google_busiest_1s_window_from_third_second']} "
            f"(limit {args.limit:g}), mean {result['google_mean_per_s']}/s")
        log(f"[{shape}]   google per second: {result['google_per_second'][:40]}")
        log(f"[{shape}]   other (no limit): {len(other)} mails at {result['other_mean_per_s']}/s mean, busiest 1 s "
            f"window {result['other_busiest_1s_window']}, all sent {result['other_done_after_s']} s after the start "
            f"(google's last: {result['google_done_after_s']} s); states {states}")

        # Phase 2: 421s for one group halve its pace; it climbs back once they stop.
        throttle = Throttle.from_settings(settings)
        pace: list[tuple[float, float]] = []
        sink.fault_group = "yahoo"
        yahoo_emails = [f"reader{n}@yahoo.com" for n in range(args.yahoo)]
        t1 = time.time()
        sink.fault.set()
        fault_end = t1 + args.fault

        def tick() -> None:
            now = time.time()
            if sink.fault.is_set() and now >= fault_end:
                sink.fault.clear()
            factor = next((p["factor"] for p in throttle.paces() if p["group"] == "yahoo"), 1.0)
            pace.append((round(now - t1, 2), factor))

        campaign2 = start_campaign(runtime, queue, "Pace", yahoo_emails)
        states2 = wait_finished(runtime, campaign2, workers, timeout=args.timeout, every=0.25, tick=tick)
        for _ in range(int(12 / 0.25)):  # keep sampling until the pace is back (or 12 s)
            if pace and pace[-1][1] >= 1.0 and not sink.fault.is_set():
                break
            tick()
            time.sleep(0.25)
        tried, accepted = sink.times("yahoo", accepted_only=False), sink.times("yahoo")
        low = min((f for _, f in pace), default=1.0)
        back = next((t for t, f in pace if t > args.fault and f >= 1.0), None)
        slowest = min(pace, key=lambda p: p[1]) if pace else (0, 1.0)
        refused = len(tried) - len(accepted)
        result.update({
            "phase2_states": states2, "yahoo_attempts": len(tried), "yahoo_refused_421": refused,
            "yahoo_accepted": len(accepted), "fault_seconds": args.fault, "pace_lowest_factor": low,
            "pace_lowest_at_s": slowest[0], "pace_full_again_at_s": back,
            "yahoo_attempts_per_second": per_second(tried, t1), "yahoo_accepted_per_second": per_second(accepted, t1),
            "pace_samples": pace[::4],
        })
        log(f"[{shape}]   other per second: {result['other_per_second'][:40]}")
        log(f"[{shape}] 421 4.7.0 to every yahoo mail for {args.fault:g} s: {refused} refused; the pace fell to "
            f"{low:.0%} of {args.limit:g}/s (at {slowest[0]} s) and was back to 100% at "
            f"{back if back is not None else 'not within the run'} s (recovery: +10% per 2 s clean period)")
        log(f"[{shape}]   yahoo attempts per second: {result['yahoo_attempts_per_second'][:40]}")
        log(f"[{shape}]   yahoo pace per second: {[f for _, f in pace[::4]][:40]}")
        runtime.dispose()
        return result
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
        sink.controller.stop()
        if pg_db:
            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'))
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["redis", "embedded", "both"], default="both")
    parser.add_argument("--limit", type=float, default=20.0)
    parser.add_argument("--google", type=int, default=600)
    parser.add_argument("--other", type=int, default=3000)
    parser.add_argument("--yahoo", type=int, default=400)
    parser.add_argument("--fault", type=float, default=6.0)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--max-wait", type=float, default=None, help="SENDWELL_PROVIDER_MAX_WAIT (default: the setting's)")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "provider_limits.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sendwell-bench-limits-"))
    results = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count()}
    try:
        for shape in (["redis", "embedded"] if args.shape == "both" else [args.shape]):
            results[shape] = run_shape(shape, args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
