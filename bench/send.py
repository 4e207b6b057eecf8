"""Send speed: a personalised, DKIM-signed campaign to Postfix's smtp-sink, against a naive loop and the RSA ceiling.

    .venv/bin/python bench/send.py [--mails 100000] [--shapes send-wait,workers] [--processes N]
                                   [--workers 2] [--threads 1] [--naive 300]
                                   [--database sqlite|postgresql] [--queue embedded|redis]

From the same run it prints:
  * send-wait, the default shape: `sendwell campaigns send ID --wait` with no option, as a
    user runs it (it plans the campaign, then delivers on one process per core;
    `--processes N` sets SENDWELL_DELIVERY_PROCESSES for it instead);
  * workers: `--workers` real `sendwell worker` processes started by hand on the queued
    campaign (each `--threads` SMTP sessions), and the ratio of the two shapes;
  both: text+HTML personalised per recipient, RSA-2048 DKIM, the full crash-safe bookkeeping
  (two durable writes per mail), to `smtp-sink` on loopback, each on a fresh database seeded
  with the same contacts;
  * the naive baseline: smtplib + EmailMessage + dkimpy in one loop (`--naive` mails);
  * the RSA-2048 sign ceiling: `openssl speed -seconds 3 rsa2048` × cores;
and the ratios. Needs `smtp-sink` (Debian package postfix; see BENCHMARKS.md). Writes
bench/results/send.json. Never asserts a time: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

# Run as a script, this folder is sys.path[0] and bench/dkim.py would shadow dkimpy's `dkim`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dkim as dkimpy  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from sendwell.campaigns.service import create_campaign  # noqa: E402
from sendwell.config import load_settings  # noqa: E402
from sendwell.db.migrate import upgrade  # noqa: E402
from sendwell.db.models import Campaign, Consent, Contact, Send  # noqa: E402
from sendwell.db.session import transaction  # noqa: E402
from sendwell.delivery.dkim import generate_private_key  # noqa: E402
from sendwell.delivery.planning import plan_campaign, queue_campaign  # noqa: E402
from sendwell.demo.smtp_server import free_port  # noqa: E402
from sendwell.runtime import Runtime  # noqa: E402
from sendwell.suppression.service import hash_email  # noqa: E402

SENDWELL = str(Path(sys.executable).with_name("sendwell"))
DOMAIN = "bright-lighting.example"
SUBJECT = "{{ contact.company }}: energy-saving LED panels for {{ contact.country }}"
HTML = """\
<h1 style="font-size:20px;color:#1a3c6e">Energy-saving LED panels for {{ contact.company }}</h1>
<p>Dear {{ first_name or 'buyer' }},</p>
<p>Our 2026 LED panel range cuts energy use by 30% compared with the T8 tubes most
{{ contact.industry }} buyers still install, and every panel ships with
{% if contact.region in ('eu', 'uk') %}CE and UKCA marking and an EU declaration of conformity{% else %}UL and FCC documentation{% endif %}.</p>
<table style="border-collapse:collapse;width:100%">
<tr><td style="padding:6px;border:1px solid #ccc">600×600 mm, 36 W, 4,000 K</td><td style="padding:6px;border:1px solid #ccc">USD 7.80 FOB Ningbo</td></tr>
<tr><td style="padding:6px;border:1px solid #ccc">1200×300 mm, 40 W, 5,000 K</td><td style="padding:6px;border:1px solid #ccc">USD 8.40 FOB Ningbo</td></tr>
<tr><td style="padding:6px;border:1px solid #ccc">Backlit 600×1200 mm, 60 W</td><td style="padding:6px;border:1px solid #ccc">USD 15.20 FOB Ningbo</td></tr>
</table>
<p>MOQ 200 pieces, samples in 7 days, five-year warranty. {{ contact.job_title or 'Buyers' }} at
{{ contact.company }} asked us last year for flicker-free drivers: all three models now have them.</p>
<p>Reply to this mail for the full price list, or book a video call with our export team.</p>
<p>Best regards,<br>Li Wei<br>Export Sales, Ningbo Bright Lighting</p>
"""
TEXT = """\
Dear {{ first_name or 'buyer' }},

