"""Settings → Sender domain in the web admin: the findings with their records, in English and Chinese."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sendwell.access.users import create_user
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from tests.deliverability.zones import SENDING_IP, domain_settings
from tests.dnsserver import needs_nsd
from tests.web.admin.conftest import PASSWORD, csrf_of, new_client, sign_in

pytestmark = [pytest.mark.slow, needs_nsd]


def signed_in(rt: Runtime, role: str, language: str = "en") -> Any:
    with transaction(rt.factory) as s:
        create_user(s, email=f"{role}-{language}@bright-lighting.example", password=PASSWORD, role=role,
                    language=language)
    client = new_client(create_app(rt, outbox=False))
    client.__enter__()
    assert sign_in(client, f"{role}-{language}@bright-lighting.example").status_code == 303
    return client


def test_the_page_lists_findings_with_the_records_to_publish(tmp_path: Path, db_url: str, dns: str, keys: Any) -> None:
    rt = Runtime(domain_settings(tmp_path, dns, "nospf.example", keys[0], database_url=db_url))
    try:
        admin = signed_in(rt, "admin")
        page = admin.get("/admin/settings/domain")
        assert page.status_code == 200, page.text
        assert 'data-verdict="blocking"' in page.text
        assert 'data-finding="spf-missing" data-severity="blocking"' in page.text
        assert f"nospf.example. TXT &#34;v=spf1 ip4:{SENDING_IP} -all&#34;" in page.text
        assert 'href="/admin/settings/domain"' in page.text  # in the navigation
        # "Check now" asks DNS again (CSRF-protected POST).
        again = admin.post("/admin/settings/domain", data={"csrf_token": csrf_of(page.text)})
        assert again.status_code == 200 and 'data-finding="spf-missing"' in again.text
        assert admin.post("/admin/settings/domain", data={}).status_code == 403
        # Settings are the administrator's: a marketer may not see the page.
        assert signed_in(rt, "marketer").get("/admin/settings/domain").status_code == 403
        chinese = signed_in(rt, "admin", "zh_Hans").get("/admin/settings/domain")
        assert "发信域名" in chinese.text and "需发布的记录" in chinese.text and "阻断" in chinese.text
    finally:
        rt.dispose()
