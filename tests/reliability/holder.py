"""A live delivery process that claims sends and never sends them (for tests/reliability/test_send_wait.py).

`python -m tests.reliability.holder DATABASE_URL CAMPAIGN_ID COUNT`: registers and heartbeats like
a worker, claims COUNT sends of the campaign, prints how many, then sleeps until it is killed.
"""

from __future__ import annotations

import sys
import time

from sendwell.db.processes import Heartbeat
from sendwell.db.session import make_engine, make_session_factory, transaction
from sendwell.delivery.claims import claim_sends, new_claim_token


def main(url: str, campaign_id: int, count: int) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    me = Heartbeat.start(engine, role="worker", interval=2)
    with transaction(factory) as session:
        claimed = claim_sends(session, campaign_id=campaign_id, limit=count, token=new_claim_token(me.id))
    print(len(claimed), flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
