"""A campaign labelled transactional is sent only after an admin confirms it on its page; lint findings in Chinese."""

from __future__ import annotations

from sendwell.campaigns.service import create_campaign, transactional_confirmation
from sendwell.db.session import transaction
from tests.helpers import make_contact
from tests.web.admin.conftest import page_csrf

PROMO = "<p>Our new products at a 20% discount. Order now: {{ contact.first_name }}</p>"


def _transactional(runtime) -> int:
    with transaction(runtime.factory) as s:
        make_contact(s, country="DE", source="Fair")
        return create_campaign(s, settings=runtime.settings, name="Promo as receipt", subject="Your order",
                               html=PROMO, kind="transactional").id


def test_only_an_admin_confirms_a_transactional_campaign(as_role, runtime) -> None:
    campaign_id = _transactional(runtime)
    page = f"/admin/campaigns/{campaign_id}"
    marketer = as_role("marketer")
    shown = marketer.get(page).text
    assert "transactional-unconfirmed" in shown and 'id="confirm-transactional"' not in shown
    refused = marketer.post(f"{page}/confirm-transactional", data={"csrf_token": page_csrf(marketer, page)})
    assert refused.status_code == 403
    sent = marketer.post(f"{page}/send", data={"csrf_token": page_csrf(marketer, page)})
    assert sent.status_code == 422  # the send is refused until an admin confirms
    with transaction(runtime.factory) as s:
        assert transactional_confirmation(s, campaign_id=campaign_id) is None

    admin = as_role("admin")
    assert 'id="confirm-transactional"' in admin.get(page).text
    done = admin.post(f"{page}/confirm-transactional", data={"csrf_token": page_csrf(admin, page)})
    assert done.status_code == 303
    after = admin.get(page).text
    assert "Confirmed as transactional by admin@bright-lighting.example" in after
    assert "transactional-unconfirmed" not in after and 'id="confirm-transactional"' not in after
    with transaction(runtime.factory) as s:
        assert transactional_confirmation(s, campaign_id=campaign_id).confirmed_by == "admin@bright-lighting.example"


def test_lint_findings_show_in_chinese(as_role, runtime) -> None:
    campaign_id = _transactional(runtime)
    page = as_role("marketer", language="zh_Hans").get(f"/admin/campaigns/{campaign_id}").text
    assert "须经管理员确认" in page  # transactional-unconfirmed
    assert "看起来像促销" in page  # transactional-promotional, with the words found
    assert "discount" in page
