"""API fixtures: a TestClient over the real app on the test database, and tokens with chosen scopes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest

from sendwell.access.service import create_token
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="session")
def dkim_key_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One RSA-2048 key for the session: the send gate refuses mail without DKIM (rule 23)."""
    from sendwell.delivery.dkim import generate_private_key

    path = tmp_path_factory.mktemp("dkim") / "sendwell.bright-lighting.example.pem"
    path.write_bytes(generate_private_key())
    return str(path)


@pytest.fixture
def client(runtime: Runtime, dkim_key_file: str) -> Iterator[TestClient]:
    runtime.replace_settings(runtime.settings.replace(dkim_domain=runtime.settings.sender_domain,
                                                      dkim_key_file=dkim_key_file))
    # No background outbox dispatcher: tests dispatch themselves, so none races a test's receiver.
    with TestClient(create_app(runtime, outbox=False)) as c:
        yield c


@pytest.fixture
def auth(runtime: Runtime) -> Callable[..., dict[str, str]]:
    """`auth("contacts:read")` → headers carrying a fresh token with those scopes."""

    def make(*scopes: str) -> dict[str, str]:
        with transaction(runtime.factory) as session:
            secret = create_token(session, name="test", scopes=list(scopes)).secret
        return {"Authorization": f"Bearer {secret}"}

    return make


@pytest.fixture
def admin(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth("admin")


def assert_problem(response, status: int, field: str | None = None) -> dict:
    """The response is an RFC 9457 problem of this status (naming `field`, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body
