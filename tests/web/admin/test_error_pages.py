"""Admin error pages: HTML in the user's language for browsers, JSON for scripts, problems for the API."""

from __future__ import annotations

from tests.web.admin.conftest import TestClient, page_csrf, sign_in

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_a_browser_gets_pages_and_a_script_gets_json(client) -> None:
    page = client.get("/admin/no-such-page", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text and "Content-Security-Policy" in page.headers
    assert client.get("/admin/no-such-page").json() == {"detail": "Not Found"}
    assert client.get("/admin/no-such-page", headers={**HTML, "HX-Request": "true"}).json() == {"detail": "Not Found"}
    wrong_method = client.get("/admin/language", headers=HTML)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert "This page cannot be opened directly" in wrong_method.text
    api = client.get("/api/v1/no-such-thing", headers=HTML)
    assert api.headers["content-type"].startswith("application/problem+json")
    assert client.get("/no-such-page", headers=HTML).json() == {"detail": "Not Found"}  # outside the admin


def test_an_unexpected_failure_is_a_page_in_the_users_language(app, make_user) -> None:
    def fail() -> None:
        raise RuntimeError("the disk is full")

    app.add_api_route("/admin/failing", fail)
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False, follow_redirects=False) as c:
        assert sign_in(c, make_user("viewer", language="zh_Hans")).status_code == 303
        page = c.get("/admin/failing", headers=HTML)
        assert page.status_code == 500 and "<h1>出错了</h1>" in page.text and "the disk is full" not in page.text
        assert c.get("/admin/failing").text == "Internal Server Error"
        forbidden = c.get("/admin/users", headers=HTML)  # a viewer: not allowed, said in Chinese
        assert forbidden.status_code == 403 and "无权操作" in forbidden.text and 'lang="zh-Hans"' in forbidden.text

def test_the_language_switch_returns_to_a_page_a_get_can_show(as_role) -> None:
    client = as_role("marketer")
    token = page_csrf(client)
    missing = client.get("/admin/campaigns/999999")  # a view's own 404 is the same page
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text and "Back to the dashboard" in missing.text
    for sent, landed in (("/admin/campaigns/7/test", "/admin/campaigns/7"), ("/admin/import/abc/check", "/admin/import"),
                         ("/admin/contacts", "/admin/contacts"), ("//evil.example/admin", "/admin/dashboard")):
        answer = client.post("/admin/language", data={"csrf_token": token, "language": "en", "next": sent})
        assert (answer.status_code, answer.headers["location"]) == (303, landed), sent
