"""The import wizard and the campaign editor through the real app, on both databases."""

from __future__ import annotations

import os
import re
import time

from sqlalchemy import func, select

from sendwell.db.models import Campaign, Contact, Send
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.web.admin.conftest import page_csrf

CSV = ("E-mail,名字,公司,国家,Notes\n"
       "anna@licht.example,Anna,Licht GmbH,DE,met at fair\n"
       "not-an-address,Bad,Row Ltd,FR,\n"
       "li@shenzhen.example,Li,Shenzhen LED,CN,\n")


def upload(client, text: str = CSV, name: str = "buyers.csv"):  # type: ignore[no-untyped-def]
    token = page_csrf(client, "/admin/import")
    return client.post("/admin/import", data={"csrf_token": token}, files={"file": (name, text.encode(), "text/csv")})


def wizard_form(page: str) -> tuple[str, dict[str, str]]:
    """The wizard token and the mapping form's current values."""
    token = re.search(r'action="/admin/import/([^/]+)/check"', page).group(1)
    values = dict(re.findall(r'<select id="(map_\d+)" name="map_\d+">.*?<option value="([^"]*)" selected', page, re.S))
    values["csrf_token"] = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return token, values


def contacts(runtime) -> int:  # type: ignore[no-untyped-def]
    with transaction(runtime.factory) as s:
        return s.scalar(select(func.count()).select_from(Contact))


def test_import_wizard_prefills_mapping_reports_the_bad_row_and_imports(as_role, runtime) -> None:
    client = as_role("marketer")
    page = upload(client)
    assert page.status_code == 200, page.text
    token, form = wizard_form(page.text)
    # Prefilled by the CLI's header detection: Chinese and English variants.
    assert (form["map_0"], form["map_1"], form["map_2"], form["map_3"]) == ("email", "first_name", "company", "country")
    assert form["map_4"] == "custom:Notes"
    form["map_4"] = "-"
    checked = client.post(f"/admin/import/{token}/check", data=form | {"consent": "express", "source": "Canton Fair"})
    assert checked.status_code == 200
    assert re.search(r'data-metric="rejected">1<', checked.text)
    # row 3, field email (its label, its code), a reason quoting the file's value
    assert re.search(r'<td>3</td><td>Email address <code>email</code></td><td><span translate="no">[^<]+</span> is not',
                     checked.text)
    assert contacts(runtime) == 0  # a dry run writes nothing
    # All or nothing: with a bad row and no "skip", nothing is imported.
    refused = client.post(f"/admin/import/{token}/run", data=form | {"consent": "express"})
    assert "Nothing was imported" in refused.text and contacts(runtime) == 0
    done = client.post(f"/admin/import/{token}/run", data=form | {"consent": "express", "skip_invalid": "1",
                                                                  "source": "Canton Fair"})
    assert done.status_code == 200 and "2 new and 0 updated contacts were saved." in done.text
    assert contacts(runtime) == 2
    # The upload is gone once imported; its token no longer works.
    assert client.post(f"/admin/import/{token}/run", data=form).status_code == 404


def test_import_refuses_other_file_types_and_a_file_without_email(as_role) -> None:
    client = as_role("marketer")
    assert upload(client, "x", name="evil.html").status_code == 400
    page = upload(client, "name,company\nAnna,Licht\n")
    assert "no email column" in page.text


def test_viewer_cannot_import(as_role) -> None:
    client = as_role("viewer")
    assert client.get("/admin/import").status_code == 403


def make_draft(client, html: str) -> int:  # type: ignore[no-untyped-def]
    token = page_csrf(client, "/admin/campaigns/new")
    created = client.post("/admin/campaigns", data={"csrf_token": token, "name": "Spring", "subject": "New panels",
                                                    "html": html, "segment": "", "topic": "", "kind": "marketing"})
    assert created.status_code == 303, created.text
    return int(created.headers["location"].rsplit("/", 1)[1])


