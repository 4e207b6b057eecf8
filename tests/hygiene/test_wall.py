"""The wall (COMPLIANCE row 19, DESIGN point 4): no entry point and no campaign kind can mail an
unsubscribed, complained or hard-bounced contact; what a real SMTP server received is the proof."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import update

from sendwell.access.service import create_token
from sendwell.campaigns.service import confirm_transactional, create_campaign
from sendwell.cli.main import cli, register_commands
from sendwell.contacts.records import ensure_topic
from sendwell.db.models import Event, Subscription, Suppression
from sendwell.db.session import transaction
from sendwell.demo.run import send_campaign as demo_send
from sendwell.flows import start_sending
from sendwell.followups import dispatch_outbox
from sendwell.optout.service import unsubscribe_contact
from sendwell.runtime import Runtime
from sendwell.suppression.service import suppress
from sendwell.web.app import create_app
from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.hygiene.conftest import deliver_all, hygiene_pass, hygiene_settings, old_contact

register_commands()
KINDS = ("marketing", "launch", "transactional", "reconfirmation")
BLOCKED = ("unsubscribed", "complained", "bounced")
# Caps wide open: the wall must hold by itself, not because a cap happened to skip someone.
CAPS = "new_lead=1000/1d,prospect=1000/1d,customer=1000/1d"
HTML = "<p>Hello {{ first_name }}, our new LED panels.</p><p><a href=\"{{ keep_url }}\">Keep</a></p>"


def confirm_if_transactional(rt: Runtime, campaign_id: int, kind: str) -> None:
    """A campaign labelled transactional is sent only once an admin has confirmed it is."""
    if kind == "transactional":
        with transaction(rt.factory) as s:
            confirm_transactional(s, campaign_id=campaign_id, email="admin@bright-lighting.example", role="admin")


def test_no_entry_point_and_no_kind_mails_an_opted_out_contact(tmp_path, db_url, smtp_server,
                                                                 dkim_key_file) -> None:
    settings = hygiene_settings(tmp_path, db_url, dkim_key_file, smtp_url=smtp_server.url, stage_caps=CAPS)
    rt = Runtime(settings)
    long_ago = datetime.now(timezone.utc) - timedelta(days=400)
    with transaction(rt.factory) as s:
        topic = ensure_topic(s, slug="led-lighting")  # the demo's sender mails this topic
        people = {n: old_contact(s, at=long_ago, email=f"{n}@buyer-{n}.example", country="US")
                  for n in ("ok", *BLOCKED)}
        for contact in people.values():
            s.add(Subscription(contact_id=contact.id, topic_id=topic.id))
        s.flush()
        unsubscribe_contact(s, contact_id=people["unsubscribed"].id, method="page")
        s.add(Event(kind="complained", contact_id=people["complained"].id))
        s.flush()
        unsubscribe_contact(s, contact_id=people["complained"].id, method="complaint")
        s.execute(update(Suppression).where(Suppression.contact_id == people["complained"].id)
                  .values(reason="complaint"))
        suppress(s, email_hash=people["bounced"].email_hash, reason="hard_bounce", contact_id=people["bounced"].id)
        blocked = {people[n].email for n in BLOCKED}
    # The one lawful mail to a leaver: the thank-you right after the opt-out (with its undo).
    dispatch_outbox(rt)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["unsubscribed@buyer-unsubscribed.example"]]
    smtp_server.messages.clear()

    expected: list[str] = []
    html_file = tmp_path / "mail.html"
    html_file.write_text(HTML, encoding="utf-8")

    # 1. The CLI: campaigns create + campaigns send --wait.
    env = {"SENDWELL_DATA_DIR": str(tmp_path / "cli"), "SENDWELL_DATABASE_URL": db_url,
           "SENDWELL_SMTP_URL": smtp_server.url, "SENDWELL_SECRET_KEY": TEST_SECRET,
           "SENDWELL_HASH_PEPPER": TEST_PEPPER, "SENDWELL_FROM": settings.from_,
           "SENDWELL_COMPANY_NAME": settings.company_name, "SENDWELL_POSTAL_ADDRESS": settings.postal_address,
           "SENDWELL_CONTACT_EMAIL": settings.contact_email, "SENDWELL_BASE_URL": settings.base_url,
           "SENDWELL_DKIM_DOMAIN": settings.dkim_domain, "SENDWELL_DKIM_KEY_FILE": settings.dkim_key_file,
           "SENDWELL_PRIVACY_URL": settings.privacy_url, "SENDWELL_STAGE_CAPS": CAPS,
           "SENDWELL_CLICK_TRACKING": "false"}
    runner = CliRunner()
    for kind in KINDS:
        subject = f"wall cli {kind}"
        made = runner.invoke(cli, ["campaigns", "create", "--name", subject, "--subject", subject, "--html",
                                   str(html_file), "--kind", kind, "--json"], env=env)
        assert made.exit_code == 0, made.output
        confirm_if_transactional(rt, json.loads(made.output)["id"], kind)
        sent = runner.invoke(cli, ["campaigns", "send", str(json.loads(made.output)["id"]), "--wait", "--json"],
                             env=env)
        assert sent.exit_code == 0, sent.output
        expected.append(subject)

    # 2. The service flow every adapter shares (flows.start_sending), delivered in-process.
    for kind in KINDS:
        subject = f"wall flow {kind}"
        with transaction(rt.factory) as s:
            campaign = create_campaign(s, settings=settings, name=subject, subject=subject, html=HTML, kind=kind)
        confirm_if_transactional(rt, campaign.id, kind)
        with transaction(rt.factory) as s:
            start_sending(s, settings=settings, campaign_id=campaign.id)
        deliver_all(rt, [campaign.id])
        expected.append(subject)

    # 3. The REST API: create and send; the queued sends are then delivered as a worker would.
    client = TestClient(create_app(rt, outbox=False))
    with transaction(rt.factory) as s:
        auth = {"Authorization": f"Bearer {create_token(s, name='wall', scopes=['campaigns:write']).secret}"}
    for kind in KINDS:
        subject = f"wall api {kind}"
        made = client.post("/api/v1/campaigns", headers=auth,
                           json={"name": subject, "subject": subject, "html": HTML, "kind": kind})
        assert made.status_code == 201, made.text
        confirm_if_transactional(rt, made.json()["id"], kind)
        sent = client.post(f"/api/v1/campaigns/{made.json()['id']}/send", headers=auth)
        assert sent.status_code == 200, sent.text
        deliver_all(rt, [made.json()["id"]])
        expected.append(subject)

    # 4. The demo's sender.
    demo = demo_send(rt, "wall demo", "")
    assert demo["states"]["sent"] == 1, demo  # the lawful recipient only
    expected.append("our 2026 LED panels")

    # 5. The hygiene pass: its reconfirmation campaign asks only the still-subscribed.
    result = hygiene_pass(rt, datetime.now(timezone.utc))
    assert result.report["jobs"]["sunset"]["entered"] == 1
    expected.append("Do you still want to hear from us?")

    # 6. The thank-you path: a repeated opt-out queues nothing, a complaint never gets one.
    with transaction(rt.factory) as s:
        for name in BLOCKED:
            unsubscribe_contact(s, contact_id=people[name].id, method="one_click")
    dispatch_outbox(rt)

    received = [(m.rcpt_tos[0], m.data) for m in smtp_server.messages]
    assert not [to for to, _ in received if to in blocked], "a mail reached an opted-out contact"
    assert {to for to, _ in received} == {people["ok"].email}
    # Every entry point and kind did send (to the one lawful recipient): the wall is not an outage.
    subjects = [str(email.message_from_bytes(data, policy=email.policy.default)["Subject"]) for _, data in received]
    missing = [s for s in expected if not any(s in got for got in subjects)]
    assert not missing, (missing, subjects)
    rt.dispose()


def test_the_wall_covers_every_campaign_kind() -> None:
    from sendwell.db.models import CampaignKind

    # A new kind must be added to the wall above before it can ship.
    assert set(KINDS) == {k.value for k in CampaignKind}
