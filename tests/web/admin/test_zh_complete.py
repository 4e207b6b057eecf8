"""Every admin page, rendered for a user who reads Simplified Chinese, shows no English sentence or label.

The pages are every GET route of the admin (the test fails when a route has no page here), filled
with history data so tables are not empty, plus the pages a form answers with (an import step, the
live lint). The visible text is what a person reads: element text and the shown attributes, minus
<script>, <style>, <code>, <pre> and anything marked `translate="no"` (the operator's own data).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from sendwell.db.models import Campaign, Event, Reengagement, Send
from sendwell.db.session import transaction
from sendwell.delivery.warmup import parse_schedule, start_plan
from sendwell.feedback.inbound import process_inbound
from sendwell.flows import run_hygiene
from sendwell.content.templates import create_template
from sendwell.segments.service import create_segment
from sendwell.sequences.service import create_sequence
from sendwell.signup.service import create_form
from tests.feedback.dmarc_reports import RUA, google
from tests.feedback.factories import DOMAIN, dsn
from tests.helpers import make_contact
from tests.web.admin.conftest import page_csrf
from tests.web.admin.data import seed_history
from tests.web.admin.test_import_campaigns import upload, wizard_form

# Words that are the same in every language: products, standards, formats and units.
ALLOWED = frozenset("""
    Sendwell Gmail Google Microsoft Outlook Yahoo Apple iCloud QQ NetEase DKIM SPF DMARC SMTP SMTPS STARTTLS TLS
    Jinja2 CSV XLSX YAML API URL URLs MX PTR BIMI MTA-STS TLS-RPT VERP ARF DSN IMAP HTTP HTTPS HTML IP IPv4 IPv6 DNS TXT CNAME
    RFC ISO UTC ID GDPR CASL CAN-SPAM PECR B2B CRM ESP JSON htmx Message-ID List-Unsubscribe List-Unsubscribe-Post
    Reply-To Return-Path From To Subject Final-Recipient Feedback-Type rfc822 RSA SHA-256 PDF PNG SVG GIF JPEG
    MAIL FROM RCPT JPEG GIF
    Excel Webhook Alibaba Zoho Yandex Mail.ru GMX WEB.DE Orange Proton AOL rua ruf
    ms KB KiB MB GB
""".split())
# <title> repeats the page's heading (checked there) and cannot mark the user's data inside it.
# A <textarea> holds what the user typed.
SKIPPED_TAGS = frozenset({"script", "style", "code", "pre", "template", "title", "textarea"})
VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                       "wbr"})
SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
NOT_WORDS = re.compile(r"""
    [\w.+-]+@[\w-]+(\.[\w-]+)+          # e-mail addresses
  | https?://\S+                        # links
  | \b[\w-]+(\.[\w-]+)*\.(example|com|net|org|cn|de|test|invalid)\b   # domains
  | \{\{[^}]*\}\}                       # merge fields written as the marketer types them
  | \b[\w-]+\.(eml|csv|xlsx)\b          # file names
  | \#[0-9a-fA-F]{3,6}\b                # colours
  | \b[a-z]{1,4}=[^\s,;，；。）)]*          # record tags as published: d=example.com, p=none, rua=mailto:…
