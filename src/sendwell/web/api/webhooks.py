"""/webhooks: the configured endpoints, the delivery log, and redelivery of an event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from sendwell.db.models import WebhookDelivery
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.web.api.problems import ApiProblem
from sendwell.web.api.schemas import MAX_ID, NO_NUL, After, Limit, Page, page_of
from sendwell.webhooks import service as webhooks

EventType = Enum("EventType", {name.replace(".", "_"): name for name in webhooks.EVENT_TYPES}, type=str)  # type: ignore[misc]
DeliveryStatus = Enum("DeliveryStatus", {s: s for s in webhooks.DELIVERY_STATUSES}, type=str)  # type: ignore[misc]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]


class EndpointOut(BaseModel):
    url: str
    events: list[str] = Field(description="the event types this endpoint receives")


class EndpointsOut(BaseModel):
    event_types: dict[str, str] = Field(description="every event type, with what it reports")
    endpoints: list[EndpointOut] = Field(description="from SENDWELL_WEBHOOK_URLS")


class DeliveryOut(BaseModel):
    id: int
    endpoint: str
    event_type: str
    event_id: int = Field(description="the `id` in the body; the same on every retry and endpoint")
    attempt: int = Field(description="1 for the first POST of this event to this endpoint")
    status: str = Field(description="delivered (2xx), retrying (another attempt is scheduled) or failed (given up)")
    http_status: int | None = Field(description="the endpoint's answer; null when none came")
    error: str | None
    duration_ms: int
    attempted_at: datetime
    next_retry_at: datetime | None


class RedeliveryOut(BaseModel):
    delivery_id: int
    event_id: int
    endpoint: str
    scheduled_at: datetime = Field(description="when the new attempt is due (now); it appears in the log once made")


def _out(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut.model_validate(row, from_attributes=True)


def router(runtime: Runtime, require: Any, wake: Callable[[], None] = lambda: None) -> APIRouter:
    r = APIRouter(prefix="/webhooks", tags=["webhooks"])

    @r.get("/endpoints", response_model=EndpointsOut, dependencies=[require("webhooks:read")])
    def list_endpoints() -> EndpointsOut:
        """The event types and the configured endpoints with the types each receives (never the secret)."""
        return EndpointsOut(
            event_types=dict(webhooks.EVENT_TYPES),
            endpoints=[EndpointOut(url=e.url, events=sorted(e.events) if e.events is not None else ["*"])
                       for e in runtime.settings.webhook_endpoints],
        )

    @r.get("/deliveries", response_model=Page[DeliveryOut], dependencies=[require("webhooks:read")])
    def list_deliveries(
        after: After = 0, limit: Limit = 50,
        event_type: Annotated[EventType | None, Query(description="only this event type")] = None,
        status: Annotated[DeliveryStatus | None, Query(description="only attempts with this outcome")] = None,
        endpoint: Annotated[str | None, Query(max_length=2000, pattern=NO_NUL, description="only this endpoint URL")] = None,
    ) -> Page[DeliveryOut]:
        """Every POST to an endpoint, oldest first: status, answer, duration and next retry."""
        with transaction(runtime.factory) as session:
            rows = webhooks.list_deliveries(session, event_type=event_type.value if event_type else None,
                                            status=status.value if status else None, endpoint=endpoint,
                                            after=after, limit=limit)
            return page_of([_out(d) for d in rows], limit)

    @r.get("/deliveries/{delivery_id}", response_model=DeliveryOut, dependencies=[require("webhooks:read")],
           responses={404: {"description": "no such delivery"}})
    def get_delivery(delivery_id: DeliveryId) -> DeliveryOut:
        with transaction(runtime.factory) as session:
            row = webhooks.get_delivery(session, delivery_id=delivery_id)
            if row is None:
                raise ApiProblem(404, f"no webhook delivery with id {delivery_id}", kind="not-found")
            return _out(row)

    @r.post("/deliveries/{delivery_id}/redeliver", status_code=202, response_model=RedeliveryOut,
            dependencies=[require("webhooks:write")],
            responses={404: {"description": "no such delivery"},
                       409: {"description": "the event is still scheduled, or gone with an erased contact"}})
    def redeliver(delivery_id: DeliveryId) -> RedeliveryOut:
        """POST the event of this attempt to its endpoint again, now (after a failure, or to replay one)."""
        try:
            with transaction(runtime.factory) as session:
                row = webhooks.redeliver(session, delivery_id=delivery_id)
                delivery = webhooks.get_delivery(session, delivery_id=delivery_id)
                assert delivery is not None
                out = RedeliveryOut(delivery_id=delivery_id, event_id=delivery.event_id, endpoint=delivery.endpoint,
                                    scheduled_at=row.next_attempt_at)
        except LookupError as exc:
            raise ApiProblem(404, str(exc), kind="not-found") from None
        except webhooks.WebhookError as exc:
            raise ApiProblem(409, str(exc), kind="conflict") from None
        wake()  # after the commit: the dispatcher must find the row pending
        return out

    return r
