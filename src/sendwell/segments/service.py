"""Saved segments, live counts, and the `@name` references campaigns use."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from sendwell.contacts.lawful_basis import has_lawful_basis
from sendwell.db.models import SCOPE_ALL, Contact, Segment, Suppression
from sendwell.i18n.messages import N_
from sendwell.segments.expression import (
    And,
    Node,
    Not,
    Or,
    Ref,
    SegmentError,
    Vocabularies,
    compile_segment,
    parse,
    to_json,
    to_text,
)


class SegmentExists(SegmentError):
    """A segment with this name is already stored."""


def _text_of(expression: str | dict[str, Any]) -> str:
    # Saved and shown in the readable text form; JSON input is converted, not stored twice.
    node = parse(expression)
    return to_text(node)


def expand_references(session: Session, expression: str) -> str:
    """The rule with each `@name` (`@'name with spaces'`) replaced by that saved rule; unchanged without one.

    Campaigns keep the expanded text, so a later edit of the saved segment does not change a
    campaign that was already planned.
    """
    text = (expression or "").strip()
    if text.startswith("@"):
        # `@Trade fair buyers` unquoted, the whole rule being one saved name, as the CLI always took it.
        whole = session.scalar(select(Segment).where(Segment.name == text[1:].strip()))
        if whole is not None:
            return whole.expression
    node = parse(text)
    return to_text(_expand(session, node)) if _names_saved(node) else expression


def _names_saved(node: Node | None) -> bool:
    if isinstance(node, Ref):
        return True
    if isinstance(node, (And, Or)):
        return any(_names_saved(n) for n in node.items)
    return isinstance(node, Not) and _names_saved(node.item)


def _expand(session: Session, node: Node | None) -> Node | None:
    # Saved rules are stored expanded (create_segment), so one level is all there is.
    if isinstance(node, Ref):
        return parse(get_segment(session, name=node.name).expression)
    if isinstance(node, (And, Or)):
        return type(node)(tuple(_expand(session, n) for n in node.items))  # type: ignore[misc]
    if isinstance(node, Not):
        return Not(_expand(session, node.item))  # type: ignore[arg-type]
    return node


def resolve_segment(session: Session, expression: str) -> str:
    """A validated expression with saved segments expanded (expand_references); SegmentError if bad."""
    text = expand_references(session, expression)
    compile_segment(text, vocabularies=Vocabularies.from_session(session))
    if text.startswith("{"):
        text = _text_of(text)
    return text


def get_segment(session: Session, *, name: str) -> Segment:
    """A saved segment by name; SegmentError naming the known ones if missing."""
    segment = session.scalar(select(Segment).where(Segment.name == name.strip()))
    if segment is None:
        known = list(session.scalars(select(Segment.name).order_by(Segment.name).limit(20)))
        if known:
            raise SegmentError(N_("no saved segment %(name)s (saved: %(known)s)"), name=repr(name), known=", ".join(known))
        raise SegmentError(N_("no saved segment %(name)s (none saved yet)"), name=repr(name))
    return segment


def get_segment_by_id(session: Session, *, segment_id: int) -> Segment | None:
    """A saved segment by id, or None."""
    return session.get(Segment, segment_id)


def create_segment(session: Session, *, name: str, expression: str, replace: bool = False) -> Segment:
    """Save (or with `replace`, update) a named segment after validating its rule."""
    name = name.strip()
    if not name or name.startswith("@") or len(name) > 200:
        raise SegmentError(N_("a segment name must be 1-200 characters and not start with '@'"))
    if "'" in name and '"' in name:  # a rule quotes the name with the other kind: @'…' or @"…"
        raise SegmentError(N_("a segment name may hold ' or \" but not both"))
    expression = expand_references(session, expression)
    compile_segment(expression, vocabularies=Vocabularies.from_session(session))
    text = _text_of(expression)
    segment = session.scalar(select(Segment).where(Segment.name == name))
    if segment is not None and not replace:
        raise SegmentExists(N_("a segment named %(name)s exists already (use --replace to change it)"), name=repr(name))
    if segment is None:
        segment = Segment(name=name, expression=text)
        session.add(segment)
    else:
        segment.expression = text
    session.flush()
    return segment


def list_segments(session: Session) -> list[Segment]:
    """Every saved segment, by name."""
    return list(session.scalars(select(Segment).order_by(Segment.name)))


def delete_segment(session: Session, *, name: str) -> None:
    """Forget a saved segment (campaigns keep their own copy of the rule)."""
    session.delete(get_segment(session, name=name))
    session.flush()


def count_segment(session: Session, *, expression: str, now: datetime | None = None) -> dict[str, int]:
    """Live counts: contacts matching the rule, and of those how many could get marketing now.

    `reachable` = not suppressed and with a lawful basis for their country; pauses, topic
    subscriptions and frequency caps are the campaign's business and are not counted here.
    """
    now = now or datetime.now(timezone.utc)
    text = resolve_segment(session, expression)
    where = compile_segment(text, now=now, vocabularies=Vocabularies.from_session(session))
    suppressed = exists(select(Suppression.id).where(
        Suppression.email_hash == Contact.email_hash, Suppression.scope == SCOPE_ALL))
    basis = has_lawful_basis(now)
    row = session.execute(
        select(
            func.count(),
            func.count().filter(suppressed),
            func.count().filter(and_(~suppressed, ~basis)),
        ).select_from(Contact).where(where)
    ).one()
    matching, n_suppressed, no_basis = (int(x) for x in row)
    return {"matching": matching, "suppressed": n_suppressed, "no_lawful_basis": no_basis,
            "reachable": matching - n_suppressed - no_basis}


def list_contacts(session: Session, *, segment: str = "", after: int = 0, limit: int = 50) -> list[Contact]:
    """Contacts by id after a cursor, optionally only those a segment expression selects."""
    query = select(Contact).where(Contact.id > after).order_by(Contact.id).limit(limit)
    if segment.strip():
        query = query.where(compile_segment(segment))
    return list(session.scalars(query))


def describe(segment: Segment) -> dict[str, Any]:
    """A saved segment as a dict, with its rule in text and JSON form."""
    return {"name": segment.name, "expression": segment.expression,
            "json": to_json(parse(segment.expression)), "created_at": segment.created_at.isoformat()}


__all__ = ["count_segment", "create_segment", "delete_segment", "describe", "expand_references", "get_segment",
           "list_segments", "resolve_segment"]
