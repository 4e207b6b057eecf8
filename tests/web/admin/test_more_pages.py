"""Unsubscribes, feedback, outbox and settings pages."""

from __future__ import annotations

import re

from sendwell.db.models import Event
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.web.admin.data import XSS, seed_history


def test_unsubscribes_page_counts_reasons_and_lists_the_audit_log(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        seed_history(s, days=2)
        contact = make_contact(s, email="xss@evil.example", first_name=XSS)
        s.add(Event(kind="unsubscribed", contact_id=contact.id, method="page", ip="198.51.100.7"))
    page = as_role("viewer").get("/admin/unsubscribes")
    assert page.status_code == 200
    assert re.search(r'data-reason="too_many">3<', page.text)  # 1 + 2 over the two days
    assert "xss@evil.example" in page.text and "One-click unsubscribe" in page.text
    assert "Reasons by region" in page.text and XSS not in page.text


def test_feedback_page_counts_bounces_and_complaints(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, email="gone@example.org")
        s.add(Event(kind="bounced", contact_id=contact.id, data={"kind": "hard", "status": "5.1.1"}))
        s.add(Event(kind="complained", contact_id=contact.id, data={"feedback_type": "abuse"}))
    page = as_role("viewer").get("/admin/feedback")
    assert re.search(r'data-kind="bounced">1<', page.text) and re.search(r'data-kind="complained">1<', page.text)
    assert "5.1.1" in page.text and "gone@example.org" in page.text


def test_outbox_lists_captured_mail_and_shows_it_as_text(as_role, runtime) -> None:
    outbox = runtime.settings.capture_dir
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / "1-abc.eml").write_bytes(b"X-Envelope-To: <anna@licht.example>\r\nSubject: Hello <b>there</b>\r\n"
                                      b"From: sales@bright-lighting.example\r\n\r\n<script>alert(1)</script>\r\n")
    client = as_role("viewer")
    page = client.get("/admin/outbox")
    assert "anna@licht.example" in page.text and "Hello &lt;b&gt;there&lt;/b&gt;" in page.text
    mail = client.get("/admin/outbox/1-abc.eml")
    assert mail.status_code == 200 and XSS not in mail.text and "&lt;script&gt;" in mail.text
    assert client.get("/admin/outbox/..%2Fsendwell.env").status_code == 404
    assert client.get("/admin/outbox/missing.eml").status_code == 404


def test_settings_show_identity_and_the_dkim_record_to_admins_only(as_role, runtime) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url="smtps://mailer:s3cret@smtp.example:465"))
    page = as_role("admin").get("/admin/settings")
    assert page.status_code == 200
    assert "Ningbo Bright Lighting Co., Ltd." in page.text and 'data-dkim="configured"' in page.text
    assert "._domainkey." in page.text and "v=DKIM1; k=rsa; p=" in page.text
    assert "s3cret" not in page.text and "mailer:•••@smtp.example" in page.text
    assert as_role("marketer").get("/admin/settings").status_code == 403


def test_settings_say_when_dkim_is_missing(as_role, runtime) -> None:
    runtime.replace_settings(runtime.settings.replace(dkim_key_file=""))
    assert 'data-dkim="missing"' in as_role("admin").get("/admin/settings").text


def test_segments_live_count_save_and_delete(as_role, runtime) -> None:
    from tests.web.admin.conftest import page_csrf

    with transaction(runtime.factory) as s:
        for country in ("DE", "FR", "US"):
            make_contact(s, country=country)
    client = as_role("marketer")
    live = client.get("/admin/segments/count", params={"expression": "region = eu"}, headers={"HX-Request": "true"})
    assert re.search(r'data-count="matching">2<', live.text) and "<html" not in live.text
    bad = client.get("/admin/segments/count", params={"expression": "colour = red"})
    assert "colour" in bad.text and 'class="error"' in bad.text
    token = page_csrf(client, "/admin/segments")
    assert client.post("/admin/segments", data={"csrf_token": token, "name": "EU buyers",
                                                "expression": "region = eu"}).status_code == 303
    listed = client.get("/admin/segments").text
    assert "EU buyers" in listed and "region = eu" in listed
    refused = client.post("/admin/segments", data={"csrf_token": token, "name": "Bad", "expression": "colour = red"})
    assert refused.status_code == 400
    assert client.post("/admin/segments/delete", data={"csrf_token": token, "name": "EU buyers"}).status_code == 303
    assert "EU buyers" not in client.get("/admin/segments").text
    viewer = as_role("viewer")
    assert viewer.post("/admin/segments", data={"csrf_token": page_csrf(viewer, "/admin/segments"), "name": "x",
                                                "expression": "region = eu"}).status_code == 403


def test_settings_list_webhook_endpoints_with_their_event_types(as_role, runtime) -> None:
    runtime.replace_settings(runtime.settings.replace(
        webhook_urls="https://crm.example/hook, https://ops:pw@ops.example/hook alert.raised"))
    page = as_role("admin").get("/admin/settings").text
    assert "https://crm.example/hook" in page and "every event type" in page
    assert "alert.raised" in page and "pw@" not in page
