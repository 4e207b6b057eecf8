"""Templates, the brand layout and campaign clone / rename / delete / archive in the admin (TestClient)."""

from __future__ import annotations

from sendwell.campaigns.service import is_archived
from sendwell.db.models import BrandLayout, Campaign, MailTemplate
from sendwell.db.session import transaction
from tests.web.admin.conftest import page_csrf

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def _campaign(runtime, **fields) -> int:
    values = {"name": "Spring", "subject": "Spring panels", "html": "<p>Hello {{ contact.first_name }}</p>",
              "status": "draft"} | fields
    with transaction(runtime.factory) as s:
        campaign = Campaign(**values)
        s.add(campaign)
        s.flush()
        return campaign.id


def test_the_campaign_form_has_the_editor_over_a_plain_textarea(as_role, runtime) -> None:
    client = as_role("marketer")
    page = client.get("/admin/campaigns/new").text
    assert '<textarea id="html" name="html" required>' in page  # works without JavaScript
    for asset in ("grapes.min.js", "grapesjs-preset-newsletter.min.js", "grapesjs-zh.js", "pell.min.js",
                  "editor.js"):
        assert f'<script src="/admin/static/{asset}" defer></script>' in page
    assert 'value="{{ contact.first_name }}"' in page and 'value="{{ sender.company }}"' in page
    assert "cdn" not in page.lower()
    draft = client.get(f"/admin/campaigns/{_campaign(runtime)}").text
    assert 'id="editor-bar"' in draft and 'id="save-as-template"' in draft and 'id="delete-draft"' in draft


def test_templates_are_saved_from_a_campaign_edited_used_and_deleted(as_role, runtime) -> None:
    client = as_role("marketer")
    campaign_id = _campaign(runtime)
    token = page_csrf(client)
    saved = client.post(f"/admin/campaigns/{campaign_id}/save-as-template", data={"csrf_token": token})
    assert saved.status_code == 303
    with transaction(runtime.factory) as s:
        [template] = s.query(MailTemplate).all()  # the first, from the stored campaign
        assert (template.name, template.html, template.created_by) == (
            "Spring", "<p>Hello {{ contact.first_name }}</p>", "marketer@bright-lighting.example")
        template_id = template.id
    assert saved.headers["location"] == f"/admin/templates/{template_id}?saved=1"
    # From the editor: the fields as they are on screen, not yet saved to the campaign.
    typed = client.post(f"/admin/campaigns/{campaign_id}/save-as-template", data={
        "csrf_token": token, "name": "Spring (typed)", "subject": "Typed", "html": "<p>Not saved yet</p>"})
    with transaction(runtime.factory) as s:
        assert s.get(MailTemplate, int(typed.headers["location"].split("/")[3].split("?")[0])).html == "<p>Not saved yet</p>"
        assert s.get(Campaign, campaign_id).html == "<p>Hello {{ contact.first_name }}</p>"
    listing = client.get("/admin/templates").text
    assert f'data-template="{template_id}"' in listing and 'data-starter="fair_follow_up"' in listing
    changed = client.post(f"/admin/templates/{template_id}", data={
        "csrf_token": token, "name": "Spring base", "subject": "News", "html": "<p>Changed</p>"})
    assert changed.status_code == 303
    used = client.get(f"/admin/templates/{template_id}/use").text
    assert 'value="Spring base"' in used and "&lt;p&gt;Changed&lt;/p&gt;" in used and 'action="/admin/campaigns"' in used
    assert client.post(f"/admin/templates/{template_id}", data={
        "csrf_token": token, "name": " ", "html": "<p>x</p>"}).status_code == 400
    confirm = client.get(f"/admin/templates/{template_id}/delete").text
    assert 'id="confirm-delete"' in confirm and "Spring base" in confirm
    assert client.post(f"/admin/templates/{template_id}/delete", data={"csrf_token": token}).status_code == 303
    with transaction(runtime.factory) as s:
        assert s.get(MailTemplate, template_id) is None
    starter = client.get("/admin/templates/starter/newsletter").text
    assert "{{ contact.first_name or &#34;there&#34; }}" in starter
    assert client.get("/admin/templates/starter/nothing").status_code == 404


