"""GET /api/v1/feedback/reviews: untied bounces and complaints, read-only, in keyset pages."""

from __future__ import annotations

from sqlalchemy import select

from sendwell.db.models import Suppression
from sendwell.db.session import transaction
from sendwell.feedback.inbound import process_inbound
from tests.feedback.factories import DOMAIN, arf, dsn
from tests.helpers import make_contact
from tests.web.api.conftest import assert_problem


def _forge(runtime, count: int) -> list[str]:
    """Forged reports mailed to the bare bounce address, naming real contacts."""
    with transaction(runtime.factory) as session:
        emails = [make_contact(session).email for _ in range(count)]
        for i, email in enumerate(emails):
            raw = dsn(rcpt=email, status="5.1.1") if i % 2 == 0 else arf(rcpt=email)
            process_inbound(session, raw=raw, rcpt_to=[f"bounce@{DOMAIN}"], settings=runtime.settings)
    return emails


def test_reviews_list_in_pages_and_detail(client, runtime, auth) -> None:
    emails = _forge(runtime, 3)
    headers = auth("reports:read")
    first = client.get("/api/v1/feedback/reviews?limit=2", headers=headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["recipients"] for item in page["items"]] == [[emails[0]], [emails[1]]]
    assert [item["category"] for item in page["items"]] == ["hard", "complaint"]
    assert {item["why"] for item in page["items"]} == {"not_tied"} and "raw" not in page["items"][0]
    rest = client.get(f"/api/v1/feedback/reviews?after={page['next_after']}&limit=2", headers=headers).json()
    assert [item["recipients"] for item in rest["items"]] == [[emails[2]]] and rest["next_after"] is None
    detail = client.get(f"/api/v1/feedback/reviews/{page['items'][0]['id']}", headers=headers)
    assert detail.status_code == 200 and "Final-Recipient: rfc822; " + emails[0] in detail.json()["raw"]
    with transaction(runtime.factory) as session:
        assert session.scalar(select(Suppression.id)) is None  # nothing in the list suppressed anyone


def test_reviews_need_a_token_with_the_scope_and_404_names_the_id(client, auth) -> None:
    assert client.get("/api/v1/feedback/reviews").status_code == 401
    assert client.get("/api/v1/feedback/reviews", headers=auth("contacts:read")).status_code == 403
    assert_problem(client.get("/api/v1/feedback/reviews/99", headers=auth("reports:read")), 404)
