"""`sendwell demo`: the whole mission on the embedded default, against real loopback servers."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from sendwell.bootstrap import initialise
from sendwell.campaigns.service import create_campaign
from sendwell.config import CONFIG_FILE_NAME, Settings, load_settings, write_config_values
from sendwell.contacts.importer import import_contacts
from sendwell.db.models import Contact, Event
from sendwell.db.session import transaction
from sendwell.delivery.progress import campaign_status
from sendwell.delivery.runner import run_campaign
from sendwell.demo.api import api_demo
from sendwell.demo.audience import format_audience, run_audience_demo
from sendwell.demo.content import content_demo, format_content_summary
from sendwell.demo.domain import show_domain_check
from sendwell.demo.engagement_signals import show_engagement_signals
from sendwell.demo.feedback import feed_feedback, format_feedback
from sendwell.demo.feedback_signals import show_feedback_signals
from sendwell.demo.hygiene import format_hygiene, show_hygiene
from sendwell.demo.insight import format_insight, show_insight
from sendwell.demo.optout import exercise_optout, format_optout
from sendwell.demo.policy import format_policy, show_policy
from sendwell.demo.seed import write_contacts_csv
from sendwell.demo.sequence import finish_fair_sequence, format_sequence, start_fair_sequence
from sendwell.demo.smtp_server import CaptureSMTPServer, free_port
from sendwell.demo.warmup import show_warmup
from sendwell.flows import start_sending
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer

MARKER = ".sendwell-demo"
DEMO_IDENTITY = {
    "from_": "Ningbo Bright Lighting <sales@bright-lighting.example>",
    "company_name": "Ningbo Bright Lighting Co., Ltd.",
    "postal_address": "88 Jiangnan Road, Hi-Tech Zone, Ningbo, Zhejiang 315040, China",
    "contact_email": "sales@bright-lighting.example",
    "contact_phone": "+86 574 8888 6666",
    "website": "https://bright-lighting.example",
    "privacy_url": "https://bright-lighting.example/privacy",
    "list_id_name": "buyers-newsletter",
}
CAMPAIGN_HTML = """\
<h1 style="font-size:20px">Energy-saving LED panels for {{ contact.company or 'your business' }}</h1>
<p>Dear {{ contact.first_name or 'buyer' }},</p>
<p>Our 2026 LED panel range cuts energy use by 30% and ships with
{% region "eu", "uk" %}CE and UKCA marking, an EU declaration of conformity and RoHS test reports
{%- else %}{% region "us" %}UL 1598 listing and FCC Part 15 documentation
{%- else %}{% region "ca" %}cUL / CSA certification and FCC-equivalent ICES-005 documentation
{%- else %}CB certificates and IEC test reports{% endregion %}{% endregion %}{% endregion %}.</p>
{% stage "customer" %}<p>As an existing customer, you keep your 2025 prices until June.</p>{% endstage %}
<p>MOQ 200 pieces, samples in 7 days. Reply to this mail for the price list.</p>
"""


@dataclass
class DemoResult:
    data_dir: Path
    summary: dict[str, Any]


def prepare_dir(data_dir: Path) -> None:
    """A fresh demo folder; refuses to wipe a folder the demo did not create."""
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise RuntimeError(f"{data_dir} exists and is not a demo folder; choose another --data-dir")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("created by `sendwell demo`; deleted and recreated on each run\n")


def run_demo(data_dir: Path, *, contacts: int = 1200, unsubscribes: int = 6, say: Any = print) -> DemoResult:
    """Run the mission end to end and return the summary."""
    data_dir = data_dir.resolve()
    prepare_dir(data_dir)
    web_port = free_port()
    with CaptureSMTPServer(data_dir / "received") as smtp:
        overrides = dict(DEMO_IDENTITY, smtp_url=smtp.url, base_url=f"http://127.0.0.1:{web_port}",
                         database_url="", queue_url="")
        # The sender identity goes into the demo folder's config file, so `sendwell serve` and
        # `sendwell report` on that folder speak for the same company afterwards.
        write_config_values(data_dir / CONFIG_FILE_NAME, DEMO_IDENTITY)
        settings, _ = initialise(load_settings(data_dir=data_dir, **overrides), **overrides)
        runtime = Runtime(settings)
        say(f"1. Initialised {data_dir} (SQLite, DKIM key {settings.dkim_selector}._domainkey.{settings.dkim_domain})")

        csv_path = data_dir / "buyers.csv"
        write_contacts_csv(csv_path, count=contacts)
        with transaction(runtime.factory) as session:
            imported = import_contacts(session, path=csv_path, pepper=settings.pepper,
                                       source="Canton Fair 2026 and website inquiries",
                                       consent="express", topic="led-lighting")
        say(f"2. Imported {imported.created} buyers from {csv_path.name} with express consent")

        # The demo dispatches follow-up mails itself (exercise_optout), so each step's output is settled.
        with BackgroundServer(create_app(runtime, outbox=False), web_port):
            say(f"3. Web app on {settings.base_url}, capture SMTP server on {smtp.url}")
            first = send_campaign(runtime, "Spring LED range — EU, UK and North America",
                          "region in (eu, uk, us, ca)")
            say(f"4. Campaign {first['id']} sent {first['states']['sent']} mails over SMTP")

            optouts = _unsubscribe_some(smtp.messages, settings, unsubscribes)
            say(f"5. {optouts['posted']} recipients clicked one-click unsubscribe (real HTTP POSTs); "
                f"a GET changed nothing; a repeated POST was harmless")
            feedback = feed_feedback(runtime, smtp.messages, optouts["addresses"], say)  # DSN bounces and a complaint
            feedback["signals"] = show_feedback_signals(runtime, smtp.messages, optouts["addresses"], say)

            second = send_campaign(runtime, "Summer LED follow-up — same audience",
                           "region in (eu, uk, us, ca)")
            say(f"6. Campaign {second['id']} sent {second['states']['sent']} mails, "
                f"skipped {sum(second['skipped'].values())}: {second['skipped']}")
            optout = exercise_optout(runtime, smtp.messages[first["states"]["sent"] + first["states"]["failed"]:],
                                     optouts["addresses"], say)
            say("8. Frequency policy: a same-week extra note to a prospect just mailed and to a customer who paused")
            policy = show_policy(runtime, after_campaign_id=second["id"], say=say)
            api = api_demo(runtime, settings.base_url, optouts["addresses"][0], say)
            fair = start_fair_sequence(runtime, smtp.messages, say)  # finished after hygiene: clicks need time
            insight = show_insight(runtime, smtp, send_campaign, say)
            insight["engagement"] = show_engagement_signals(runtime, smtp.messages, say)
        content = content_demo(runtime, [first["id"], second["id"]], say)

        with transaction(runtime.factory) as session:
            by_method = dict(session.execute(
                select(Event.method, func.count()).where(Event.kind == "unsubscribed").group_by(Event.method)
            ).all())
            total_contacts = session.scalar(select(func.count()).select_from(Contact))
            statuses = [campaign_status(session, campaign_id=c["id"]) for c in (first, second)]
        audience = run_audience_demo(runtime, data_dir, optouts["addresses"], say=say)
        # Last, so its sunset suppressions change none of the steps above.
        with BackgroundServer(create_app(runtime, outbox=False), web_port):
            hygiene = show_hygiene(runtime, settings.base_url, smtp.messages, say)
            sequence = finish_fair_sequence(runtime, fair, say)
        runtime.dispose()
        summary = {
            "data_dir": str(data_dir),
            "database": settings.effective_database_url,
            "mails_dir": str(data_dir / "received"),
            "mails_received": len(smtp.messages),
            "contacts": total_contacts,
            "campaigns": statuses,
            "unsubscribed": by_method,
            "unsubscribed_addresses": optouts["addresses"],
            "checks": optouts["checks"],
            "feedback": feedback,
            "lint": content,
            "api": api,
            "optout": optout,
            "insight": insight,
            "policy": policy,
            "audience": audience,
            "hygiene": hygiene,
            "sequence": sequence,
            "domain": show_domain_check(settings, say),  # step 16, against its own DNS server
        }
        summary["warmup"] = show_warmup(settings, data_dir, say)  # after the counts above: it mails through its own relay
    return DemoResult(data_dir=data_dir, summary=summary)


def send_campaign(runtime: Runtime, name: str, segment: str) -> dict[str, Any]:
    """Create a campaign from the demo template, pass the gate, plan, and deliver it here."""
    with transaction(runtime.factory) as session:
        campaign = create_campaign(
            session, settings=runtime.settings, name=name,
            subject="{{ contact.first_name or 'Hello' }}, our 2026 LED panels, samples in 7 days",
            html=CAMPAIGN_HTML, segment=segment, topic="led-lighting",
        )
        start_sending(session, settings=runtime.settings, campaign_id=campaign.id)  # lint gate, plan, queue
        campaign_id = campaign.id
    deliverer = runtime.make_deliverer()
    try:
        return run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
    finally:
        deliverer.transport.close()


_URL = re.compile(r"<(https?://[^>]+)>")


def _unsubscribe_some(messages: list[Any], settings: Settings, count: int) -> dict[str, Any]:
    """POST to the List-Unsubscribe URLs of a spread of received mails, as a mail client would."""
    step = max(1, len(messages) // count)
    picked = messages[::step][:count]
    checks: dict[str, Any] = {}
    addresses: list[str] = []
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        for i, received in enumerate(picked):
            msg = email.message_from_bytes(received.data, policy=email.policy.default)
            url = _URL.search(str(msg["List-Unsubscribe"])).group(1)  # type: ignore[union-attr]
            if i == 0:
                page = client.get(url)  # what a link scanner or a curious person does
                checks["get_status"] = page.status_code
            # RFC 8058 §3.1: exactly what Gmail / Yahoo send.
            response = client.post(url, data={"List-Unsubscribe": "One-Click"})
            if response.status_code != 200:
                raise RuntimeError(f"one-click POST to {url} answered {response.status_code}")
            if i == 0:
                again = client.post(url, data={"List-Unsubscribe": "One-Click"})
                checks["repeat_post_status"] = again.status_code
            addresses.append(received.rcpt_tos[0])
    return {"posted": len(picked), "addresses": addresses, "checks": checks}


def format_summary(summary: dict[str, Any]) -> str:
    """The closing report a person reads."""
    lines = ["", "Sendwell demo — summary", "=" * 23]
    for status in summary["campaigns"]:
        states = Counter({k: v for k, v in status["states"].items() if v})
        lines.append(f"Campaign {status['id']} “{status['name']}” ({status['status']}): "
                     + ", ".join(f"{k} {v}" for k, v in states.items()))
        if status["skipped"]:
            lines.append("    skipped by reason: " + ", ".join(f"{k} {v}" for k, v in status["skipped"].items()))
    if "policy" in summary:
        lines.extend(format_policy(summary["policy"]))
    lines.append(f"Unsubscribed: {sum(summary['unsubscribed'].values())} "
                 f"({', '.join(f'{k} {v}' for k, v in summary['unsubscribed'].items())})")
    lines.extend(format_feedback(summary))
    lines.extend(format_content_summary(summary["lint"]))
    if "optout" in summary:
        lines.extend(format_optout(summary["optout"]))
    if "insight" in summary:
        lines.extend(format_insight(summary["insight"]))
    lines.append(f"Contacts: {summary['contacts']}; mails received by the SMTP server: {summary['mails_received']}")
    if summary.get("api"):
        api = summary["api"]
        lines.append(f"REST API: upsert {api['upsert_status']}, engagement {api['engagement_status']}, "
                     f"unsubscribed address suppressed: {api['unsubscribed_is_suppressed']}, "
                     f"wrong scope → {api['wrong_scope_status']}; /metrics mails sent: {api['metrics_mails_sent']}")
    if "audience" in summary:
        lines.extend(format_audience(summary["audience"]))
    if "hygiene" in summary:
        lines.extend(format_hygiene(summary["hygiene"]))
    if "sequence" in summary:
        lines.extend(format_sequence(summary["sequence"]))
    lines.append(f"Mails (.eml):  {summary['mails_dir']}")
    lines.append(f"Database:      {summary['database']}")
    lines.append(f"Open the web app on this data:  SENDWELL_DATA_DIR={summary['data_dir']} sendwell serve")
    return "\n".join(lines)
