"""The DMARC page (Deliverability): the per-source table from the aggregate reports, in English and Chinese."""

from __future__ import annotations

from sendwell.db.session import transaction
from sendwell.feedback.inbound import process_inbound
from tests.feedback.dmarc_reports import ESP, FORWARDER, OURS, RUA, google, microsoft


def test_admin_page_shows_the_source_table_in_english_and_chinese(as_role, runtime) -> None:
    client = as_role("viewer")
    assert "No DMARC aggregate report in this period." in client.get("/admin/dmarc").text
    with transaction(runtime.factory) as s:
        for raw in (google(), microsoft()):
            process_inbound(s, raw=raw, rcpt_to=[RUA], settings=runtime.settings)
    page = client.get("/admin/dmarc?days=7").text
    assert page.index(f'data-source="{OURS}"') < page.index(f'data-source="{ESP}"') < page.index(
        f'data-source="{FORWARDER}"')
    esp = page.split(f'data-source="{ESP}"')[1].split("</tr>")[0]
    assert "<td>300</td>" in esp and "Sent to spam 300" in esp and "<strong>Failing</strong>" in esp
    assert "2 reports, 1820 messages." in page
    chinese = as_role("marketer", language="zh_Hans").get("/admin/dmarc").text
    assert "DMARC 汇总报告" in chinese and "未通过" in chinese and "来源 IP" in chinese
    assert client.get("/admin/dmarc?days=0").status_code == 422
