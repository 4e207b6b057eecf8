"""The admin's campaign list leaves a sequence's step campaigns out; its filter link shows them, naming
their sequence and step, in English and Chinese; a step campaign's own page and report still open."""

from __future__ import annotations

import re

from tests.campaigns.test_step_campaigns import seed
from tests.web.admin.conftest import app, as_role, dkim_key_file, make_user  # noqa: F401  (the admin's fixtures)


def _listed(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<a href="/admin/campaigns/(\d+)" translate="no">', html)}


def test_admin_list_hides_step_campaigns_and_the_filter_shows_them(runtime, as_role, dkim_key_file) -> None:  # noqa: F811
    campaign_id, steps = seed(runtime, dkim_key_file)
    viewer = as_role("viewer")
    page = viewer.get("/admin/campaigns")
    assert page.status_code == 200 and _listed(page.text) == {campaign_id}
    assert 'href="/admin/campaigns?sequences=1" data-filter="sequences"' in page.text
    shown = viewer.get("/admin/campaigns?sequences=1")
    assert shown.status_code == 200 and _listed(shown.text) == {campaign_id, *steps.values()}
    assert f'data-sequence-step="{steps["thanks"]}"' in shown.text
    assert "Sequence Fair follow-up, step thanks" in shown.text
    assert f'data-sequence-step="{campaign_id}"' not in shown.text
    assert 'href="/admin/campaigns" data-filter="sequences"' in shown.text  # the way back
    for path in (f"/admin/campaigns/{steps['thanks']}", f"/admin/campaigns/{steps['thanks']}/report"):
        assert viewer.get(path).status_code == 200, path


def test_admin_filter_and_step_names_read_in_chinese(runtime, as_role, dkim_key_file) -> None:  # noqa: F811
    _, steps = seed(runtime, dkim_key_file)
    viewer = as_role("viewer", language="zh_Hans")
    assert "显示序列步骤的营销活动" in viewer.get("/admin/campaigns").text
    shown = viewer.get("/admin/campaigns?sequences=1").text
    assert "隐藏序列步骤的营销活动" in shown and "序列 Fair follow-up，步骤 thanks" in shown
