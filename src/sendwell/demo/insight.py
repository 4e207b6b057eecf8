"""The insight part of `sendwell demo`: a badly targeted campaign, a spike alert, a recommendation."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

import httpx
from sqlalchemy import select

from sendwell.db.models import Contact
from sendwell.db.session import transaction
from sendwell.followups import dispatch_outbox
from sendwell.insight.alerts import Thresholds, check_campaign
from sendwell.insight.recommendations import recommend

SEGMENT = "industry in (furniture, textiles)"
_URL = re.compile(r"<(https?://[^>]+)>")


def show_insight(runtime: Any, smtp: Any, send: Any, say: Any = print) -> dict[str, Any]:
    """Mail LED panels to furniture and textile buyers; some leave saying "not relevant"; report it."""
    before = len(smtp.messages)
    campaign = send(runtime, "Solar floodlights for everyone (badly targeted)", SEGMENT)
    received = smtp.messages[before:]
    with transaction(runtime.factory) as session:
        furniture = set(session.scalars(select(Contact.email).where(Contact.industry == "furniture")))
    leavers = [m for m in received if m.rcpt_tos[0] in furniture][::4][:12]
    with httpx.Client(timeout=10) as client:
        for message in leavers:
            msg = email.message_from_bytes(message.data, policy=email.policy.default)
            url = _URL.search(str(msg["List-Unsubscribe"])).group(1)  # type: ignore[union-attr]
            # The person opens the page, clicks "Unsubscribe from all", then answers the survey.
            client.post(url, data={"List-Unsubscribe": "One-Click", "source": "page"}).raise_for_status()
            client.post(f"{url}/reason", data={"reason": "not_relevant",
                                                "text": "We make sofas, we do not buy floodlights."}).raise_for_status()
    # The thank-you mails now, not when the background dispatcher next wakes: a repeatable count.
    thanked = 0
    while True:
        counts = dispatch_outbox(runtime)
        thanked += counts["done"]
        if not counts["claimed"]:
            break
    with transaction(runtime.factory) as session:
        alerts = check_campaign(session, campaign_id=campaign["id"], thresholds=Thresholds.from_settings(runtime.settings),
                                final=True)
        found = [{"severity": a.severity, "kind": a.kind, "message": a.message, "driver": a.data.get("driver")}
                 for a in alerts]
        advice = [r.as_dict() for r in recommend(session, campaign_id=campaign["id"])]
    say(f"10. Campaign {campaign['id']} mailed floodlights to furniture and textile buyers: {len(leavers)} left "
        f"saying “not relevant” → {', '.join(a['severity'] for a in found) or 'no'} alert; "
        f"recommendation: {advice[0]['title'] if advice else 'none'}")
    return {"campaign": campaign["id"], "sent": campaign["states"]["sent"], "leavers": len(leavers),
            "thank_you_sent": thanked,
            "alerts": found, "recommendations": advice}


def format_insight(insight: dict[str, Any]) -> list[str]:
    lines = [f"Insight: campaign {insight['campaign']} (badly targeted) lost {insight['leavers']} of "
             f"{insight['sent']} recipients"]
    lines += [f"    {a['severity']}: {a['message']}" for a in insight["alerts"]]
    lines += [f"    → {r['title']}: {r['why']}" for r in insight["recommendations"]]
    return lines
