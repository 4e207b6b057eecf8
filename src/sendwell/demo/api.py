"""The REST API and /metrics in the demo: a CRM upsert, engagement, a suppression check, a scrape."""

from __future__ import annotations

from typing import Any

import httpx

from sendwell.access.service import create_token
from sendwell.db.session import transaction
from sendwell.runtime import Runtime


def api_demo(runtime: Runtime, base_url: str, unsubscribed: str, say: Any = print) -> dict[str, Any]:
    """Drive the API over real HTTP as a CRM and a Prometheus server would; returns what it saw."""
    with transaction(runtime.factory) as session:
        crm = create_token(session, name="demo CRM", scopes=["contacts:read", "contacts:write", "events:write"]).secret
        prom = create_token(session, name="demo Prometheus", scopes=["metrics:read"]).secret
    api = f"{base_url}/api/v1"
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {crm}"}) as client:
        upsert = client.post(f"{api}/contacts/upsert", json={
            "email": "procurement@nordlicht-import.example", "company": "Nordlicht Import AB",
            "country": "Sweden", "stage": "prospect", "tags": ["crm"]})
        contact_id = upsert.json()["id"]
        engaged = client.post(f"{api}/events", json={"kind": "engaged", "contact_id": contact_id, "source": "website"})
        check = client.post(f"{api}/suppressions/check", json={"email": unsubscribed}).json()
        denied = client.get(f"{base_url}/api/v1/campaigns")  # no campaigns:read scope
    metrics = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {prom}"}, timeout=30).text
    sent = next((float(line.split()[-1]) for line in metrics.splitlines()
                 if line.startswith("sendwell_mails_sent_total ")), None)
    result = {
        "upsert_status": upsert.status_code, "engagement_status": engaged.status_code,
        "unsubscribed_is_suppressed": check["suppressed"], "wrong_scope_status": denied.status_code,
        "metrics_mails_sent": sent,
    }
    say(f"9. REST API: a CRM upserted a contact ({upsert.status_code}), a website posted engagement "
        f"({engaged.status_code}), {unsubscribed} checks as suppressed: {check['suppressed']}; "
        f"/metrics reports {sent:.0f} mails sent" if sent is not None else "9. REST API: /metrics unreadable")
    return result
