"""/feedback/reviews: reports that could not be tied to a mail we sent, kept for a person; read-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from sendwell.db.session import transaction
from sendwell.feedback.review import get_review, list_reviews
from sendwell.runtime import Runtime
from sendwell.web.api.problems import ApiProblem
from sendwell.web.api.schemas import MAX_ID, After, Limit, Page, page_of

ReviewId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ReviewOut(BaseModel):
    id: int
    received_at: datetime
    source: str = Field(description="smtp, maildir, mbox, imap, eml, ses or sendgrid")
    kind: str
    category: str
    recipients: list[str]
    status: str | None
    reason: str
    why: str = Field(description="not_tied, forged_verp or recipient_mismatch: why nobody was changed")
    raw_size: int


class ReviewDetailOut(ReviewOut):
    raw: str = Field(description="the message as received, its first 64 KiB")


def _fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in ReviewOut.model_fields}


def router(runtime: Runtime, require: Any) -> APIRouter:
    r = APIRouter(prefix="/feedback", tags=["feedback"])

    @r.get("/reviews", response_model=Page[ReviewOut], dependencies=[require("reports:read")])
    def reviews(after: After = 0, limit: Limit = 50) -> Page[ReviewOut]:
        """Bounces and complaints that named no mail we sent: listed for a person, never acted on."""
        with transaction(runtime.factory) as session:
            items = [ReviewOut(**_fields(row)) for row in list_reviews(session, after=after, limit=limit)]
        return page_of(items, limit)

    @r.get("/reviews/{review_id}", response_model=ReviewDetailOut, dependencies=[require("reports:read")],
           responses={404: {"description": "no such review"}})
    def review(review_id: ReviewId) -> ReviewDetailOut:
        """One review with the message as received."""
        with transaction(runtime.factory) as session:
            row = get_review(session, review_id=review_id)
            if row is None:
                raise ApiProblem(404, f"no feedback review {review_id}", kind="not-found")
            return ReviewDetailOut(**_fields(row), raw=row.raw)

    return r
