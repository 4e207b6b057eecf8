"""Settings swapped for a new object (a reload): deliverers pick it up at their next batch."""

from __future__ import annotations

from email import message_from_bytes

from sendwell.campaigns.service import create_campaign
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.runner import run_campaign
from tests.conftest import make_settings
from tests.helpers import make_contact


def _queued_campaign(runtime, email: str) -> int:
    with transaction(runtime.factory) as s:
        make_contact(s, email=email)
        c = create_campaign(s, settings=runtime.settings, name=email, subject="Hi", html="<p>Hi</p>")
        plan_campaign(s, campaign=c)
        queue_campaign(s, campaign=c)
        return c.id


def _captured_from(runtime, rcpt: str) -> str:
    for path in runtime.settings.capture_dir.glob("*.eml"):
        msg = message_from_bytes(path.read_bytes())
        if msg["X-Envelope-To"] == f"<{rcpt}>":
            return str(msg["From"]) + " " + str(msg["Message-ID"])
    raise AssertionError(f"no mail to {rcpt} captured")


def test_a_running_deliverer_sends_with_the_new_settings_after_a_swap(runtime, settings) -> None:
    deliverer = runtime.make_deliverer()
    run_campaign(runtime.factory, deliverer, campaign_id=_queued_campaign(runtime, "before@buyer.example"))
    assert "sales@bright-lighting.example" in _captured_from(runtime, "before@buyer.example")

    runtime.replace_settings(make_settings(settings.data_dir, database_url=settings.database_url,
                                           from_="Bright Lighting News <news@bright-news.example>"))
    run_campaign(runtime.factory, deliverer, campaign_id=_queued_campaign(runtime, "after@buyer.example"))
    after = _captured_from(runtime, "after@buyer.example")
    assert "news@bright-news.example" in after
    assert "@bright-news.example>" in after.split()[-1]  # the Message-ID domain follows the new sender


def test_replace_settings_builds_the_throttle_again(runtime, settings) -> None:
    assert runtime.throttle.rate == 0
    runtime.replace_settings(make_settings(settings.data_dir, database_url=settings.database_url, rate_limit=5))
    assert runtime.throttle.rate == 5
    assert runtime.make_deliverer().throttle is runtime.throttle