def test_campaign_lint_blocks_send_then_fix_and_send(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        for country in ("DE", "US"):
            make_contact(s, country=country, source="Canton Fair")
    client = as_role("marketer")
    cid = make_draft(client, "<p>Hello {{ frist_name }}</p>")
    page = client.get(f"/admin/campaigns/{cid}")
    assert 'data-lint="blocked"' in page.text and "frist_name" in page.text
    token = page_csrf(client, f"/admin/campaigns/{cid}")
    # The send gate is the same lint: 422, nothing planned.
    refused = client.post(f"/admin/campaigns/{cid}/send", data={"csrf_token": token})
    assert refused.status_code == 422 and "frist_name" in refused.text
    with transaction(runtime.factory) as s:
        assert s.scalar(select(func.count()).select_from(Send)) == 0
    fixed = {"csrf_token": token, "name": "Spring", "subject": "New panels", "html": "<p>Hello {{ first_name }}</p>",
             "segment": "", "topic": "", "kind": "marketing"}
    # Live lint on the unsaved form (htmx), and nothing is saved by it.
    live = client.post(f"/admin/campaigns/{cid}/lint", data=fixed, headers={"HX-Request": "true"})
    assert 'data-lint="ok"' in live.text and "<html" not in live.text
    with transaction(runtime.factory) as s:
        assert "frist_name" in s.get(Campaign, cid).html
    assert "Saved." in client.post(f"/admin/campaigns/{cid}", data=fixed).text
    sent = client.post(f"/admin/campaigns/{cid}/send", data={"csrf_token": token})
    assert sent.status_code == 303
    page = client.get(f"/admin/campaigns/{cid}")
    assert "Sending started." not in page.text  # only after the redirect with ?sent=1
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, cid).status == "sending"
        assert s.scalar(select(func.count()).select_from(Send).where(Send.campaign_id == cid)) == 2
    assert client.post(f"/admin/campaigns/{cid}/pause", data={"csrf_token": token}).status_code == 303
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, cid).status == "paused"
    assert client.post(f"/admin/campaigns/{cid}/send", data={"csrf_token": token}).status_code == 409
    assert client.post(f"/admin/campaigns/{cid}/resume", data={"csrf_token": token}).status_code == 303
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, cid).status == "sending"


