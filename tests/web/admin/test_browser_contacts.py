"""Contacts managed in real headless Chromium: add, edit, bulk-tag a segment, export it; screenshots.

Screenshots go to docs/screenshots/admin-contacts-*.png (or SENDWELL_SCREENSHOTS_DIR) from the SQLite run.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sendwell.contacts.history import record_import
from sendwell.contacts.importer import import_contacts
from sendwell.db.models import Segment, Topic
from sendwell.db.session import transaction
from tests.helpers import TEST_PEPPER, make_contact
from tests.web.admin.test_browser import chromium, page, shoot, sign_in, site  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def seed(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with transaction(runtime.factory) as s:
        s.add(Topic(slug="led-panels", name="LED panels"))
        for n, (first, company) in enumerate([("Li", "Shenzhen LED"), ("Wang", "Guangzhou Solar"),
                                              ("Zhang", "Ningbo Lighting")]):
            make_contact(s, email=f"buyer{n}@cn-solar{n}.example", first_name=first, last_name="", company=company,
                         country="CN", industry="solar", stage="prospect", language="zh")
        make_contact(s, email="anna@licht.example", first_name="Anna", company="Licht GmbH", country="DE")
        s.add(Segment(name="China solar", expression="region = cn"))
        path = tmp_path / "canton-fair.csv"
        path.write_text("email,country\nmarta@lumen.example,ES\nwei@@bad,CN\nbob@bulbs.example,Atlantis\n",
                        encoding="utf-8")
        result = import_contacts(s, path=path, pepper=TEST_PEPPER, skip_invalid=True, rejected_path=False)
        record_import(s, filename="canton-fair.csv", imported_by="ops@bright-lighting.example", result=result,
                      source="Canton Fair 2026")


def test_add_edit_bulk_tag_a_segment_and_export_it(page, make_user, runtime, request, tmp_path) -> None:  # noqa: F811
    seed(runtime, tmp_path)
    sign_in(page, make_user("marketer"))
    page.goto("/admin/contacts")
    page.get_by_role("link", name="Add a contact").click()
    page.get_by_label("Email address").fill("olga@lampy.example")
    page.get_by_label("First name").fill("Olga")
    page.get_by_label("Company").fill("Lampy Sp. z o.o.")
    page.get_by_label("Country").fill("Poland")
    page.get_by_label("Consent of this contact").select_option("express")
    page.get_by_label("How it was given").select_option("trade_fair")
    page.get_by_label("LED panels").check()
    shoot(page, "contacts-form", request)
    page.get_by_role("button", name="Add contact").click()
    assert page.locator("#done").inner_text() == "The contact was added."
    assert "LED panels" in page.locator(".facts").inner_text()

    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Company").fill("Lampy S.A.")
    page.get_by_label("Tags").fill("fair-2026, vip")
    page.get_by_role("button", name="Save changes").click()
    assert page.locator("#done").inner_text() == "The changes were saved."
    facts = page.locator(".facts").inner_text()
    assert "Lampy S.A." in facts and "fair-2026, vip" in facts
    shoot(page, "contacts-contact", request)
    page.get_by_role("link", name="Unsubscribe on request").click()
    assert page.get_by_label("No more marketing mail at all").is_checked()
    shoot(page, "contacts-unsubscribe", request)

    page.goto("/admin/contacts")
    page.get_by_label("Saved segment").select_option(label="China solar")
    page.wait_for_selector("#contact-count:has-text('3 contacts')")
    page.locator("table.contacts tbody input[type=checkbox]").first.check()
    shoot(page, "contacts-list", request)
    page.get_by_label("All that match the filter").check()
    page.get_by_label("Action").select_option("add_tag")
    page.get_by_label("Tag, stage or topic").fill("canton-2026")
    page.get_by_role("button", name="Continue").click()
    assert "Add the tag canton-2026 to 3 contacts?" in page.locator("#bulk-count").inner_text()
    page.get_by_role("button", name="Yes, change 3 contacts").click()
    assert "3 contacts changed" in page.locator("#bulk-done").inner_text()
    page.wait_for_selector("#contact-count:has-text('3 contacts')")

    with page.expect_download() as download:
        page.locator("#export-csv").click()
    with open(download.value.path(), encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header[0] == "email" and len(body) == 3
    assert {r[0] for r in body} == {"buyer0@cn-solar0.example", "buyer1@cn-solar1.example", "buyer2@cn-solar2.example"}
    assert all(r[header.index("tags")] == "canton-2026" for r in body)

    page.goto("/admin/import/history")
    assert "canton-fair.csv" in page.locator("table.imports").inner_text()
    shoot(page, "contacts-import-history", request)
    page.get_by_role("link", name="canton-fair.csv").click()
    assert page.locator("table.rejected tbody tr").count() == 2
    # The same pages on a phone.
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (("/admin/contacts", "list"), ("/admin/contacts/new", "form"),
                       ("/admin/import/history", "import-history")):
        page.goto(path)
        page.wait_for_selector("h1")
        shoot(page, f"contacts-{name}-phone", request)


def test_the_contact_pages_in_chinese(page, make_user, runtime, request, tmp_path) -> None:  # noqa: F811
    seed(runtime, tmp_path)
    sign_in(page, make_user("marketer", language="zh_Hans"))
    page.goto("/admin/contacts")
    assert page.locator("h1").inner_text() == "联系人"
    page.locator("table.contacts tbody input[type=checkbox]").nth(1).check()
    shoot(page, "contacts-list-zh_Hans", request)
    page.goto("/admin/contacts/new")
    assert page.locator("h1").inner_text() == "添加联系人"
    shoot(page, "contacts-form-zh_Hans", request)
    page.goto("/admin/import/history")
    page.get_by_role("link", name="canton-fair.csv").click()
    assert "未知的国家" in page.locator("table.rejected").inner_text()
    page.goto("/admin/import/history")
    shoot(page, "contacts-import-history-zh_Hans", request)