Our 2026 LED panel range cuts energy use by 30% compared with the T8 tubes most
{{ contact.industry }} buyers still install, and every panel ships with
{% if contact.region in ('eu', 'uk') %}CE and UKCA marking and an EU declaration of conformity{% else %}UL and FCC documentation{% endif %}.

  600x600 mm, 36 W, 4,000 K ........ USD 7.80 FOB Ningbo
  1200x300 mm, 40 W, 5,000 K ....... USD 8.40 FOB Ningbo
  Backlit 600x1200 mm, 60 W ........ USD 15.20 FOB Ningbo

MOQ 200 pieces, samples in 7 days, five-year warranty. {{ contact.job_title or 'Buyers' }} at
{{ contact.company }} asked us last year for flicker-free drivers: all three models now have them.

Reply to this mail for the full price list, or book a video call with our export team.

Best regards,
Li Wei
Export Sales, Ningbo Bright Lighting
"""


def log(msg: str) -> None:
    print(msg, flush=True)


def seed(runtime: Runtime, count: int) -> None:
    now = datetime.now(timezone.utc)
    pepper = runtime.settings.pepper
    countries = [("DE", "eu"), ("FR", "eu"), ("GB", "uk"), ("US", "us"), ("CA", "ca"), ("AU", "au")]
    for start in range(0, count, 20_000):
        rows = []
        for n in range(start, min(count, start + 20_000)):
            email = f"buyer{n}@importer{n % 997}.example"
            country, region = countries[n % len(countries)]
            rows.append(dict(email=email, email_hash=hash_email(pepper, email), first_name=f"Anna{n}", last_name="Müller",
                             company=f"Importer {n} GmbH", job_title="Purchasing manager", industry="lighting",
                             stage="prospect", country=country, region=region, language="en", timezone="", tags=[],
                             custom={}, source="bench", frequency_tier="default", created_at=now, updated_at=now))
        with transaction(runtime.factory) as s:
            s.execute(insert(Contact), rows)
    with transaction(runtime.factory) as s:
        s.execute(insert(Consent.__table__).from_select(
            ["contact_id", "kind", "source", "obtained_at", "ip", "wording"],
            select(Contact.id, text("'express'"), text("'bench'"), text(":now"), text("''"), text("'bench'")),
        ), {"now": now})


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def rsa_ceiling(cores: int) -> dict:
    out = subprocess.run(["openssl", "speed", "-seconds", "3", "rsa2048"], capture_output=True, text=True).stdout
    match = re.search(r"rsa\s+2048 bits?\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)", out)
    per_core = float(match.group(1)) if match else float("nan")
    return {"sign_per_core": per_core, "cores": cores, "ceiling": per_core * cores}


def naive(port: int, pem: bytes, count: int) -> float:
    """The loop most people write first: EmailMessage per recipient, dkimpy, smtplib."""
    smtp = smtplib.SMTP("127.0.0.1", port)
    html = HTML.replace("{{ contact.company }}", "Importer 1 GmbH")
    start, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        msg = EmailMessage()
        msg["From"] = f"Ningbo Bright Lighting <sales@{DOMAIN}>"
        msg["To"] = f"Anna{n} Müller <buyer{n}@importer{n}.example>"
        msg["Subject"] = f"Importer {n} GmbH: energy-saving LED panels"
        msg["List-Unsubscribe"] = f"<https://mail.{DOMAIN}/u/{n}>, <mailto:unsubscribe+{n}@{DOMAIN}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(f"Dear Anna{n},\nOur 2026 LED panel range ...\n")
        msg.add_alternative(html.replace("{{ first_name or 'buyer' }}", f"Anna{n}"), subtype="html")
        data = msg.as_bytes()
        sig = dkimpy.sign(data, b"bench", DOMAIN.encode(), pem,
                          include_headers=[b"from", b"to", b"subject", b"list-unsubscribe", b"list-unsubscribe-post"])
        smtp.sendmail(f"bounce@{DOMAIN}", [f"buyer{n}@importer{n}.example"], sig + data)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    smtp.quit()
    return count / elapsed, count / cpu


def compare_clients(port: int, count: int) -> dict:
    """The same pre-built 5 KB message through smtplib (hand-driven, as the transport) and aiosmtplib."""
    import asyncio

    import aiosmtplib

    from sendwell.mail.transport import SmtpTransport

    data = (b"From: a@x.example\r\nTo: b@y.example\r\nSubject: bench\r\n\r\n" + b"x" * 76 + b"\r\n") * 64
    result = {}
    t = SmtpTransport(f"smtp://127.0.0.1:{port}")
    t.open()
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        t.send("bounce@x.example", f"b{n}@y.example", data)
    result["smtplib"] = {"msg_per_s": count / (time.perf_counter() - wall), "msg_per_cpu_s": count / (time.process_time() - cpu)}
    t.close()

    async def run() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        wall, cpu = time.perf_counter(), time.process_time()
        for n in range(count):
            await smtp.sendmail("bounce@x.example", [f"b{n}@y.example"], data)
        result["aiosmtplib"] = {"msg_per_s": count / (time.perf_counter() - wall),
                                "msg_per_cpu_s": count / (time.process_time() - cpu)}
        await smtp.quit()

    asyncio.run(run())
    return {k: {m: round(v, 1) for m, v in r.items()} for k, r in result.items()}


class Shape:
    """One measured shape on its own fresh database and data folder (the same seeded contacts each)."""

    def __init__(self, args: argparse.Namespace, tmp: Path, port: int, name: str) -> None:
        self.args, self.name, self.pg_db = args, name, None
        folder = tmp / name
        folder.mkdir()
        db_url = f"sqlite:///{folder / 'sendwell.db'}"
        if args.database == "postgresql":
            self.pg_db = f"sendwell_bench_{os.getpid()}_{name.replace('-', '_')}"
            with _pg_admin(args) as c:
                c.execute(text(f'CREATE DATABASE "{self.pg_db}"'))
            db_url = args.pg_url.rsplit("/", 1)[0] + "/" + self.pg_db
        self.env_settings = {
            "SENDWELL_DATA_DIR": str(folder), "SENDWELL_DATABASE_URL": db_url,
            "SENDWELL_QUEUE_URL": "redis://127.0.0.1:6379/0" if args.queue == "redis" else "",
            "SENDWELL_QUEUE_NAME": f"sendwell-bench-{os.getpid()}-{name}",
            "SENDWELL_SMTP_URL": f"smtp://127.0.0.1:{port}", "SENDWELL_SECRET_KEY": "bench-secret-0123456789",
            "SENDWELL_HASH_PEPPER": "bench-pepper-0123456789", "SENDWELL_BASE_URL": f"https://mail.{DOMAIN}",
            "SENDWELL_FROM": f"Ningbo Bright Lighting <sales@{DOMAIN}>",
            # `campaigns send` runs the compliance lint first: the footer's sender identity.
            "SENDWELL_COMPANY_NAME": "Ningbo Bright Lighting Co., Ltd.",
            "SENDWELL_POSTAL_ADDRESS": "88 Jiangnan Road, Ningbo 315040, China",
            "SENDWELL_CONTACT_EMAIL": f"sales@{DOMAIN}",
            "SENDWELL_DKIM_DOMAIN": "" if args.no_dkim else DOMAIN, "SENDWELL_DKIM_SELECTOR": "bench",
            "SENDWELL_DKIM_KEY_FILE": "" if args.no_dkim else str(tmp / "dkim.pem"),
            "SENDWELL_SMTP_CONCURRENCY": str(args.threads), "SENDWELL_BATCH_SIZE": str(args.batch),
            # The daily hygiene pass would first run inside these workers a minute in, over all
            # 100,000 fresh contacts (address cleaning): list maintenance, not sending. --hygiene keeps it.
            "SENDWELL_HYGIENE_INTERVAL_HOURS": "24" if args.hygiene else "0",
        }
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")} | self.env_settings
        self.settings = load_settings(**{k.removeprefix("SENDWELL_").lower() if k != "SENDWELL_FROM" else "from_": v
                                         for k, v in self.env_settings.items()})
        self.runtime = Runtime(self.settings)
        upgrade(self.runtime.engine)
        t0 = time.perf_counter()
        seed(self.runtime, args.mails)
        log(f"[{name}] seeded {args.mails:,} contacts in {time.perf_counter() - t0:.1f} s ({args.database})")

    def campaign(self) -> int:
        with transaction(self.runtime.factory) as s:
            return create_campaign(s, settings=self.settings, name="Bench", subject=SUBJECT, html=HTML, text=TEXT).id

    def outcome(self, campaign_id: int, wall: float, cpu: float) -> dict:
        """Sent mails, the rate between the first and the last mail, and per CPU-second."""
        with transaction(self.runtime.factory) as s:
            first, last = s.execute(select(func.min(Send.sent_at), func.max(Send.sent_at))
                                    .where(Send.campaign_id == campaign_id)).one()
            states = dict(s.execute(select(Send.state, func.count()).where(Send.campaign_id == campaign_id)
                                    .group_by(Send.state)).all())
        sent = states.get("sent", 0)
        rate = sent / max((last - first).total_seconds(), 1e-9) if sent else 0.0
        return {"states": states, "sent": sent, "msg_per_s": rate, "msg_per_s_with_startup": sent / wall,
                "cpu_s": cpu, "msg_per_cpu_s": sent / cpu if cpu else float("nan"), "wall_s": wall,
                "load_after": os.getloadavg()}

    def close(self) -> None:
        self.runtime.dispose()
        if self.pg_db:
            with _pg_admin(self.args) as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)'))


class _pg_admin:
    def __init__(self, args: argparse.Namespace) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(args.pg_url.replace("postgresql://", "postgresql+psycopg://"),
                                    isolation_level="AUTOCOMMIT")

    def __enter__(self):
        self.conn = self.engine.connect()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
        self.engine.dispose()


def measure_workers(shape: Shape, args: argparse.Namespace) -> dict:
    """`--workers` real `sendwell worker` processes on the queued campaign (the scale-out shape, by hand)."""
    from sendwell.worker.queue import Queue

    with transaction(shape.runtime.factory) as s:
        c = create_campaign(s, settings=shape.settings, name="Bench", subject=SUBJECT, html=HTML, text=TEXT)
        plan_campaign(s, campaign=c)
        batches = queue_campaign(s, campaign=c, batch_size=args.batch)
        campaign_id = c.id
    Queue(shape.runtime).enqueue_batches(campaign_id, batches)
    log(f"[workers] planned and queued {len(batches)} jobs; starting {args.workers} workers × {args.threads} sessions")
    wall = time.perf_counter()
    logs = shape.settings.data_dir
    workers = [subprocess.Popen([SENDWELL, "worker"], env=shape.env, stdout=subprocess.DEVNULL,
                                stderr=open(logs / f"w{i}.log", "w")) for i in range(args.workers)]
    try:
        while True:
            time.sleep(1)
            with transaction(shape.runtime.factory) as s:
                status = s.get(Campaign, campaign_id).status
            if status == "finished" or any(w.poll() is not None for w in workers):
                break
        wall = time.perf_counter() - wall
        cpu = sum(cpu_seconds(w.pid) for w in workers if w.poll() is None)
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    return shape.outcome(campaign_id, wall, cpu)


def measure_send_wait(shape: Shape, args: argparse.Namespace) -> dict:
    """`sendwell campaigns send ID --wait` as a user runs it: it plans, then delivers on its own processes."""
    campaign_id = shape.campaign()
    command = [SENDWELL, "campaigns", "send", str(campaign_id), "--wait"]
    env = shape.env | ({"SENDWELL_DELIVERY_PROCESSES": str(args.processes)} if args.processes is not None else {})
    log(f"[send-wait] {' '.join(command[1:])}" + (f" with SENDWELL_DELIVERY_PROCESSES={args.processes}"
                                                   if args.processes is not None else " (the default shape)"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    err = shape.settings.data_dir / "send-wait.log"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=open(err, "w"))
    code = proc.wait()
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and the children it waited for
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    lines = err.read_text(encoding="utf-8", errors="replace").splitlines()
    processes = next((ln for ln in lines if "delivery processes" in ln), "sendwell campaigns send: 1 delivery process")
    log(f"[send-wait] exit {code}; {processes.removeprefix('sendwell campaigns send: ')}")
    if code != 0:
        log("\n".join(lines[-20:]))
    return shape.outcome(campaign_id, wall, cpu) | {"exit": code, "processes_line": processes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=100_000)
    parser.add_argument("--shapes", default="send-wait,workers",
                        help="comma-separated: send-wait (`campaigns send --wait`, the default shape), "
                             "workers (`--workers` `sendwell worker` processes)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--processes", type=int, default=None,
                        help="SENDWELL_DELIVERY_PROCESSES for send-wait [default: unset, the product's default]")
    parser.add_argument("--hygiene", action="store_true", help="let the workers run the hygiene scheduler too")
    # One SMTP session per worker process: against a server on loopback there is no network
    # latency for more sessions to hide, and threads of one process only contend for the GIL,
    # which holds up whichever of them holds SQLite's write lock (docs/performance.md).
    # Against a remote server use more (SENDWELL_SMTP_CONCURRENCY, default 4).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--naive", type=int, default=300)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--queue", choices=["embedded", "redis"], default="embedded")
    parser.add_argument("--no-dkim", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--compare-clients", type=int, default=3000, metavar="N",
                        help="also send N pre-built mails with smtplib and with aiosmtplib (0: skip)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "send.json")
    args = parser.parse_args()
    shapes = [x.strip() for x in args.shapes.split(",") if x.strip()]
    if not set(shapes) <= {"send-wait", "workers"} or not shapes:
        sys.exit(f"--shapes: {args.shapes!r}: give send-wait, workers or both")
    if "send-wait" in shapes and args.no_dkim:
        sys.exit("--no-dkim: `campaigns send` refuses unsigned mail (compliance lint); use --shapes workers")
    if not shutil.which("smtp-sink"):
        sys.exit("smtp-sink not found: install postfix (see BENCHMARKS.md)")
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="sendwell-bench-send-"))
    port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % port, "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pem = generate_private_key("rsa", 2048)
        (tmp / "dkim.pem").write_bytes(pem)
        measured: dict[str, dict] = {}
        for name in shapes:
            shape = Shape(args, tmp, port, name)
            try:
                measured[name] = (measure_send_wait if name == "send-wait" else measure_workers)(shape, args)
            finally:
                shape.close()
            m = measured[name]
            log(f"[{name}] {m['sent']:,} sent ({m['states']}) — {m['msg_per_s']:,.0f} msg/s between first and last mail, "
                f"{m['msg_per_s_with_startup']:,.0f} msg/s including start-up; load average at the end "
                f"{m['load_after'][0]:.1f} on {cores} cores")
            log(f"  CPU: {m['cpu_s']:.1f} s → {m['msg_per_cpu_s']:,.0f} mails per CPU-second")
        # The headline: the default shape when measured, else the hand-started workers.
        main_shape = measured.get("send-wait") or measured["workers"]
        rate, per_cpu = main_shape["msg_per_s"], main_shape["msg_per_cpu_s"]
        baseline, baseline_cpu = naive(port, pem, args.naive)
        log(f"naive loop (smtplib + EmailMessage + dkimpy, {args.naive} mails): {baseline:,.0f} msg/s, "
            f"{baseline_cpu:,.0f} per CPU-second")
        clients = compare_clients(port, args.compare_clients) if args.compare_clients else {}
        for name, r in clients.items():
            log(f"SMTP client {name}, one session, pre-built 5 KB: {r['msg_per_s']:,.0f} msg/s, {r['msg_per_cpu_s']:,.0f} per CPU-second")
        ceiling = rsa_ceiling(cores)
        log(f"RSA-2048 sign ceiling: {ceiling['sign_per_core']:,.0f}/s per core × {cores} = {ceiling['ceiling']:,.0f}/s")
        result = {
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cores": cores, "python": platform.python_version(), "load_before": os.getloadavg()},
            "config": vars(args) | {"out": str(args.out)},
            "shapes": {k: {m: (round(v, 1) if isinstance(v, float) else v) for m, v in r.items()}
                       for k, r in measured.items()},
            "headline_shape": "send-wait" if "send-wait" in measured else "workers",
            "states": main_shape["states"],
            "sendwell_msg_per_s": round(rate, 1),
            "sendwell_msg_per_s_with_startup": round(main_shape["msg_per_s_with_startup"], 1),
            "sendwell_msg_per_cpu_s": round(per_cpu, 1),
            "load_average_after": main_shape["load_after"],
            "naive_msg_per_s": round(baseline, 1),
            "naive_msg_per_cpu_s": round(baseline_cpu, 1),
            "ratio_vs_naive_cpu": round(per_cpu / baseline_cpu, 2),
            "ratio_vs_ceiling_cpu": round(per_cpu * cores / ceiling["ceiling"], 3),
            "rsa_ceiling_msg_per_s": round(ceiling["ceiling"], 1),
            "ratio_vs_naive": round(rate / baseline, 2),
            "ratio_vs_ceiling": round(rate / ceiling["ceiling"], 3),
            "smtp_clients": clients,
            "targets": {"msg_per_s": 1200, "vs_naive": 10, "vs_ceiling": 0.5},
        }
        if len(measured) == 2:
            sw, wk = measured["send-wait"], measured["workers"]
            ratio, ratio_cpu = sw["msg_per_s"] / wk["msg_per_s"], sw["msg_per_cpu_s"] / wk["msg_per_cpu_s"]
            result["ratio_default_vs_workers"] = round(ratio, 2)
            result["ratio_default_vs_workers_cpu"] = round(ratio_cpu, 2)
            log(f"default shape (`campaigns send --wait`) / {args.workers} `sendwell worker` processes, same run: "
                f"{ratio:.2f} × wall clock ({sw['msg_per_s']:,.0f} against {wk['msg_per_s']:,.0f} msg/s), "
                f"{ratio_cpu:.2f} × per CPU-second ({sw['msg_per_cpu_s']:,.0f} against {wk['msg_per_cpu_s']:,.0f}; "
                "the shapes run one after the other, so the neighbours' load moves the wall-clock ratio)")
        log(f"ratios (wall clock, {result['headline_shape']}): {result['ratio_vs_naive']}× naive (target ≥ 10), "
            f"{result['ratio_vs_ceiling']} × ceiling (target ≥ 0.5), {rate:,.0f} msg/s (target ≥ 1,200 on 2 cores "
            "in the default shape)")
        log(f"ratios (CPU time, robust to the neighbours' load): {result['ratio_vs_naive_cpu']}× naive, "
            f"{result['ratio_vs_ceiling_cpu']} × ceiling")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    finally:
        sink.terminate()
        sink.wait()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