""", re.X)
WORD = re.compile(r"[A-Za-zÀ-ɏ][A-Za-zÀ-ɏ0-9_'’-]*")
# Text between two words that still joins them into one English run (no CJK, no digits-only breaks).
JOINS = re.compile(r"^[\s,;:.!?()'\"“”‘’/&+–—-]*$")

# Known English on pages whose strings other parts of the admin own: (page, run). It must shrink to
# empty: the test fails on English not listed here, and on an entry that is fixed (take it out).
UNREACHED = "(no page links here with the seed data)"
PENDING: set[tuple[str, str]] = set()
# Raw codes on the English admin in parts that other work owns: (page, code). It must shrink to empty too.
PENDING_CODES: set[tuple[str, str]] = set()


class VisibleText(HTMLParser):
    """The pieces of text a person sees, in page order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.stack: list[bool] = []  # per open element: is it hidden from the check

    def hidden(self) -> bool:
        return any(self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        # Text in another language on purpose (a language's own name, `lang="en"`) is not a gap.
        skip = (tag in SKIPPED_TAGS or values.get("translate") == "no" or "data-user-content" in values
                or "hidden" in values or tag != "html" and "lang" in values)
        if not self.hidden() and not skip:
            self.pieces += [values[a] or "" for a in SHOWN_ATTRIBUTES if values.get(a)]
            if tag == "input" and values.get("type") in ("submit", "button") or tag == "button" and values.get("value"):
                self.pieces.append(values.get("value") or "")
        if tag not in VOID_TAGS:
            self.stack.append(skip)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID_TAGS and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.hidden() and data.strip():
            self.pieces.append(data)


def visible_text(html: str) -> list[str]:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return parser.pieces


def english_runs(piece: str) -> list[str]:
    """Runs of words that are not allowed, joined only by spaces and punctuation: "Save draft", "one_click"."""
    text = NOT_WORDS.sub(" \x00 ", piece)
    runs: list[list[str]] = []
    last_end = None
    for match in WORD.finditer(text):
        word = match.group().strip("'’-")
        if word in ALLOWED or not word:
            last_end = None
            continue
        if last_end is not None and JOINS.match(text[last_end:match.start()]):
            runs[-1].append(word)
        else:
            runs.append([word])
        last_end = match.end()
    return [" ".join(run) for run in runs]


def page_runs(html: str) -> set[str]:
    return {run for piece in visible_text(html) for run in english_runs(piece)}


def test_the_checker_finds_english_and_leaves_chinese_codes_and_user_data_alone() -> None:
    html = """<html><head><title>仪表盘 · Sendwell</title><style>p { color: red }</style></head><body>
      <h1>Save draft</h1><p>退订方式：one_click</p><p>共 12 封，DKIM 已签名</p>
      <p translate="no">Anna Müller, Licht GmbH</p><code>SENDWELL_FROM</code><script>var x = "hello world";</script>
      <input type="submit" value="Send now"><input name="q" placeholder="搜索"><img alt="Logo">
      <option lang="en">English</option>
      <p>发给 anna@licht.example，见 https://bright-lighting.example/x 和 bright-lighting.example</p>
      <p>状态：None</p><p>2026-11-01 09:00 UTC</p></body></html>"""
    assert page_runs(html) == {"Save draft", "one_click", "Send now", "Logo", "None"}


# --- the pages -------------------------------------------------------------------------------------


def seed(runtime) -> None:  # type: ignore[no-untyped-def]
    """History, a draft, a contact with a full timeline, feedback to review, DMARC, warm-up, hygiene, a mail."""
    now = datetime.now(timezone.utc)
    with transaction(runtime.factory) as s:
        finished = seed_history(s, days=3, comment="Zu viele Mails")
        contact = make_contact(s, email="anna@licht.example", country="DE", stage="prospect", industry="lighting")
        draft = Campaign(name="Spring catalogue", subject="New panels", html="<p>Hello {{ frist_name }}</p>",
                         status="draft")
        s.add(draft)
        s.flush()
        for kind, data in (("unsubscribed", None), ("unsubscribe_reason", {"reason": "other", "text": "Weg"}),
                           ("resubscribed", None), ("clicked", None), ("complained", None),
                           ("bounced", {"category": "hard", "status": "5.1.1", "reason": "user unknown",
                                        "raw_ref": "sha256:0123abcd", "matched_by": "verp"})):
            s.add(Event(kind=kind, contact_id=contact.id, campaign_id=finished.id, data=data,
                        method="one_click" if kind == "unsubscribed" else None))
        other = make_contact(s)  # a forged bounce names it: one report to review
        process_inbound(s, raw=dsn(rcpt=other.email, status="5.1.1"), rcpt_to=[f"bounce@{DOMAIN}"],
                        settings=runtime.settings)
        process_inbound(s, raw=google(), rcpt_to=[RUA], settings=runtime.settings)
        start_plan(s, target="bright-lighting.example", schedule=parse_schedule("2,4;google=1,3"),
                   start=(now - timedelta(days=1)).date())
        create_segment(s, name="欧洲买家", expression="region = eu")  # shown in attributes too: no English
        create_template(s, name="Fair follow-up", subject="Good to meet you", html="<p>Hello {{ contact.first_name }}</p>")
        create_form(s, name="广交会", fields=["company"], language="zh_Hans")
        sequence = create_sequence(s, settings=runtime.settings, data={
            "name": "广交会跟进", "trigger": {"kind": "stage_changed", "to": "prospect"},
            "steps": [{"id": "thanks", "kind": "mail", "subject": "谢谢", "html": "<p>您好 {{ first_name }}</p>"},
                      {"id": "wait-3d", "kind": "wait", "days": 3}]})
        s.scalar(select(Campaign).where(Campaign.name == f"{sequence.name} · thanks")).status = "paused"
        s.add(Reengagement(contact_id=other.id, inactive_since=now - timedelta(days=200), entered_at=now))
    with transaction(runtime.factory) as s:
        run_hygiene(s, settings=runtime.settings, now=now, trigger="cli", dry_run=True)
    outbox = runtime.settings.capture_dir
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / "1-abc.eml").write_bytes(b"X-Envelope-To: <anna@licht.example>\r\nSubject: New panels\r\n"
                                      b"From: sales@bright-lighting.example\r\n\r\nHello\r\n")