def test_campaign_preview_per_region_and_language_in_a_sandbox(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", language="de", first_name="Anna")
        make_contact(s, country="CN", language="zh_Hans", first_name="Wei")
    client = as_role("marketer")
    cid = make_draft(client, "<p>Hello {{ first_name }}</p>")
    page = client.get(f"/admin/campaigns/{cid}/preview")
    assert page.status_code == 200
    frames = re.findall(r'<iframe sandbox="" title="[^"]*" srcdoc="([^"]*)"', page.text)
    assert len(frames) >= 2
    assert any("Anna" in f for f in frames) and any("Wei" in f for f in frames)
    assert all("<p>" not in f for f in frames)  # the mail's HTML is an escaped attribute value


def test_a_bad_segment_is_named(as_role) -> None:
    client = as_role("marketer")
    token = page_csrf(client, "/admin/campaigns/new")
    page = client.post("/admin/campaigns", data={"csrf_token": token, "name": "x", "subject": "y", "html": "<p>z</p>",
                                                 "segment": "colour = red", "kind": "marketing"})
    assert page.status_code == 400 and "segment:" in page.text


def test_test_send_mails_one_marked_copy_and_records_nothing(as_role, runtime) -> None:
    import email
    import email.policy

    from sendwell.db.models import Event

    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", first_name="Anna", source="Canton Fair")
    client = as_role("marketer")
    cid = make_draft(client, "<p>Hello {{ first_name }}</p>")
    token = page_csrf(client, f"/admin/campaigns/{cid}")
    page = client.post(f"/admin/campaigns/{cid}/test", data={"csrf_token": token, "to": "boss@bright-lighting.example"})
    assert page.status_code == 200 and "Test mail sent to boss@bright-lighting.example." in page.text
    (path,) = runtime.settings.capture_dir.glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["X-Envelope-To"] == "<boss@bright-lighting.example>" and message["To"] == "boss@bright-lighting.example"
    assert message["Subject"] == "[TEST] New panels" and message["DKIM-Signature"]
    assert "Anna" in message.get_body(("html",)).get_content()
    with transaction(runtime.factory) as s:
        assert s.scalar(select(func.count()).select_from(Send)) == 0
        assert s.scalar(select(func.count()).select_from(Event)) == 0
        assert s.get(Campaign, cid).status == "draft"
    bad = client.post(f"/admin/campaigns/{cid}/test", data={"csrf_token": token, "to": "not an address"})
    assert bad.status_code == 400 and "test mail:" in bad.text


def test_schedule_in_the_browsers_zone_then_unschedule(as_role, runtime) -> None:
    from datetime import datetime, timedelta, timezone

    with transaction(runtime.factory) as s:
        make_contact(s, country="DE")
    client = as_role("marketer")
    cid = make_draft(client, "<p>Hello {{ first_name }}</p>")
    token = page_csrf(client, f"/admin/campaigns/{cid}")
    page = client.get(f"/admin/campaigns/{cid}").text
    assert 'id="schedule-at"' in page and 'name="tz"' in page
    # What a browser in Shanghai sends for "tomorrow 09:00" typed into a datetime-local field.
    local = (datetime.now(timezone.utc) + timedelta(days=1)).astimezone(timezone(timedelta(hours=8)))
    typed = local.strftime("%Y-%m-%dT09:00")
    done = client.post(f"/admin/campaigns/{cid}/schedule", data={"csrf_token": token, "at": typed, "tz": "Asia/Shanghai"})
    assert done.status_code == 303 and done.headers["location"].endswith("?scheduled=1")
    with transaction(runtime.factory) as s:
        campaign = s.get(Campaign, cid)
        assert campaign.status == "scheduled"
        assert campaign.scheduled_at == datetime.fromisoformat(typed + "+08:00")  # 01:00 UTC
    page = client.get(f"/admin/campaigns/{cid}?scheduled=1").text
    assert "Scheduled." in page and f"{local:%Y-%m-%d} 01:00 UTC" in page and 'id="unschedule"' in page
    assert 'id="editor"' not in page  # no editing while scheduled
    assert client.post(f"/admin/campaigns/{cid}/send", data={"csrf_token": token}).status_code == 409
    assert client.post(f"/admin/campaigns/{cid}/unschedule", data={"csrf_token": token}).status_code == 303
    with transaction(runtime.factory) as s:
        assert (s.get(Campaign, cid).status, s.get(Campaign, cid).scheduled_at) == ("draft", None)


def test_schedule_errors_name_the_field(as_role) -> None:
    client = as_role("marketer")
    cid = make_draft(client, "<p>Hello {{ first_name }}</p>")
    token = page_csrf(client, f"/admin/campaigns/{cid}")
    zone = client.post(f"/admin/campaigns/{cid}/schedule", data={"csrf_token": token, "at": "2031-01-01T09:00",
                                                                 "tz": "Mars/Olympus"})
    assert zone.status_code == 400 and "time zone: unknown zone" in zone.text
    bad = client.post(f"/admin/campaigns/{cid}/schedule", data={"csrf_token": token, "at": "", "tz": "UTC"})
    assert bad.status_code == 400 and "start time: enter a date and a time" in bad.text
    past = client.post(f"/admin/campaigns/{cid}/schedule", data={"csrf_token": token, "at": "2020-01-01T09:00",
                                                                 "tz": "UTC"})
    assert past.status_code == 409 and "is not in the future" in past.text
    viewer = as_role("viewer")
    assert viewer.post(f"/admin/campaigns/{cid}/schedule",
                       data={"csrf_token": page_csrf(viewer), "at": "2031-01-01T09:00"}).status_code == 403


def stored_uploads(runtime) -> list[str]:  # type: ignore[no-untyped-def]
    folder = runtime.settings.data_dir / "admin-imports"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_upload_is_deleted_once_imported_or_cancelled(as_role, runtime) -> None:
    client = as_role("marketer")
    token, form = wizard_form(upload(client).text)
    assert len(stored_uploads(runtime)) == 2  # the file and its original name
    done = client.post(f"/admin/import/{token}/run", data=form | {"consent": "express", "skip_invalid": "1"})
    assert "were saved" in done.text and stored_uploads(runtime) == []
    page = upload(client).text
    token, form = wizard_form(page)
    assert f'formaction="/admin/import/{token}/cancel"' in page  # the wizard offers it
    cancelled = client.post(f"/admin/import/{token}/cancel", data={"csrf_token": form["csrf_token"]},
                            follow_redirects=False)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "/admin/import"
    assert stored_uploads(runtime) == []
    assert client.post(f"/admin/import/{token}/check", data=form).status_code == 404


def test_uploads_abandoned_for_a_day_are_deleted_on_the_next_upload(as_role, runtime) -> None:
    client = as_role("marketer")
    old_token, _ = wizard_form(upload(client).text)
    fresh_token, _ = wizard_form(upload(client).text)
    folder = runtime.settings.data_dir / "admin-imports"
    day_ago = time.time() - 25 * 3600
    for path in folder.glob(old_token + ".*"):
        os.utime(path, (day_ago, day_ago))
    newest, _ = wizard_form(upload(client).text)
    left = stored_uploads(runtime)
    assert not [name for name in left if name.startswith(old_token)]
    assert len([name for name in left if name.startswith((fresh_token, newest))]) == 4
