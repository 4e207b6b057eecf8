"""The review list: bounces and complaints that could not be tied to a mail we sent, kept and counted, never acted on."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.db.models import Event, FeedbackReview
from sendwell.feedback.classify.result import Classification

RAW_LIMIT = 64 * 1024  # enough for the headers and the diagnosis; a quoted attachment is not needed
# Why a report was not acted on (FeedbackReview.why).
NOT_TIED = "not_tied"  # no VERP token, no Message-ID of ours in the returned headers
FORGED_VERP = "forged_verp"  # a bounce+… address whose HMAC does not verify
RECIPIENT_MISMATCH = "recipient_mismatch"  # our Message-ID, but the send went to someone else
REVIEW_EVENT = "feedback_review"  # the events row that counts it (sendwell_events{kind="feedback_review"})


def store_review(
    session: Session,
    *,
    classification: Classification,
    why: str,
    source: str,
    raw_ref: str = "",
    raw: bytes | None = None,
    now: datetime | None = None,
) -> FeedbackReview:
    """Keep one untied report for a person (the same report twice is kept once); flushes."""
    if raw_ref:
        # One provider notification may name several recipients, each its own classification.
        for existing in session.scalars(select(FeedbackReview).where(FeedbackReview.raw_ref == raw_ref[:100])):
            if existing.recipients == list(classification.recipients[:50]):
                return existing
    now = now or datetime.now(timezone.utc)
    c = classification
    review = FeedbackReview(
        received_at=now, source=source[:20], kind=c.kind, category=c.category,
        recipients=list(c.recipients[:50]), status=c.status, reason=(c.reason or "")[:500], why=why,
        raw_ref=raw_ref[:100], raw_size=len(raw or b""),
        raw=(raw or b"")[:RAW_LIMIT].decode("utf-8", errors="replace").replace("\x00", ""),
    )
    session.add(review)
    session.flush()
    # Counted where every other feedback decision is counted: the events table, hence /metrics.
    session.add(Event(kind=REVIEW_EVENT, method=source[:30], occurred_at=now,
                      data={"review_id": review.id, "why": why, "category": c.category, "source": source}))
    return review


def list_reviews(session: Session, *, after: int | None = None, before: int | None = None,
                 limit: int = 50) -> list[FeedbackReview]:
    """A keyset page of reviews: with `after`, in id order (the API's pages); else newest first, below `before`."""
    query = select(FeedbackReview).limit(limit)
    if after is not None:
        return list(session.scalars(query.where(FeedbackReview.id > after).order_by(FeedbackReview.id)))
    if before is not None:
        query = query.where(FeedbackReview.id < before)
    return list(session.scalars(query.order_by(FeedbackReview.id.desc())))


def get_review(session: Session, *, review_id: int) -> FeedbackReview | None:
    """One review by id, or None."""
    return session.get(FeedbackReview, review_id)
