"""Each admin page on both databases: data from the services, filters, timeline, escaping of contact data."""

from __future__ import annotations

import re

from sendwell.db.models import Campaign, Event, Send
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.web.admin.data import XSS, seed_history


def test_dashboard_shows_rates_alerts_trend_and_reasons_from_insight(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        seed_history(s)
    page = as_role("viewer").get("/admin/dashboard")
    assert page.status_code == 200
    # 300 delivered; 1+2+3+4+5 = 15 unsubscribed (5.00 %); 3 complaints (1.00 %).
    assert re.search(r'data-metric="delivered">300<', page.text)
    assert re.search(r'data-metric="unsubscribe_rate">5\.00%<', page.text)
    assert re.search(r'data-metric="complaint_rate">1\.00%<', page.text)
    trend = re.search(r'<script type="application/json" id="trend-data">(.*?)</script>', page.text).group(1)
    assert '"2026-11-01"' in trend and '"2026-11-05"' in trend
    assert "1.6667" in trend  # day 1: 1 of 60 unsubscribed, in percent
    assert 'data-dimension="region"' in page.text and 'data-dimension="stage"' in page.text
    assert "too_many" in page.text or "Too many" in page.text
    assert XSS not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert '<script src="/admin/static/uPlot.iife.min.js"' in page.text


def test_dashboard_without_data_says_so(as_role) -> None:
    page = as_role("viewer").get("/admin/dashboard")
    assert page.status_code == 200 and "No mail has been delivered yet." in page.text


def test_contacts_search_filters_and_paging(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        for i in range(55):
            make_contact(s, country="DE", stage="customer", industry="lighting")
        make_contact(s, email="li.wei@shenzhen-led.example", country="CN", stage="prospect", industry="solar",
                     company="Shenzhen LED")
    client = as_role("viewer")
    everyone = client.get("/admin/contacts")
    assert "56 contacts" in everyone.text and "Page 1 of 2" in everyone.text
    assert "56 contacts" in client.get("/admin/contacts?page=2").text
    found = client.get("/admin/contacts", params={"q": "shenzhen"})
    assert "1 contacts" in found.text and "li.wei@shenzhen-led.example" in found.text
    assert "1 contacts" in client.get("/admin/contacts", params={"industry": "solar", "region": "cn"}).text
    assert "55 contacts" in client.get("/admin/contacts", params={"stage": "customer"}).text
    # htmx asks for the rows only.
    rows = client.get("/admin/contacts", params={"q": "shenzhen"}, headers={"HX-Request": "true"})
    assert "<html" not in rows.text and "li.wei@shenzhen-led.example" in rows.text


def test_contact_timeline_has_consent_sends_and_events(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, email="anna@licht.example")
        campaign = Campaign(name="Spring catalogue", subject="s", html="h", status="finished")
        s.add(campaign)
        s.flush()
        s.add(Send(campaign_id=campaign.id, contact_id=contact.id, state="sent"))
        s.add(Event(kind="unsubscribed", contact_id=contact.id, campaign_id=campaign.id, method="one_click"))
        contact_id = contact.id
    client = as_role("viewer")
    page = client.get(f"/admin/contacts/{contact_id}")
    assert page.status_code == 200
    assert "Spring catalogue" in page.text and "Unsubscribed" in page.text and "Express consent" in page.text
    assert client.get("/admin/contacts/999999").status_code == 404


def test_contact_data_is_escaped_on_every_page(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s, email="xss@evil.example", first_name=XSS, last_name=XSS, company=XSS,
                               industry=XSS, source=XSS)
        campaign = Campaign(name=XSS, subject=XSS, html="<p>{{ first_name }}</p>", status="draft")
        s.add(campaign)
        s.flush()
        s.add(Event(kind="unsubscribe_reason", contact_id=contact.id, data={"reason": "other", "text": XSS}))
        ids = contact.id, campaign.id
    client = as_role("admin")
    for path in ("/admin/contacts", f"/admin/contacts/{ids[0]}", "/admin/contacts?q=evil", "/admin/dashboard",
                 "/admin/campaigns", f"/admin/campaigns/{ids[1]}", f"/admin/campaigns/{ids[1]}/report",
                 f"/admin/campaigns/{ids[1]}/preview"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert XSS not in page.text, path
    assert "&lt;script&gt;" in client.get(f"/admin/contacts/{ids[0]}").text


def test_static_files_and_licences_are_served(client) -> None:
    for name in ("htmx.min.js", "htmx.LICENSE.txt", "uPlot.iife.min.js", "uPlot.LICENSE.txt", "admin.css", "admin.js"):
        assert client.get(f"/admin/static/{name}").status_code == 200, name


def test_no_get_changes_anything(as_role, runtime) -> None:
    # Every admin route that changes state is POST-only: a GET on it is 405, never an action.
    client = as_role("admin")
    with transaction(runtime.factory) as s:
        campaign = Campaign(name="c", subject="s", html="h", status="sending")
        s.add(campaign)
        s.flush()
        cid = campaign.id
    for path in (f"/admin/campaigns/{cid}/send", f"/admin/campaigns/{cid}/pause", "/admin/logout", "/admin/language"):
        assert client.get(path).status_code == 405, path
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, cid).status == "sending"


def test_admin_creates_and_demotes_users_but_not_itself(as_role, runtime) -> None:
    from sendwell.access.users import get_user_by_email
    from tests.web.admin.conftest import page_csrf

    client = as_role("admin")
    token = page_csrf(client, "/admin/users")
    created = client.post("/admin/users", data={"csrf_token": token, "email": "mei@bright-lighting.example",
                                                "password": "a long enough password", "role": "marketer",
                                                "language": "zh_Hans"})
    assert created.status_code == 303
    assert "short" not in client.get("/admin/users").text
    with transaction(runtime.factory) as s:
        mei = get_user_by_email(s, email="mei@bright-lighting.example")
        me = get_user_by_email(s, email="admin@bright-lighting.example")
        assert (mei.role, mei.language) == ("marketer", "zh_Hans")
        mei_id, my_id = mei.id, me.id
    assert client.post(f"/admin/users/{mei_id}", data={"csrf_token": token, "role": "viewer",
                                                       "state": "enable"}).status_code == 303
    refused = client.post(f"/admin/users/{my_id}", data={"csrf_token": token, "role": "viewer", "state": "enable"})
    assert refused.status_code == 400 and "cannot demote or disable yourself" in refused.text
    weak = client.post("/admin/users", data={"csrf_token": token, "email": "x@b.example", "password": "short",
                                             "role": "viewer", "language": "en"})
    assert weak.status_code == 400 and "at least 10" in weak.text
    with transaction(runtime.factory) as s:
        assert get_user_by_email(s, email="mei@bright-lighting.example").role == "viewer"
        assert get_user_by_email(s, email="admin@bright-lighting.example").role == "admin"
    # Another user's language and password: the page shows the language; the new password signs in.
    assert client.post(f"/admin/users/{mei_id}", data={"csrf_token": token, "role": "viewer", "language": "en",
                                                       "password": "another long password",
                                                       "state": "enable"}).status_code == 303
    assert 'data-language="en"' in client.get("/admin/users").text
    short = client.post(f"/admin/users/{mei_id}", data={"csrf_token": token, "password": "short"})
    assert short.status_code == 400 and "at least 10" in short.text
    bad = client.post(f"/admin/users/{mei_id}", data={"csrf_token": token, "language": "klingon"})
    assert bad.status_code == 400 and "unknown language" in bad.text
    from sendwell.access.users import authenticate

    with transaction(runtime.factory) as s:
        mei = get_user_by_email(s, email="mei@bright-lighting.example")
        assert mei.language == "en"
        assert authenticate(s, email="mei@bright-lighting.example", password="another long password",
                            ip="127.0.0.1").user is not None
