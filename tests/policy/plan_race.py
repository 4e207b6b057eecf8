"""Child process of test_concurrency: plan one campaign as soon as the go-file appears."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import text

from sendwell.campaigns.service import get_campaign
from sendwell.db.session import make_engine, make_session_factory, transaction
from sendwell.delivery.planning import plan_campaign


def main(url: str, campaign_id: int, folder: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:  # connect before the start, so both begin together
        conn.execute(text("SELECT 1"))
    factory = make_session_factory(engine)
    (Path(folder) / f"ready-{campaign_id}").touch()
    go = Path(folder) / "go"
    while not go.exists():
        time.sleep(0.001)
    with transaction(factory) as session:
        plan_campaign(session, campaign=get_campaign(session, campaign_id=campaign_id))
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
