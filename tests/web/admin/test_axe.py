"""axe-core in real headless Chromium over every admin page and the recipient pages: no violation of any impact.

axe (tests/web/admin/vendor/axe.min.js, a test tool, not shipped) is served to the page from
its own origin by a Playwright route, so the admin's CSP (`script-src 'self'`) stays as it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from sendwell.db.session import transaction
from sendwell.optout.tokens import SALT_CONFIRM, SALT_KEEP, SALT_PREFERENCES, SALT_UNSUBSCRIBE, TokenData, make_token
from sendwell.segments.service import create_segment
from tests.helpers import make_contact
from tests.web.admin.data import seed_history
from tests.web.admin.test_browser import chromium, page, sign_in, site  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
AXE_URL = "/__axe__/axe.min.js"  # never a route of the app: Playwright answers it
MAX_PAGES = 80
SKIP = re.compile(r"^/admin/(logout|static/)|\.(csv|json|xlsx|zip)$|/export|/download")


def axe_violations(tab) -> list[str]:  # type: ignore[no-untyped-def]
    """Each violation on the page as `rule (impact): target, …`."""
    tab.add_script_tag(url=AXE_URL)
    found = tab.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 5).map(n => n.target.join(' ')).join(', ')}`);
    }""")
    return [f"{tab.url}: {v}" for v in found]


def serve_axe(context: Any) -> None:
    context.route(f"**{AXE_URL}", lambda route: route.fulfill(body=AXE, content_type="text/javascript"))


def shape(href: str) -> str:
    """Pages of one kind count once: /admin/contacts/17 and /admin/contacts/18 are one shape."""
    parts = urlsplit(href)
    keys = ",".join(sorted(k for k, _ in parse_qsl(parts.query)))
    return re.sub(r"\d+", "N", parts.path.rstrip("/")) + "?" + keys


def test_every_admin_page_passes_axe(page, make_user, runtime, tmp_path) -> None:  # noqa: F811
    with transaction(runtime.factory) as s:
        seed_history(s, days=3, per_day=12)
        create_segment(s, name="Trade fair buyers", expression="country = DE")
    serve_axe(page.context)
    page.goto("/admin/login")
    violations = axe_violations(page)
    sign_in(page, make_user("admin"))
    # Every page the admin can reach by links from the dashboard, one of each shape.
    queue, seen, visited = ["/admin/dashboard", "/admin/campaigns/new", "/admin/no-such-page"], set(), []
    while queue and len(visited) < MAX_PAGES:
        href = queue.pop(0)
        if shape(href) in seen or SKIP.search(urlsplit(href).path):
            continue
        seen.add(shape(href))
        answer = page.goto(href)
        if answer is None or "text/html" not in answer.headers.get("content-type", ""):
            continue
        visited.append(href)
        violations += axe_violations(page)
        queue += [h for h in page.eval_on_selector_all("a[href^='/admin/']", "els => els.map(e => e.getAttribute('href'))")
                  if shape(h) not in seen]
    assert len(visited) > 15, visited  # the crawl reached the admin, not only the sign-in page
    # The import wizard's pages answer POSTs: reach them through the form.
    csv_file = tmp_path / "fair.csv"
    csv_file.write_text("email,country\nanna@licht.example,DE\nwei@@bad,CN\n", encoding="utf-8")
    page.goto("/admin/import")
    page.get_by_label("CSV or Excel file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and map columns").click()
    page.wait_for_selector("#map_0")
    violations += axe_violations(page)
    page.get_by_label("Consent of these contacts").select_option("express")
    page.get_by_label("Source (where the addresses come from)").fill("Canton Fair 2026")
    page.get_by_role("button", name="Check (dry run)").click()
    page.wait_for_selector("table.rejected")
    violations += axe_violations(page)
    # The page a role without the right gets.
    page.context.clear_cookies()
    sign_in(page, make_user("viewer"))
    assert page.goto("/admin/users").status == 403
    violations += axe_violations(page)
    assert violations == [], "\n".join(violations)


def test_the_recipient_pages_pass_axe(page, runtime) -> None:  # noqa: F811
    with transaction(runtime.factory) as s:
        contact_id = make_contact(s, country="DE").id
    keys = runtime.settings.secret_keys
    links = {salt: make_token(keys, salt, TokenData(contact_id, None, None))
             for salt in (SALT_UNSUBSCRIBE, SALT_PREFERENCES, SALT_KEEP, SALT_CONFIRM)}
    serve_axe(page.context)
    violations: list[str] = []
    for path in (f"/p/{links[SALT_PREFERENCES]}", f"/k/{links[SALT_KEEP]}", f"/c/{links[SALT_CONFIRM]}", "/manage",
                 "/u/not-a-valid-link", f"/u/{links[SALT_UNSUBSCRIBE]}"):
        page.goto(path)
        violations += axe_violations(page)
    page.locator("main form button[type=submit]").first.click()  # unsubscribe: the page after it
    page.wait_for_load_state()
    violations += axe_violations(page)
    assert violations == [], "\n".join(violations)
