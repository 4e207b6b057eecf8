"""The feedback review page: forged and untied reports, newest first, with why nobody was changed."""

from __future__ import annotations

from sendwell.db.session import transaction
from sendwell.feedback.inbound import process_inbound
from tests.feedback.factories import DOMAIN, arf, dsn, make_sent
from tests.helpers import make_contact


def test_review_list_and_detail_in_english_and_chinese(as_role, runtime) -> None:
    client = as_role("viewer")
    assert "No report is waiting for review." in client.get("/admin/review").text
    with transaction(runtime.factory) as s:
        victim, other = make_contact(s), make_contact(s)
        send = make_sent(s, victim)
        bare = [f"bounce@{DOMAIN}"]
        process_inbound(s, raw=dsn(rcpt=victim.email, status="5.1.1"), rcpt_to=bare, settings=runtime.settings)
        process_inbound(s, raw=arf(rcpt=other.email, message_id=send.message_id), rcpt_to=bare,
                        settings=runtime.settings)
    page = client.get("/admin/review").text
    # Newest first: the complaint quoting someone else's Message-ID, then the bare forged bounce.
    assert page.index(other.email) < page.index(victim.email)
    assert "It quotes our Message-ID, but that mail went to someone else" in page
    assert "No VERP address and no Message-ID of ours" in page
    first_id = page.split('data-review="')[2].split('"')[0]
    detail = client.get(f"/admin/review/{first_id}").text
    assert "Final-Recipient: rfc822; " + victim.email in detail and 'data-why="not_tied"' in detail
    assert client.get("/admin/review/999999").status_code == 404
    chinese = as_role("marketer", language="zh_Hans").get("/admin/review").text
    assert "退信与投诉待审" in chinese and "没有 VERP 地址，也没有我方的 Message-ID" in chinese


def test_review_page_needs_a_sign_in(client) -> None:
    answer = client.get("/admin/review")
    assert answer.status_code in (303, 307) and "/admin/login" in answer.headers["location"]