def test_viewers_may_read_templates_but_not_change_them(as_role, runtime) -> None:
    client = as_role("viewer")
    assert client.get("/admin/templates").status_code == 200
    campaign_id = _campaign(runtime)
    assert client.post(f"/admin/campaigns/{campaign_id}/save-as-template",
                       data={"csrf_token": page_csrf(client)}).status_code == 403
    assert client.post(f"/admin/campaigns/{campaign_id}/clone", data={"csrf_token": page_csrf(client)}).status_code == 403


def test_clone_rename_delete_and_archive_from_the_campaign_pages(as_role, runtime) -> None:
    client = as_role("marketer")
    token = page_csrf(client)
    draft_id = _campaign(runtime)
    finished_id = _campaign(runtime, name="Autumn", status="finished")
    cloned = client.post(f"/admin/campaigns/{finished_id}/clone", data={"csrf_token": token})
    copy_id = int(cloned.headers["location"].rsplit("/", 1)[1])
    assert client.get(f"/admin/campaigns/{copy_id}").text.count("Copy of Autumn") >= 1
    assert client.post(f"/admin/campaigns/{copy_id}/rename", data={"csrf_token": token, "name": "Winter"}
                       ).headers["location"] == f"/admin/campaigns/{copy_id}?renamed=1"
    # Deleting asks first; only a draft goes.
    assert 'id="confirm-delete"' in client.get(f"/admin/campaigns/{draft_id}/delete").text
    assert 'id="confirm-delete"' not in client.get(f"/admin/campaigns/{finished_id}/delete").text
    assert client.post(f"/admin/campaigns/{finished_id}/delete", data={"csrf_token": token}).status_code == 409
    assert client.post(f"/admin/campaigns/{draft_id}/delete", data={"csrf_token": token}).status_code == 303
    # Archived: out of the default list, in the archive filter.
    assert 'id="archive"' in client.get(f"/admin/campaigns/{finished_id}").text
    assert client.post(f"/admin/campaigns/{finished_id}/archive", data={"csrf_token": token}).status_code == 303
    current, archive = client.get("/admin/campaigns").text, client.get("/admin/campaigns?archived=1").text
    assert f'href="/admin/campaigns/{finished_id}"' not in current and f'href="/admin/campaigns/{copy_id}"' in current
    assert f'href="/admin/campaigns/{finished_id}"' in archive and f'href="/admin/campaigns/{copy_id}"' not in archive
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, draft_id) is None and s.get(Campaign, copy_id).name == "Winter"
        assert is_archived(s, campaign_id=finished_id)
    client.post(f"/admin/campaigns/{finished_id}/unarchive", data={"csrf_token": token})
    assert f'href="/admin/campaigns/{finished_id}"' in client.get("/admin/campaigns").text


def test_the_brand_page_takes_a_logo_and_serves_it_publicly(as_role, runtime, app) -> None:
    assert as_role("marketer").get("/admin/settings/brand").status_code == 403
    client = as_role("admin")
    token = page_csrf(client)
    refused = client.post("/admin/settings/brand", data={"csrf_token": token, "colour": "#1a5fb4"},
                          files={"logo": ("logo.png", b"<svg onload=alert(1)>", "image/png")})
    assert refused.status_code == 400 and "only PNG, JPEG and GIF" in refused.text
    saved = client.post("/admin/settings/brand", data={
        "csrf_token": token, "colour": "#1a5fb4", "background": "", "header_html": "<p>Bright</p>",
        "footer_html": "<p>Since 1998</p>"}, files={"logo": ("logo.png", PNG, "application/octet-stream")})
    assert saved.status_code == 303
    with transaction(runtime.factory) as s:
        version = s.get(BrandLayout, 1).logo_version
    page = client.get("/admin/settings/brand").text
    assert f'src="/brand/logo/{version}"' in page and "&lt;p&gt;Since 1998&lt;/p&gt;" in page
    from tests.web.admin.conftest import new_client
    with new_client(app) as anonymous:
        logo = anonymous.get(f"/brand/logo/{version}")
        assert logo.status_code == 200 and logo.content == PNG and logo.headers["content-type"] == "image/png"
        assert "immutable" in logo.headers["cache-control"]
    client.post("/admin/settings/brand", data={"csrf_token": token, "remove_logo": "1", "colour": "",
                                               "background": "", "header_html": "", "footer_html": ""})
    with new_client(app) as anonymous:
        assert anonymous.get(f"/brand/logo/{version}").status_code == 404
