"""Saved segments: named expressions, and live counts of the contacts they select."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.db.models import Contact, Segment
from sendwell.segments.expression import SegmentError, compile_segment


class SegmentExists(SegmentError):
    """A segment with this name is already stored."""


def create_segment(session: Session, *, name: str, expression: str) -> Segment:
    """Validate and store a named segment; SegmentError names what is wrong."""
    name = name.strip()
    if not name:
        raise SegmentError("the segment needs a name")
    compile_segment(expression)
    if session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        raise SegmentExists(f"a segment named {name!r} already exists")
    segment = Segment(name=name, expression=expression)
    session.add(segment)
    session.flush()
    return segment


def list_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.id)))


def get_segment(session: Session, *, segment_id: int) -> Segment | None:
    return session.get(Segment, segment_id)


def count_segment(session: Session, *, expression: str) -> int:
    """How many contacts the expression selects now (suppressed ones included: planning skips them)."""
    return session.scalar(select(func.count()).select_from(Contact).where(compile_segment(expression))) or 0
