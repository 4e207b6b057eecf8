"""`sendwell webhooks endpoints|deliveries|redeliver`: the same log and redelivery as the API."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sendwell.cli.main import cli, register_commands
from sendwell.db.session import transaction
from sendwell.feedback.classify import Classification
from sendwell.feedback.service import record_feedback
from sendwell.followups import dispatch_outbox
from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.feedback.factories import make_sent
from tests.helpers import WebhookReceiver, make_contact

register_commands()


def test_the_delivery_log_and_redelivery_from_the_command_line(runtime, db_url, tmp_path) -> None:
    with WebhookReceiver() as hook:
        hook.fail["/crm"] = 1
        urls = f"{hook.url}/crm contact.bounced"
        runtime.replace_settings(runtime.settings.replace(webhook_urls=urls))
        env = {"SENDWELL_DATA_DIR": str(tmp_path / "cli"), "SENDWELL_DATABASE_URL": db_url,
               "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER, "SENDWELL_WEBHOOK_URLS": urls}

        def run(*args: str, code: int = 0):
            result = CliRunner().invoke(cli, ["webhooks", *args], env=env, catch_exceptions=False)
            assert result.exit_code == code, result.output
            return result.output

        with transaction(runtime.factory) as s:
            anna = make_contact(s, email="anna@licht.example")
            # As a real bounce arrives: quoting the Message-ID of the mail we sent her.
            record_feedback(s, classification=Classification(kind="hard", recipients=("anna@licht.example",),
                                                             status="5.1.1",
                                                             original_message_id=make_sent(s, anna).message_id),
                            settings=runtime.settings)
        dispatch_outbox(runtime)
        dispatch_outbox(runtime)
        assert json.loads(run("endpoints", "--json")) == [{"url": f"{hook.url}/crm", "events": ["contact.bounced"]}]
        [row] = json.loads(run("deliveries", "--json"))
        assert (row["event_type"], row["status"], row["http_status"], row["attempt"]) == ("contact.bounced", "retrying", 500, 1)
        assert "retrying" in run("deliveries") and "HTTP 500" in run("deliveries")
        assert json.loads(run("deliveries", "--status", "delivered", "--json")) == []
        assert "unknown event type" in run("deliveries", "--event-type", "contact.bored", code=1)
        assert "already scheduled" in run("redeliver", str(row["id"]), code=1)
        dispatch_outbox(runtime, now=row_due(row))
        assert [r["status"] for r in json.loads(run("deliveries", "--json"))] == ["retrying", "delivered"]
        scheduled = json.loads(run("redeliver", str(row["id"]), "--json"))
        assert scheduled["event_id"] == row["event_id"]
        dispatch_outbox(runtime, now=row_due(row))
        assert len(hook.calls) == 3
        assert "no webhook delivery with id 999" in run("redeliver", "999", code=1)


def row_due(row: dict) -> object:
    from datetime import datetime, timedelta

    return datetime.fromisoformat(row["next_retry_at"]) + timedelta(minutes=5)
