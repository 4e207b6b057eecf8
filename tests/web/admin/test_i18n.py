"""The admin in Simplified Chinese: the user's language choice, and a catalog that covers every template string."""

from __future__ import annotations

from pathlib import Path

from jinja2.ext import babel_extract

from sendwell.i18n import translations
from sendwell.web.admin.pages import HERE
from tests.web.admin.conftest import page_csrf


def template_messages() -> set[str]:
    found = set()
    for path in Path(HERE / "templates").glob("*.html"):
        with path.open("rb") as fh:
            found |= {m for _, _, m, _ in babel_extract(fh, ("_",), [], {}) if isinstance(m, str)}
    return found


def test_every_template_string_has_a_chinese_translation() -> None:
    from sendwell.web.admin.labels import VOCABULARIES

    catalog = translations("zh_Hans", "admin")
    wanted = template_messages() | {text for table, _codes in VOCABULARIES.values() for text in table.values()}
    untranslated = sorted(m for m in wanted if catalog.gettext(m) == m)
    assert untranslated == [], untranslated
    assert len(template_messages()) > 100


def test_switching_to_chinese_is_per_user_and_kept(as_role) -> None:
    client = as_role("marketer")
    other = as_role("viewer")
    assert "Dashboard" in client.get("/admin/dashboard").text
    token = page_csrf(client)
    switched = client.post("/admin/language", data={"csrf_token": token, "language": "zh_Hans",
                                                    "next": "/admin/contacts"})
    assert switched.status_code == 303 and switched.headers["location"] == "/admin/contacts"
    page = client.get("/admin/dashboard")
    assert '<html lang="zh-Hans">' in page.text and "仪表盘" in page.text and "退订率" in page.text
    # Another user's pages stay in English.
    assert "仪表盘" not in other.get("/admin/dashboard").text and "Dashboard" in other.get("/admin/dashboard").text


def test_unknown_language_is_refused(as_role) -> None:
    client = as_role("admin")
    token = page_csrf(client)
    assert client.post("/admin/language", data={"csrf_token": token, "language": "tlh"}).status_code == 403


def test_login_page_follows_the_browser_language(client) -> None:
    page = client.get("/admin/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "登录" in page.text
    assert "Sign in" in client.get("/admin/login", headers={"Accept-Language": "en-GB"}).text
