"""/suppressions: check by address through the peppered hash, add by hand, never remove."""

from __future__ import annotations

from sqlalchemy import func, select

from sendwell.db.models import Event, Suppression
from sendwell.db.session import transaction
from sendwell.suppression.service import hash_email
from tests.web.api.conftest import assert_problem

API = "/api/v1"


def test_add_then_check(client, admin, runtime) -> None:
    cid = client.post(f"{API}/contacts", headers=admin, json={"email": "ops@buyer.example"}).json()["id"]
    assert client.post(f"{API}/suppressions/check", headers=admin, json={"email": "ops@buyer.example"}).json() == {
        "suppressed": False, "entries": []}
    added = client.post(f"{API}/suppressions", headers=admin, json={"email": "ops@BUYER.example", "note": "asked by phone"})
    assert added.status_code == 201 and added.json()["reason"] == "manual" and added.json()["created"] is True
    again = client.post(f"{API}/suppressions", headers=admin, json={"email": "ops@buyer.example"})
    assert again.status_code == 200 and again.json()["created"] is False

    check = client.post(f"{API}/suppressions/check", headers=admin, json={"email": "OPS@buyer.example"}).json()
    assert check["suppressed"] is True and [e["reason"] for e in check["entries"]] == ["manual"]
    assert client.get(f"{API}/contacts/{cid}", headers=admin).json()["suppressed"] is True
    with transaction(runtime.factory) as s:
        row = s.scalar(select(Suppression))
        # Only the peppered hash is stored, never the address.
        assert row.email_hash == hash_email(runtime.settings.pepper, "ops@buyer.example")
        assert s.scalar(select(Event.data).where(Event.kind == "suppressed"))["reason"] == "manual"


def test_an_address_without_a_contact_can_be_suppressed(client, admin) -> None:
    assert client.post(f"{API}/suppressions", headers=admin, json={"email": "never@mail.example"}).status_code == 201
    assert client.post(f"{API}/suppressions/check", headers=admin, json={"email": "never@mail.example"}).json()["suppressed"]
    # A contact created later for that address is suppressed from the start.
    body = client.post(f"{API}/contacts", headers=admin, json={"email": "never@mail.example"}).json()
    assert body["suppressed"] is True


def test_topic_scope_is_not_a_full_suppression(client, admin) -> None:
    client.post(f"{API}/suppressions", headers=admin, json={"email": "a@b.example", "scope": "led-lighting"})
    check = client.post(f"{API}/suppressions/check", headers=admin, json={"email": "a@b.example"}).json()
    assert check["suppressed"] is False and check["entries"][0]["scope"] == "led-lighting"


def test_suppressions_cannot_be_removed(client, admin, runtime) -> None:
    client.post(f"{API}/suppressions", headers=admin, json={"email": "stay@away.example"})
    for method, path in [("DELETE", "/suppressions"), ("DELETE", "/suppressions/1"), ("PUT", "/suppressions"),
                         ("PATCH", "/suppressions"), ("DELETE", "/suppressions/check")]:
        response = client.request(method, f"{API}{path}", headers=admin, json={"email": "stay@away.example"})
        assert response.status_code in (404, 405)
        assert response.headers["content-type"] == "application/problem+json"
    with transaction(runtime.factory) as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1
    operations = client.get(f"{API}/openapi.json").json()["paths"]
    assert not any("delete" in ops for path, ops in operations.items() if "suppression" in path)


def test_bad_address_and_scope(client, admin, auth) -> None:
    assert_problem(client.post(f"{API}/suppressions/check", headers=admin, json={"email": "nope"}), 422, "email")
    assert_problem(client.post(f"{API}/suppressions", headers=admin, json={"email": "a@b.example", "scope": "All Of It"}),
                   422, "scope")
    assert_problem(client.post(f"{API}/suppressions", headers=auth("contacts:read"), json={"email": "a@b.example"}), 403)
