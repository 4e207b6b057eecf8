"""The Forms page: list with counts, create, edit (a consent edit is a new version), the embed snippet."""

from __future__ import annotations

from sendwell.contacts.records import create_topic
from sendwell.db.session import transaction
from sendwell.signup import service
from tests.web.admin.conftest import page_csrf


def test_create_edit_and_embed(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        create_topic(s, slug="led-news", name="LED news")
    client = as_role("marketer")
    assert "No signup forms yet." in client.get("/admin/forms").text
    csrf = page_csrf(client, "/admin/forms")
    made = client.post("/admin/forms", data={"csrf_token": csrf, "name": "Canton Fair", "language": "de",
                                             "field": ["first_name", "company"], "custom_fields": "booth",
                                             "topic": "led-news", "consent_text": "Ja, bitte."},
                       follow_redirects=False)
    assert made.status_code == 303, made.text
    path = made.headers["location"]
    page = client.get(path).text
    assert "Consent text version 1." in page and 'name=&#34;booth&#34;' in page and "/f/1" in page
    saved = client.post(path, data={"csrf_token": csrf, "name": "Canton Fair 2027", "language": "de",
                                    "field": ["first_name"], "topic": "led-news", "consent_text": "Ja, gerne."},
                        follow_redirects=False)
    assert saved.status_code == 303
    page = client.get(saved.headers["location"]).text
    assert "Saved." in page and "Consent text version 2." in page and "Canton Fair 2027" in page
    with transaction(runtime.factory) as s:
        form = service.get_form(s, form_id=1)
        assert form.consent_texts == ["Ja, bitte.", "Ja, gerne."] and form.fields == ["first_name"]
    listed = client.get("/admin/forms").text
    assert "Canton Fair 2027" in listed and 'href="/admin/forms"' in listed


def test_errors_show_and_a_viewer_only_reads(as_role, runtime) -> None:
    client = as_role("marketer")
    csrf = page_csrf(client, "/admin/forms")
    bad = client.post("/admin/forms", data={"csrf_token": csrf, "name": "X", "language": "it"})
    assert bad.status_code == 400 and "is not a form language" in bad.text
    viewer = as_role("viewer")
    assert "New signup form" not in viewer.get("/admin/forms").text
    assert viewer.post("/admin/forms", data={"csrf_token": page_csrf(viewer, "/admin/forms"), "name": "Y"}).status_code == 403


def test_chinese_page(as_role) -> None:
    page = as_role("marketer", language="zh_Hans").get("/admin/forms").text
    assert "订阅表单" in page and "New signup form" not in page
