"""Contacts managed in the admin through the real app: roles, add, edit, opt-out and erasure on request,
bulk changes with a confirmation step, export, import history."""

from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook
from sqlalchemy import func, select

from sendwell.db.models import Contact, Event, ImportBatch, Segment, Subscription, Suppression, Topic
from sendwell.db.session import transaction
from sendwell.optout.service import unsubscribe_contact
from tests.helpers import make_contact
from tests.web.admin.conftest import page_csrf
from tests.web.admin.test_import_campaigns import upload, wizard_form


def count(runtime, model=Contact) -> int:  # type: ignore[no-untyped-def]
    with transaction(runtime.factory) as s:
        return s.scalar(select(func.count()).select_from(model))


def make_topic(runtime, slug: str = "led-panels") -> int:  # type: ignore[no-untyped-def]
    with transaction(runtime.factory) as s:
        topic = Topic(slug=slug, name="LED panels")
        s.add(topic)
        s.flush()
        return topic.id


def test_a_viewer_reads_but_cannot_change_and_only_an_admin_erases(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        contact_id = make_contact(s).id
    viewer = as_role("viewer")
    page = viewer.get("/admin/contacts")
    assert page.status_code == 200 and 'name="id"' not in page.text and "/admin/contacts/new" not in page.text
    for path in ("/admin/contacts/new", f"/admin/contacts/{contact_id}/edit", "/admin/contacts/export?fmt=csv",
                 f"/admin/contacts/{contact_id}/unsubscribe", f"/admin/contacts/{contact_id}/erase"):
        assert viewer.get(path).status_code == 403, path
    token = page_csrf(viewer)
    assert viewer.post("/admin/contacts/new", data={"csrf_token": token, "email": "x@y.example"}).status_code == 403
    marketer = as_role("marketer")
    assert marketer.get(f"/admin/contacts/{contact_id}/unsubscribe").status_code == 200
    assert marketer.get(f"/admin/contacts/{contact_id}/erase").status_code == 403
    token = page_csrf(marketer)
    refused = marketer.post(f"/admin/contacts/{contact_id}/erase", data={"csrf_token": token, "reason": "asked"})
    assert refused.status_code == 403 and count(runtime) == 1


def test_add_a_contact_with_consent_and_a_topic(as_role, runtime) -> None:
    topic_id = make_topic(runtime)
    client = as_role("marketer")
    form = client.get("/admin/contacts/new")
    assert form.status_code == 200 and 'name="consent"' in form.text
    data = {"csrf_token": page_csrf(client, "/admin/contacts/new"), "email": "anna@licht.example",
            "first_name": "Anna", "company": "Licht GmbH", "country": "Germany", "stage": "prospect",
            "tags": "fair-2026， vip", "consent": "express", "consent_source": "trade_fair",
            "consent_date": "2026-11-02", "wording": "Yes, send me news", "topic": str(topic_id)}
    added = client.post("/admin/contacts/new", data=data)
    assert added.status_code == 303, added.text
    page = client.get(added.headers["location"])
    assert "The contact was added." in page.text and "LED panels" in page.text
    with transaction(runtime.factory) as s:
        contact = s.scalar(select(Contact))
        assert (contact.source, contact.country, contact.tags) == ("admin", "DE", ["fair-2026", "vip"])
        consent = contact.consents[0]
        assert consent.source == "admin:marketer@bright-lighting.example" and consent.source_kind == "trade_fair"
    again = client.post("/admin/contacts/new", data=data)
    assert again.status_code == 400 and "already exists" in again.text


def test_an_edit_never_resubscribes_and_the_form_says_why(as_role, runtime) -> None:
    topic_id = make_topic(runtime)
    with transaction(runtime.factory) as s:
        contact = make_contact(s, email="leaver@buyer.example")
        s.add(Subscription(contact_id=contact.id, topic_id=topic_id))
        s.flush()
        unsubscribe_contact(s, contact_id=contact.id, method="one_click")
        contact_id = contact.id
    client = as_role("marketer")
    form = client.get(f"/admin/contacts/{contact_id}/edit")
    assert re.search(rf'value="{topic_id}"[^>]* disabled', form.text)
    assert "only the person can subscribe again" in form.text
    token = page_csrf(client, f"/admin/contacts/{contact_id}/edit")
    # A forged form that ticks the disabled box anyway.
    saved = client.post(f"/admin/contacts/{contact_id}/edit", data={
        "csrf_token": token, "first_name": "Lea", "stage": "customer", "topic": str(topic_id), "tags": "x"})
    assert saved.status_code == 200 and 'id="refused"' in saved.text and "led-panels" in saved.text
    with transaction(runtime.factory) as s:
        status = s.scalar(select(Subscription.status).where(Subscription.contact_id == contact_id))
        contact = s.get(Contact, contact_id)
        assert status == "unsubscribed" and (contact.first_name, contact.stage) == ("Lea", "customer")
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1
    bad = client.post(f"/admin/contacts/{contact_id}/edit", data={"csrf_token": token, "stage": "nonsense"})
    assert bad.status_code == 400 and "unknown stage" in bad.text


def test_unsubscribe_on_request_needs_a_reason_and_is_audited(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        contact_id = make_contact(s).id
    client = as_role("marketer")
    token = page_csrf(client, f"/admin/contacts/{contact_id}/unsubscribe")
    no_reason = client.post(f"/admin/contacts/{contact_id}/unsubscribe", data={"csrf_token": token, "scope": "all"})
    assert no_reason.status_code == 400 and count(runtime, Suppression) == 0
    done = client.post(f"/admin/contacts/{contact_id}/unsubscribe",
                       data={"csrf_token": token, "scope": "all", "reason": "Phone call, 3 Dec"})
    assert done.status_code == 303 and count(runtime, Suppression) == 1
    with transaction(runtime.factory) as s:
        event = s.scalar(select(Event).where(Event.kind == "unsubscribed"))
        assert (event.method, event.data["admin"], event.data["reason"]) == (
            "admin", "marketer@bright-lighting.example", "Phone call, 3 Dec")


def test_erasure_on_request_needs_the_typed_address(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        contact_id = make_contact(s, email="gone@buyer.example").id
    client = as_role("admin")
    token = page_csrf(client, f"/admin/contacts/{contact_id}/erase")
    wrong = client.post(f"/admin/contacts/{contact_id}/erase",
                        data={"csrf_token": token, "reason": "Art 17 mail", "confirm_email": "other@x.example"})
    assert wrong.status_code == 400 and count(runtime) == 1
    done = client.post(f"/admin/contacts/{contact_id}/erase",
                       data={"csrf_token": token, "reason": "Art 17 mail", "confirm_email": "Gone@buyer.example"})
    assert done.status_code == 303 and count(runtime) == 0
    with transaction(runtime.factory) as s:
        event = s.scalar(select(Event).where(Event.kind == "contact_erased"))
        assert event.data["admin"] == "admin@bright-lighting.example" and event.data["reason"] == "Art 17 mail"


def test_bulk_tag_of_a_segment_shows_the_count_then_changes_all_in_one_step(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        for _ in range(3):
            make_contact(s, country="CN", industry="solar")
        other = make_contact(s, country="DE")
        s.add(Segment(name="China solar", expression="region = cn"))
        s.flush()
        segment_id = s.scalar(select(Segment.id))
    client = as_role("marketer")
    page = client.get("/admin/contacts", params={"segment": segment_id})
    assert "3 contacts" in page.text
    token = page_csrf(client, "/admin/contacts")
    form = {"csrf_token": token, "scope": "all", "segment": str(segment_id), "action": "add_tag", "value": "fair"}
    check = client.post("/admin/contacts/bulk", data=form)
    assert check.status_code == 200 and "Add the tag fair to 3 contacts?" in check.text
    assert count_tagged(runtime) == 0  # nothing changes before the confirmation
    done = client.post("/admin/contacts/bulk", data=form | {"confirm": "1"})
    assert done.status_code == 303 and "changed=3" in done.headers["location"]
    assert count_tagged(runtime) == 3
    # Ticked contacts only.
    ticked = client.post("/admin/contacts/bulk", data={"csrf_token": token, "scope": "ticked", "id": [str(other.id)],
                                                       "action": "delete", "confirm": "1"})
    assert ticked.status_code == 303 and count(runtime) == 3
    nothing = client.post("/admin/contacts/bulk", data={"csrf_token": token, "scope": "ticked", "action": "delete"})
    assert nothing.status_code == 400


def count_tagged(runtime) -> int:  # type: ignore[no-untyped-def]
    with transaction(runtime.factory) as s:
        return sum(1 for c in s.scalars(select(Contact)) if "fair" in (c.tags or []))


def test_export_as_csv_and_xlsx_with_header_bom_and_guarded_formulas(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, email="li@shenzhen.example", first_name="李", company="=cmd|'/c calc'!A1", country="CN")
        make_contact(s, email="anna@licht.example", country="DE")
        leaver = make_contact(s, email="leaver@buyer.example", country="CN")
        unsubscribe_contact(s, contact_id=leaver.id, method="page")
    client = as_role("marketer")
    got = client.get("/admin/contacts/export", params={"fmt": "csv", "region": "cn"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert "attachment" in got.headers["content-disposition"]
    assert got.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0][0] == "email" and [r[0] for r in rows[1:]] == ["li@shenzhen.example"]
    assert rows[1][1] == "李" and rows[1][3] == "'=cmd|'/c calc'!A1"
    xlsx = client.get("/admin/contacts/export", params={"fmt": "xlsx"})
    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][0] == "email" and sorted(r[0] for r in values[1:]) == ["anna@licht.example",
                                                                             "li@shenzhen.example"]


def test_import_history_lists_runs_and_downloads_rejected_rows(as_role, runtime) -> None:
    client = as_role("marketer")
    page = upload(client)
    token, form = wizard_form(page.text)
    form["map_4"] = "-"
    checked = client.post(f"/admin/import/{token}/check", data=form)
    assert re.search(r"New contacts: <strong>2</strong>", checked.text)  # the dry run counts the good rows
    assert count(runtime, ImportBatch) == 0  # a dry run is not a run
    client.post(f"/admin/import/{token}/run", data=form | {"skip_invalid": "1", "source": "Canton Fair"})
    history = client.get("/admin/import/history")
    assert history.status_code == 200 and "buyers.csv" in history.text
    assert "marketer@bright-lighting.example" in history.text
    with transaction(runtime.factory) as s:
        batch_id = s.scalar(select(ImportBatch.id))
    detail = client.get(f"/admin/import/history/{batch_id}")
    assert re.search(r"<td>3</td><td>Email address <code>email</code></td><td><span translate=\"no\">[^<]*</span>"
                     r" is not a valid address: it has no @ sign", detail.text)
    rejected = client.get(f"/admin/import/history/{batch_id}/rejected.csv")
    rows = list(csv.reader(io.StringIO(rejected.content.decode("utf-8-sig"))))
    assert rows[0] == ["row", "field", "message"] and rows[1][:2] == ["3", "email"]
    assert as_role("viewer").get("/admin/import/history").status_code == 200


def test_import_errors_are_shown_in_chinese(as_role) -> None:
    client = as_role("marketer", language="zh_Hans")
    page = upload(client, "email,country\nanna@licht.example,Atlantis\n")
    token, form = wizard_form(page.text)
    checked = client.post(f"/admin/import/{token}/check", data=form)
    assert '未知的国家 <span translate="no">&#39;Atlantis&#39;</span>（请使用 ISO 代码如 DE，或国家名称）' in checked.text
    no_email = upload(client, "name,company\nAnna,Licht\n")
    assert "没有邮箱列" in no_email.text and "&#39;name&#39;, &#39;company&#39;" in no_email.text
    token = page_csrf(client, "/admin/contacts/new")
    bad = client.post("/admin/contacts/new", data={"csrf_token": token, "email": "li@shenzhen.example",
                                                   "country": "Atlantis"})
    assert bad.status_code == 400 and "未知的国家" in bad.text
