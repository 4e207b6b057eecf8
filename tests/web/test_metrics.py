"""/metrics: database-derived families, the SMTP latency histogram, token required, several processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sendwell.access.service import create_token
from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Alert, Campaign, Send, WebhookDelivery
from sendwell.db.session import transaction
from sendwell.delivery.instruments import SMTP_SECONDS
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.runner import run_campaign
from sendwell.optout.service import unsubscribe_contact
from sendwell.web.app import create_app
from tests.helpers import make_contact

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _token(runtime, *scopes: str) -> dict[str, str]:
    with transaction(runtime.factory) as session:
        return {"Authorization": f"Bearer {create_token(session, name='prom', scopes=list(scopes)).secret}"}


def _histogram_count() -> float:
    return next(s.value for m in SMTP_SECONDS.collect() for s in m.samples if s.name.endswith("_count"))


def test_metrics_need_a_token_with_the_scope(runtime) -> None:
    client = TestClient(create_app(runtime))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=_token(runtime, "contacts:read")).status_code == 403
    ok = client.get("/metrics", headers=_token(runtime, "metrics:read"))
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")


def test_metrics_count_from_the_database(runtime) -> None:
    with transaction(runtime.factory) as s:
        # Customers (cap 3 per 30 days): the same-day second campaign below is not frequency-capped.
        contacts = [make_contact(s, stage="customer") for _ in range(4)]
        make_contact(s, consent=None, stage="customer")
        campaign = create_campaign(s, settings=runtime.settings, name="Spring", subject="Hi", html="<p>Hi</p>")
        unsubscribe_contact(s, contact_id=contacts[0].id, method="one_click")
        unsubscribe_contact(s, contact_id=contacts[1].id, method="api")
        plan_campaign(s, campaign=campaign)
        queue_campaign(s, campaign=campaign)
        s.add(Alert(kind="unsubscribe_spike", severity="critical", campaign_id=campaign.id, message="x"))
        for attempt, status in ((1, "retrying"), (2, "delivered")):
            s.add(WebhookDelivery(endpoint="https://crm.example/hook", event_type="contact.bounced", event_id=1,
                                  attempt=attempt, status=status, http_status=500 if attempt == 1 else 204))
        campaign_id = campaign.id
    before = _histogram_count()
    deliverer = runtime.make_deliverer()
    run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
    deliverer.transport.close()
    assert _histogram_count() - before == 2  # the hook in Deliverer.deliver saw both sends

    with transaction(runtime.factory) as s:  # a second campaign still waiting for a worker
        campaign2 = create_campaign(s, settings=runtime.settings, name="Later", subject="Hi", html="<p>Hi</p>")
        plan_campaign(s, campaign=campaign2)
        queue_campaign(s, campaign=campaign2)

    text = TestClient(create_app(runtime)).get("/metrics", headers=_token(runtime, "metrics:read")).text
    got = _samples(text)
    assert got[("sendwell_mails_sent_total", ())] == 2
    assert got[("sendwell_sends_skipped_total", (("reason", "unsubscribed"),))] == 4
    assert got[("sendwell_sends_skipped_total", (("reason", "no_consent"),))] == 2
    assert got[("sendwell_unsubscribes_total", (("method", "one_click"),))] == 1
    assert got[("sendwell_unsubscribes_total", (("method", "api"),))] == 1
    assert got[("sendwell_suppressions", (("reason", "unsubscribe"),))] == 2
    assert got[("sendwell_alerts_total", (("kind", "unsubscribe_spike"), ("severity", "critical")))] == 1
    assert got[("sendwell_alerts_open", (("kind", "unsubscribe_spike"), ("severity", "critical")))] == 1
    assert got[("sendwell_queue_depth", ())] == 2
    assert got[("sendwell_webhook_deliveries_total", (("event_type", "contact.bounced"), ("status", "retrying")))] == 1
    assert got[("sendwell_webhook_deliveries_total", (("event_type", "contact.bounced"), ("status", "delivered")))] == 1
    # The two opt-outs' contact.unsubscribed events wait for the dispatcher (no endpoint drains them here).
    assert got[("sendwell_webhooks_pending", ())] == 2
    assert got[("sendwell_sends", (("state", "sent"),))] == 2
    assert got[("sendwell_smtp_send_seconds_count", ())] >= 2
    with transaction(runtime.factory) as s:
        assert s.query(Send).count() == 10 and s.query(Campaign).count() == 2


WORKER = textwrap.dedent("""
    from sendwell.delivery.instruments import smtp_timer
    for _ in range({n}):
        with smtp_timer():
            pass
""")
SCRAPE = textwrap.dedent("""
    import sys
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.registry import Collector
    import sendwell.web.prometheus as m

    class Nothing(Collector):
        def collect(self):
            return []

    sys.stdout.write(m.exposition(None, Nothing()).decode())
""")


def test_smtp_latency_adds_up_across_processes(tmp_path: Path) -> None:
    """Two worker processes observe, a third (the web process) reports the sum: multiprocess mode."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for n in (3, 4):
        subprocess.run([sys.executable, "-c", WORKER.format(n=n)], env=env, check=True)
    out = subprocess.run([sys.executable, "-c", SCRAPE], env=env, check=True, capture_output=True, text=True).stdout
    assert _samples(out)[("sendwell_smtp_send_seconds_count", ())] == 7
