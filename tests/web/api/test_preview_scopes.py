"""GET /campaigns/{id}/preview for one contact shows that person's data: it needs the contacts scope too."""

from __future__ import annotations

from tests.web.api.conftest import assert_problem
from tests.web.api.test_erase_lint_preview import API, _campaign, _contact


def test_preview_for_a_contact_needs_contacts_read(client, admin, auth) -> None:
    anna = _contact(client, admin, email="anna@licht.example", country="DE")
    campaign = _campaign(client, admin, segment="")
    url = f"{API}/campaigns/{campaign}/preview"

    # A campaigns-only token still sees the samples, but not a chosen person's name and address.
    campaigns_only = auth("campaigns:read")
    assert client.get(url, headers=campaigns_only).status_code == 200
    refused = assert_problem(client.get(url, params={"contact_id": anna}, headers=campaigns_only), 403)
    assert "contacts:read" in refused["detail"]
    assert "anna@licht.example" not in str(refused) and "Anna" not in str(refused)
    assert 'scope="contacts:read"' in client.get(url, params={"contact_id": anna},
                                                 headers=campaigns_only).headers["WWW-Authenticate"]
    # Unknown ids are refused the same way: the answer does not tell which contacts exist.
    assert_problem(client.get(url, params={"contact_id": 999999}, headers=campaigns_only), 403)

    both = auth("campaigns:read", "contacts:read")
    one = client.get(url, params={"contact_id": anna}, headers=both)
    assert one.status_code == 200, one.text
    assert [p["contact"]["email"] for p in one.json()["previews"]] == ["anna@licht.example"]
    assert client.get(url, params={"contact_id": anna}, headers=admin).status_code == 200
