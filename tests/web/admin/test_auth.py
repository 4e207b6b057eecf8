"""Sign-in, session cookie, CSRF, throttling and roles, through the real app."""

from __future__ import annotations

from sendwell.access.users import MAX_FAILURES_PER_EMAIL
from tests.web.admin.conftest import PASSWORD, csrf_of, page_csrf, sign_in


def test_pages_need_a_session(client) -> None:
    for path in ("/admin/dashboard", "/admin/contacts", "/admin/campaigns", "/admin/import"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/admin/login?next=")


def test_sign_in_sets_a_hardened_cookie_and_shows_the_dashboard(client, make_user) -> None:
    email = make_user("marketer")
    response = sign_in(client, email)
    assert response.status_code == 303 and response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie and "path=/admin" in cookie
    page = client.get("/admin/dashboard")
    assert page.status_code == 200 and email in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_cookie_is_not_secure_over_plain_http(runtime, dkim_key_file, make_user) -> None:
    from sendwell.web.app import create_app
    from tests.web.admin.conftest import new_client

    runtime.replace_settings(runtime.settings.replace(base_url="http://127.0.0.1:8025"))
    with new_client(create_app(runtime, outbox=False)) as c:
        assert "secure" not in c.get("/admin/login").headers["set-cookie"].lower()


def test_wrong_password_is_401_and_says_nothing_specific(client, make_user) -> None:
    email = make_user("viewer")
    wrong = sign_in(client, email, "not the password")
    unknown = sign_in(client, "nobody@bright-lighting.example", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email address or password" in wrong.text and "Wrong email address or password" in unknown.text
    assert client.get("/admin/dashboard").status_code == 303


def test_login_post_without_csrf_is_403(client, make_user) -> None:
    email = make_user("admin")
    client.get("/admin/login")
    response = client.post("/admin/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/admin/dashboard").status_code == 303


def test_signed_in_post_without_or_with_wrong_csrf_is_403(as_role) -> None:
    client = as_role("admin")
    assert client.post("/admin/language", data={"language": "zh_Hans"}).status_code == 403
    assert client.post("/admin/language", data={"language": "zh_Hans", "csrf_token": "forged"}).status_code == 403
    # The htmx header is accepted in place of the field.
    token = page_csrf(client)
    assert client.post("/admin/language", data={"language": "zh_Hans"},
                       headers={"X-CSRF-Token": token}).status_code == 303


def test_throttle_answers_429_even_for_the_right_password(client, make_user) -> None:
    email = make_user("admin")
    for _ in range(MAX_FAILURES_PER_EMAIL):
        assert sign_in(client, email, "wrong password!").status_code == 401
    response = sign_in(client, email)
    assert response.status_code == 429 and response.headers["retry-after"] == "900"
    assert "Too many failed attempts" in response.text


def test_logout_ends_the_session(as_role) -> None:
    client = as_role("viewer")
    token = page_csrf(client)
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/admin/dashboard").status_code == 303


def test_password_change_ends_other_sessions(as_role, runtime) -> None:
    from sendwell.access.users import get_user_by_email, update_user
    from sendwell.db.session import transaction

    client = as_role("marketer")
    assert client.get("/admin/dashboard").status_code == 200
    with transaction(runtime.factory) as s:
        user = get_user_by_email(s, email="marketer@bright-lighting.example")
        update_user(s, user_id=user.id, password="a brand new password")
    assert client.get("/admin/dashboard").status_code == 303


def test_tampered_cookie_is_refused(as_role) -> None:
    client = as_role("admin")
    value = client.cookies.get("sendwell_admin")
    client.cookies.clear()
    client.cookies.set("sendwell_admin", value)
    assert client.get("/admin/dashboard").status_code == 200
    client.cookies.clear()
    client.cookies.set("sendwell_admin", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert client.get("/admin/dashboard").status_code == 303


def test_next_cannot_redirect_off_site(client, make_user) -> None:
    email = make_user("admin")
    token = csrf_of(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token,
                                                 "next": "//evil.example/admin"})
    assert response.headers["location"] == "/admin"


def test_viewer_reads_but_cannot_change(as_role) -> None:
    client = as_role("viewer")
    assert client.get("/admin/contacts").status_code == 200
    token = page_csrf(client)
    # A viewer may choose its own language…
    assert client.post("/admin/language", data={"language": "zh_Hans", "csrf_token": token}).status_code == 303
    # …but changes nothing else.
    response = client.post("/admin/campaigns", data={"csrf_token": token, "name": "x", "subject": "y", "html": "z"})
    assert response.status_code == 403


def test_only_admin_manages_users(as_role) -> None:
    marketer = as_role("marketer")
    assert marketer.get("/admin/users").status_code == 403
    admin = as_role("admin")
    assert admin.get("/admin/users").status_code == 200


def test_a_copied_cookie_is_dead_after_logout(as_role) -> None:
    # Logout ends the session on the server: a copy of the cookie taken before is refused after.
    client = as_role("admin")
    copied = client.cookies.get("sendwell_admin")
    token = page_csrf(client)
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    client.cookies.clear()
    client.cookies.set("sendwell_admin", copied)
    response = client.get("/admin/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/admin/login")


def _sign_in_attempts(runtime, port: int, trusted_proxies: str, forwarded_for) -> list[int]:  # type: ignore[no-untyped-def]
    """Failed sign-ins through a real uvicorn socket from loopback, each with its own address and
    X-Forwarded-For; one more than the per-IP limit allows. The answers' status codes."""
    import httpx

    from sendwell.access.users import MAX_FAILURES_PER_IP
    from sendwell.web.app import create_app
    from sendwell.web.server import BackgroundServer

    runtime.replace_settings(runtime.settings.replace(base_url=f"http://127.0.0.1:{port}"))  # cookie over http
    with BackgroundServer(create_app(runtime, outbox=False), port, trusted_proxies=trusted_proxies) as server, \
            httpx.Client(base_url=server.url) as web:
        def attempt(n: int) -> int:
            token = csrf_of(web.get("/admin/login").text)
            return web.post("/admin/login", headers={"X-Forwarded-For": forwarded_for(n)}, data={
                "email": f"guess{n}@bright-lighting.example", "password": "not the password",
                "csrf_token": token}).status_code

        return [attempt(n) for n in range(MAX_FAILURES_PER_IP + 1)]


def test_forwarded_for_from_loopback_does_not_escape_the_per_ip_limit(runtime, dkim_key_file, unused_port) -> None:
    # With no trusted proxies configured, X-Forwarded-For is not believed (not even from
    # 127.0.0.1), so rotating it keeps every attempt on the caller's own IP.
    from sendwell.access.users import MAX_FAILURES_PER_IP

    codes = _sign_in_attempts(runtime, unused_port, "", lambda n: f"203.0.113.{n}")
    assert codes == [401] * MAX_FAILURES_PER_IP + [429]


def test_a_configured_proxy_is_believed(runtime, dkim_key_file, unused_port) -> None:
    # Behind a listed proxy the limit is per forwarded client: the 21st client is a new one.
    from sendwell.access.users import MAX_FAILURES_PER_IP

    codes = _sign_in_attempts(runtime, unused_port, "127.0.0.0/8",
                              lambda n: "203.0.113.1" if n < MAX_FAILURES_PER_IP else "203.0.113.2")
    assert codes == [401] * (MAX_FAILURES_PER_IP + 1)


def test_trusted_proxies_set_uvicorns_forwarded_header_options() -> None:
    import pytest

    from sendwell.web.server import proxy_options

    assert proxy_options("") == {"proxy_headers": False, "forwarded_allow_ips": []}
    assert proxy_options("10.0.0.0/8, 127.0.0.1") == {"proxy_headers": True,
                                                      "forwarded_allow_ips": ["10.0.0.0/8", "127.0.0.1"]}
    with pytest.raises(ValueError, match="SENDWELL_TRUSTED_PROXIES: 'proxy.internal'"):
        proxy_options("proxy.internal")
