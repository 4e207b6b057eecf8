"""Click tracking: signed redirects only, a person's click recorded as engagement; unsubscribe links stay direct."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Contact, Event, Send
from sendwell.db.session import transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.delivery.runner import run_campaign
from sendwell.insight.tracking import make_click_token
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact, one_click_url, parse_strict

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"


def test_tracked_link_redirects_records_and_cannot_be_forged(runtime, smtp_server, unused_port) -> None:
    runtime.replace_settings(runtime.settings.replace(smtp_url=smtp_server.url,
                                                      base_url=f"http://127.0.0.1:{unused_port}"))
    s = runtime.settings
    with transaction(runtime.factory) as session:
        make_contact(session, country="DE")
        c = create_campaign(session, settings=s, name="n", subject="s",
                            html='<p><a href="https://bright-lighting.example/catalogue?x=1&amp;y=2">Catalogue</a></p>')
        plan_campaign(session, campaign=c)
        queue_campaign(session, campaign=c)
        campaign_id = c.id
    deliverer = runtime.make_deliverer()
    run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
    deliverer.transport.close()
    msg = parse_strict(smtp_server.messages[0].data)
    html = msg.get_body(("html",)).get_content()
    assert "https://bright-lighting.example/catalogue" not in html  # rewritten…
    assert one_click_url(msg) in html  # …but the unsubscribe link is direct (rule 9)
    tracked = re.search(rf'href="({re.escape(s.base_url)}/r/[^"]+)"', html).group(1)
    assert len(re.findall(rf'href="{re.escape(s.base_url)}/r/', html)) == 2  # the link, and the hidden trap link
    with transaction(runtime.factory) as session:
        # A person reads before clicking; a click seconds after sending is a scanner's.
        session.scalar(select(Send)).sent_at -= timedelta(minutes=1)
    with BackgroundServer(create_app(runtime), unused_port):
        response = httpx.get(tracked, follow_redirects=False, headers={"User-Agent": BROWSER})
        assert response.status_code == 302
        assert response.headers["location"] == "https://bright-lighting.example/catalogue?x=1&y=2"
        forged = make_click_token(["attacker-key"], 1, "https://evil.example/")
        assert httpx.get(f"{s.base_url}/r/{forged}", follow_redirects=False).status_code == 404
        tampered = tracked[:-4] + ("AAAA" if not tracked.endswith("AAAA") else "BBBB")
        assert httpx.get(tampered, follow_redirects=False).status_code == 404
    with transaction(runtime.factory) as session:
        clicks = session.scalars(select(Event).where(Event.kind == "clicked")).all()
        assert len(clicks) == 1 and clicks[0].campaign_id == campaign_id and not clicks[0].machine
        assert session.scalar(select(Contact.last_engaged_at)) is not None
