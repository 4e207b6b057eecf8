"""Two processes plan two campaigns over the same contacts at once: no contact goes over its cap."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Consent, Contact, Send
from sendwell.db.session import transaction
from sendwell.policy.eligibility import IN_FLIGHT

CONTACTS = 4000
SCRIPT = Path(__file__).with_name("plan_race.py")
REPO = Path(__file__).resolve().parents[2]


def test_concurrent_plans_never_push_a_contact_over_its_cap(runtime, tmp_path) -> None:
    with transaction(runtime.factory) as s:
        # Prospects: at most 1 mail per 7 days, so exactly one of the two campaigns may have each.
        s.execute(insert(Contact), [
            {"email": f"p{i}@buyer{i}.example", "email_hash": f"h{i}", "stage": "prospect", "country": "DE",
             "region": "eu", "tags": [], "custom": {}} for i in range(CONTACTS)
        ])
        ids = list(s.scalars(select(Contact.id)))
        s.execute(insert(Consent), [{"contact_id": i, "kind": "express", "source": "test"} for i in ids])
        campaigns = [
            create_campaign(s, settings=runtime.settings, name=f"Race {n}", subject="Hi", html="<p>x</p>").id
            for n in (1, 2)
        ]
    url = runtime.settings.effective_database_url
    children = [
        subprocess.Popen([sys.executable, str(SCRIPT), url, str(c), str(tmp_path)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for c in campaigns
    ]
    while not all((tmp_path / f"ready-{c}").exists() for c in campaigns):
        assert all(p.poll() is None for p in children), [p.communicate() for p in children]
        time.sleep(0.01)
    (tmp_path / "go").touch()  # both start planning at the same moment
    for p in children:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    with transaction(runtime.factory) as s:
        per_contact = select(func.count().label("n")).where(Send.state.in_(IN_FLIGHT)).group_by(Send.contact_id)
        worst = s.scalar(select(func.max(per_contact.subquery().c.n)))
        planned = s.scalar(select(func.count()).select_from(Send).where(Send.state.in_(IN_FLIGHT)))
        capped = s.scalar(select(func.count()).select_from(Send).where(Send.skip_reason == "frequency_cap"))
    assert worst == 1  # nobody got both mails
    assert planned == CONTACTS and capped == CONTACTS  # everyone gets exactly one of the two
