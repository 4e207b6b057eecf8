"""Every sender-domain finding carries its template: the admin shows it in Chinese, the CLI and API in English."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest

from sendwell.deliverability.check import Finding, check_domain
from sendwell.i18n import translations
from sendwell.i18n.messages import english, render
from sendwell.runtime import Runtime
from tests.deliverability.test_admin_page import signed_in
from tests.deliverability.zones import domain_settings
from tests.dnsserver import needs_nsd

pytestmark = [pytest.mark.slow, needs_nsd]

ZONES = ("good.example", "nospf.example", "twospf.example", "lookups.example", "badspf.example", "otherip.example",
         "mismatch.example", "nodkim.example", "nodmarc.example", "nothing.example", "strict.example",
         "relaxed.example")


def test_each_finding_of_every_zone_reads_in_chinese(tmp_path: Path, dns: str, keys: Any) -> None:
    zh = translations("zh_Hans", "admin").gettext
    seen: set[str] = set()
    for domain in ZONES:
        report = check_domain(domain_settings(tmp_path / domain, dns, domain, keys[0]))
        for f in report.findings:
            assert f.template and english(f.template, f.params) == f.message, f
            chinese = render(f.template, f.params, zh)
            assert chinese != f.message and "%(" not in chinese, (f.id, chinese)
            # Stored and read back (the cached check), the template survives.
            assert Finding.from_dict(f.as_dict()) == f
            seen.add(f.id)
    assert {"spf-missing", "spf-multiple", "spf-lookups", "spf-syntax", "spf-not-authorised", "dkim-mismatch",
            "dkim-missing", "dmarc-missing", "dmarc-alignment", "ptr-fcrdns", "bimi"} <= seen


def test_the_sender_domain_page_in_chinese_and_in_english(tmp_path: Path, db_url: str, dns: str, keys: Any) -> None:
    rt = Runtime(domain_settings(tmp_path, dns, "nospf.example", keys[0], database_url=db_url))
    try:
        chinese = html.unescape(signed_in(rt, "admin", "zh_Hans").get("/admin/settings/domain").text)
        assert "nospf.example 没有 SPF 记录：Gmail、Yahoo 和 Microsoft 会拒收没有 SPF 的群发邮件" in chinese
        assert "has no SPF record" not in chinese
        # What is typed or published as written reads as code: the stricter DMARC policies (BIMI needs one).
        assert "需要 DMARC 为 <code>p=quarantine</code> 或 <code>p=reject</code>" in chinese
        english_page = html.unescape(signed_in(rt, "admin").get("/admin/settings/domain").text)
        assert "nospf.example has no SPF record: Gmail, Yahoo and Microsoft reject bulk mail without SPF" in english_page
    finally:
        rt.dispose()


def test_why_the_gate_does_not_check_reads_in_chinese(tmp_path: Path, db_url: str, dns: str, keys: Any) -> None:
    rt = Runtime(domain_settings(tmp_path, dns, "good.example", keys[0], database_url=db_url, smtp_url="capture"))
    try:
        chinese = html.unescape(signed_in(rt, "admin", "zh_Hans").get("/admin/settings/domain").text)
        assert "SMTP 处于捕获模式：邮件写入文件，没有邮箱服务商会评判该域名" in chinese
        english_page = html.unescape(signed_in(rt, "admin").get("/admin/settings/domain").text)
        assert "SMTP is in capture mode: mail is written to files, no mailbox provider judges the domain" in english_page
    finally:
        rt.dispose()
