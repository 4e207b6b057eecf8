"""The in-process runner behind `send --wait`: claim and deliver batches until none is left."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from sendwell.db.session import transaction
from sendwell.delivery.claims import claim_sends, new_claim_token
from sendwell.delivery.deliverer import Deliverer
from sendwell.delivery.progress import campaign_status, finish_if_done, state_counts


def run_campaign(
    factory: sessionmaker[Session],
    deliverer: Deliverer | Sequence[Deliverer],
    *,
    campaign_id: int,
    on_progress: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, Any]:
    """Deliver every due send of a campaign in this process (used by `send --wait`).

    Given several deliverers (one SMTP session each), each runs in its own thread and
    claims its own batches, as the worker's consumer threads do.
    """
    deliverers = [deliverer] if isinstance(deliverer, Deliverer) else list(deliverer)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def loop(d: Deliverer) -> None:
        lease = d.lease
        try:
            while not errors and not d.should_stop():
                token = new_claim_token()
                with transaction(factory) as session:
                    claimed = claim_sends(session, campaign_id=campaign_id, limit=d.settings.batch_size, lease=lease,
                                          token=token)
                if not claimed:
                    return
                d.deliver(campaign_id, claimed, token=token)
                d.check_rates(campaign_id)  # the circuit breaker, when the deliverer was given one
                if on_progress is not None:
                    with lock, transaction(factory) as session:
                        on_progress(state_counts(session, campaign_id=campaign_id))
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    if len(deliverers) == 1:
        loop(deliverers[0])
    else:
        threads = [threading.Thread(target=loop, args=(d,), name=f"deliver-{i}") for i, d in enumerate(deliverers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    with transaction(factory) as session:
        finish_if_done(session, campaign_id=campaign_id)
        return campaign_status(session, campaign_id=campaign_id)