def get_routes(app) -> set[str]:  # type: ignore[no-untyped-def]
    """The admin's GET paths (routers are included whole: their own prefix is in each route's path)."""
    found, todo = set(), list(app.routes)
    while todo:
        route = todo.pop()
        if isinstance(route, APIRoute) and "GET" in route.methods and route.path.startswith("/admin"):
            found.add(route.path)
        todo += getattr(getattr(route, "original_router", None), "routes", [])
    assert len(found) > 15
    return found


def route_pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/?]+", re.escape(path)) + r"(\?.*)?$")


def crawl(client, routes: set[str]) -> Iterator[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    """(route, html) for every GET route, reached by following the admin's own links (and GET forms) from the plain routes;
    (route, None) for a route no link reached.

    Up to two links per route, so a draft and a finished campaign (or two kinds of contact) are both read.
    """
    # Fixed paths first, as /admin/campaigns/new must not count as /admin/campaigns/{campaign_id}.
    patterns = {path: route_pattern(path) for path in sorted(routes, key=lambda p: (p.count("{"), p))}
    todo = [path for path in sorted(routes) if "{" not in path]
    seen: set[str] = set(todo)
    read: dict[str, int] = {}
    while todo:
        url = todo.pop(0)
        route = next(path for path, pattern in patterns.items() if pattern.match(url))
        answer = client.get(url)
        if answer.status_code == 404 and "?" not in url:
            continue  # a page that needs a query (a segment to delete): a link brings it
        assert answer.status_code in (200, 303), (url, answer.status_code)
        read[route] = read.get(route, 0) + 1
        if answer.status_code == 303 or not answer.headers["content-type"].startswith("text/html"):
            continue  # /admin leads to the dashboard; an export is not a page
        yield route, answer.text
        forms = [re.search(r'action="(/admin/[^"#]*)"', tag) for tag in re.findall(r'<form\b[^>]*>', answer.text)
                 if 'method="get"' in tag]
        for href in re.findall(r'href="(/admin/[^"#]*)"', answer.text) + [form.group(1) for form in forms if form]:
            href = href.replace("&amp;", "&")
            match = next((path for path, pattern in patterns.items() if pattern.match(href)), None)
            if match is None or href in seen or read.get(match, 0) >= 2:
                continue
            if "{" in match or "?" in href and match not in read:
                seen.add(href)
                todo.append(href)
    for route in sorted(routes - set(read)):
        yield route, None  # no admin page links here with the seed data


def pages(client, app) -> Iterator[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    """(page, html) for every admin page, the import wizard's steps (its run makes the history pages) and
    the live lint."""
    # Chinese headers and names: the file's own words are the user's data.
    csv = "邮箱,名字,公司,国家\nanna@licht.example,安娜,明光照明,DE\nnot-an-address,坏行,某公司,FR\n"
    mapping = upload(client, csv)
    yield "POST /admin/import", mapping.text
    token, form = wizard_form(mapping.text)
    form |= {"consent": "express", "source": "广交会"}
    yield "POST /admin/import/{token}/check", client.post(f"/admin/import/{token}/check", data=form).text
    yield "POST /admin/import/{token}/run", client.post(f"/admin/import/{token}/run",
                                                       data=form | {"skip_invalid": "1"}).text
    yield from crawl(client, get_routes(app))
    listed = re.findall(r'href="(/admin/campaigns/\d+)"', client.get("/admin/campaigns").text)
    draft = next(url for url in listed if f'hx-post="{url}/lint"' in client.get(url).text)  # an editable draft
    form = {"csrf_token": page_csrf(client, draft), "name": "Spring", "subject": "New panels",
            "html": "<p>Hi {{ frist_name }}</p>", "segment": "", "topic": "", "kind": "marketing"}
    yield "POST /admin/campaigns/{campaign_id}/lint", client.post(draft + "/lint", data=form,
                                                                  headers={"HX-Request": "true"}).text


@pytest.fixture
def seeded(app, runtime) -> None:  # type: ignore[no-untyped-def]
    seed(runtime)


def english_in_chinese(client, app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(page, run) for page, html in pages(client, app)
            for run in (page_runs(html) if html is not None else [UNREACHED])}


def test_every_admin_page_in_chinese_has_no_english_left(as_role, app, seeded) -> None:
    client = as_role("admin", language="zh_Hans")
    client.headers["Accept-Language"] = "zh-CN"  # the sign-in page follows the browser
    found = english_in_chinese(client, app)
    left = sorted(found - PENDING)
    assert left == [], "English on the Chinese admin:\n" + "\n".join(f"{page}: {run}" for page, run in left)
    # A gap that is closed leaves PENDING, so the list only shrinks.
    closed = sorted(PENDING - found)
    assert closed == [], "Closed, take out of PENDING:\n" + "\n".join(f"{page}: {run}" for page, run in closed)


RAW_CODE = re.compile(r"\b(None|one_click|new_lead|sha256:\S*|[a-z]+_[a-z_]+|SENDWELL_[A-Z_]+)(?=\W|$)")


def test_the_english_admin_shows_labels_not_raw_codes(as_role, app, seeded) -> None:
    read = [(page, html) for page, html in pages(as_role("admin"), app) if html is not None]
    shown = {(page, code) for page, html in read
             for piece in visible_text(html) for code in RAW_CODE.findall(NOT_WORDS.sub(" ", piece))}
    # An inbound report's reference is evidence for audits, not even a code to show.
    shown |= {(page, "sha256:") for page, html in read if "sha256:" in html}
    assert sorted(shown - PENDING_CODES) == []
    assert sorted(PENDING_CODES - shown) == [], "closed: take these out of PENDING_CODES"


def test_a_refusal_reads_in_the_readers_language(as_role) -> None:
    client = as_role("viewer", language="zh_Hans")
    refused = client.post("/admin/segments", data={"csrf_token": page_csrf(client), "name": "x", "expression": "x"})
    assert refused.status_code == 403
    assert "您的角色（只读用户）无权执行此操作，需要营销人员权限" in refused.text
    assert "does not allow" not in refused.text


def test_the_users_page_refuses_in_the_readers_language(as_role, runtime) -> None:
    from sendwell.access.users import get_user_by_email

    client = as_role("admin", language="zh_Hans")
    with transaction(runtime.factory) as s:
        me = get_user_by_email(s, email="admin@bright-lighting.example").id
    refused = client.post(f"/admin/users/{me}", data={"csrf_token": page_csrf(client, "/admin/users"),
                                                      "role": "viewer", "state": "enable"})
    assert refused.status_code == 400 and "不能降低自己的角色或停用自己" in refused.text


def test_a_contacts_timeline_names_why_a_send_was_skipped(as_role, runtime) -> None:
    with transaction(runtime.factory) as s:
        contact = make_contact(s)
        campaign = Campaign(name="Winter range", subject="s", html="h", status="finished")
        s.add(campaign)
        s.flush()
        s.add(Send(campaign_id=campaign.id, contact_id=contact.id, state="skipped", skip_reason="frequency_cap"))
        contact_id = contact.id
    english = as_role("viewer").get(f"/admin/contacts/{contact_id}").text
    assert "Skipped (Frequency cap)" in english and "frequency_cap" not in english
    assert "已跳过 (频率上限)" in as_role("marketer", language="zh_Hans").get(f"/admin/contacts/{contact_id}").text
