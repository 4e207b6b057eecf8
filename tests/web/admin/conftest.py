"""Admin fixtures: a TestClient over the real app (https, so the Secure cookie is sent) and signed-in users."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator

import pytest

from sendwell.access.users import create_user
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "lantern-festival-2026"


@pytest.fixture(scope="session")
def dkim_key_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One RSA key for the session: the send gate refuses mail without DKIM (rule 23)."""
    from sendwell.delivery.dkim import generate_private_key

    path = tmp_path_factory.mktemp("dkim") / "admin.pem"
    path.write_bytes(generate_private_key())
    return str(path)


@pytest.fixture
def app(runtime: Runtime, dkim_key_file: str):  # type: ignore[no-untyped-def]
    runtime.replace_settings(runtime.settings.replace(dkim_domain=runtime.settings.sender_domain,
                                                      dkim_key_file=dkim_key_file))
    return create_app(runtime, outbox=False)


def new_client(app) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with new_client(app) as c:
        yield c


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/admin/login").text)
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
def make_user(runtime: Runtime) -> Callable[..., str]:
    def make(role: str = "admin", email: str | None = None, language: str = "en") -> str:
        email = email or f"{role}@bright-lighting.example"
        with transaction(runtime.factory) as s:
            create_user(s, email=email, password=PASSWORD, role=role, language=language)
        return email

    return make


@pytest.fixture
def as_role(app, make_user) -> Callable[[str], TestClient]:  # type: ignore[no-untyped-def]
    """`as_role("viewer")` → a client signed in as a new user with that role."""
    clients: list[TestClient] = []

    def make(role: str, language: str = "en") -> TestClient:
        c = new_client(app)
        c.__enter__()
        clients.append(c)
        assert sign_in(c, make_user(role, language=language)).status_code == 303
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def page_csrf(client: TestClient, path: str = "/admin/dashboard") -> str:
    return csrf_of(client.get(path).text)
