"""Errors a user reads in the admin are in the user's language: segment rules, users, test mail, 403."""

from __future__ import annotations

from tests.web.admin.conftest import page_csrf


def _bad_rule_on_segments(client) -> str:  # type: ignore[no-untyped-def]
    token = page_csrf(client, "/admin/segments")
    page = client.post("/admin/segments", data={"csrf_token": token, "name": "Buyers", "expression": "industry ="})
    assert page.status_code == 400
    return page.text


def test_a_bad_segment_rule_reads_in_the_users_language_on_the_segments_page(as_role) -> None:
    assert "expression ends too early at position 11" in _bad_rule_on_segments(as_role("marketer"))
    zh = _bad_rule_on_segments(as_role("admin", language="zh_Hans"))
    assert "规则在第 11 个字符处提前结束" in zh and "expression ends too early" not in zh
    count = as_role("viewer", language="zh_Hans").get("/admin/segments/count", params={"expression": "colour = red"})
    assert "未知的分群字段 &#39;colour&#39;（第 1 个字符处）" in count.text


def _bad_rule_on_campaign_form(client) -> str:  # type: ignore[no-untyped-def]
    token = page_csrf(client, "/admin/campaigns/new")
    page = client.post("/admin/campaigns", data={"csrf_token": token, "name": "Spring", "subject": "Hi",
                                                 "html": "<p>Hi</p>", "text": "Hi", "segment": "stage in (lead"})
    assert page.status_code == 400
    return page.text


def test_a_bad_segment_rule_reads_in_the_users_language_on_the_campaign_form(as_role) -> None:
    assert "segment: expected &#39;)&#39; at position 15 (the end)" in _bad_rule_on_campaign_form(as_role("marketer"))
    zh = _bad_rule_on_campaign_form(as_role("admin", language="zh_Hans"))
    assert "分群规则：第 15 个字符处（末尾）应为 &#39;)&#39;" in zh and "the end" not in zh


def test_a_users_page_error_reads_in_chinese(as_role) -> None:
    client = as_role("admin", language="zh_Hans")
    token = page_csrf(client, "/admin/users")
    page = client.post("/admin/users", data={"csrf_token": token, "email": "new@bright-lighting.example",
                                             "password": "short", "role": "viewer", "language": "en"})
    assert page.status_code == 400 and "密码至少需要 10 个字符" in page.text


def test_a_test_mail_error_reads_in_chinese(as_role) -> None:
    client = as_role("admin", language="zh_Hans")
    token = page_csrf(client, "/admin/campaigns/new")
    created = client.post("/admin/campaigns", data={"csrf_token": token, "name": "Spring", "subject": "Hi",
                                                    "html": "<p>Hi</p>", "text": "Hi", "segment": ""})
    assert created.status_code == 303
    path = created.headers["location"]
    page = client.post(f"{path}/test", data={"csrf_token": page_csrf(client, path), "to": "not an address"})
    assert page.status_code == 400 and "测试邮件：" in page.text and "test mail:" not in page.text


def test_a_403_detail_reads_in_chinese(as_role) -> None:
    client = as_role("viewer", language="zh_Hans")
    token = page_csrf(client, "/admin/segments")
    page = client.post("/admin/segments", data={"csrf_token": token, "name": "x", "expression": ""},
                       headers={"accept": "text/html"})
    assert page.status_code == 403 and "does not allow" not in page.text and "只读用户" in page.text


def test_a_saved_segment_whose_rule_no_longer_reads_says_why_in_chinese_on_the_contacts_page(as_role, runtime) -> None:
    from sendwell.db.models import Segment
    from sendwell.db.session import transaction

    with transaction(runtime.factory) as s:
        segment = Segment(name="Old rule", expression="colour = red")  # stored before the field was dropped
        s.add(segment)
        s.flush()
        segment_id = segment.id
    page = as_role("viewer", language="zh_Hans").get("/admin/contacts", params={"segment": segment_id})
    assert "未知的分群字段 &#39;colour&#39;" in page.text and "unknown segment field" not in page.text


def test_a_segment_name_taken_or_a_missing_reference_reads_in_chinese(as_role) -> None:
    client = as_role("admin", language="zh_Hans")
    token = page_csrf(client, "/admin/segments")
    made = client.post("/admin/segments", data={"csrf_token": token, "name": "Buyers", "expression": "stage = customer"})
    assert made.status_code in (200, 303)
    again = client.post("/admin/segments", data={"csrf_token": token, "name": "Buyers", "expression": "stage = customer"})
    assert again.status_code == 400 and "名为 &#39;Buyers&#39; 的细分已存在" in again.text and "exists already" not in again.text
    missing = client.get("/admin/segments/count", params={"expression": "@nobody"})
    assert "没有名为 &#39;nobody&#39; 的已保存细分（已保存：Buyers）" in missing.text


def test_a_bad_start_time_or_zone_reads_in_chinese(as_role) -> None:
    client = as_role("admin", language="zh_Hans")
    token = page_csrf(client, "/admin/campaigns/new")
    created = client.post("/admin/campaigns", data={"csrf_token": token, "name": "Spring", "subject": "Hi",
                                                    "html": "<p>Hi</p>", "text": "Hi", "segment": ""})
    path = created.headers["location"]
    bad_time = client.post(f"{path}/schedule", data={"csrf_token": page_csrf(client, path), "at": "soon", "tz": "UTC"})
    assert bad_time.status_code == 400 and "开始时间：请输入日期和时间" in bad_time.text
    bad_zone = client.get(f"{path}/send-plan", params={"at": "2030-01-01T09:00", "tz": "Mars/Olympus"})
    assert bad_zone.status_code == 400 and "时区：未知时区 &#39;Mars/Olympus&#39;" in bad_zone.text
    english = as_role("marketer").get(f"{path}/send-plan", params={"at": "2030-01-01T09:00", "tz": "Mars/Olympus"})
    assert "time zone: unknown zone &#39;Mars/Olympus&#39;" in english.text
