"""Segment expressions compile to SQL that selects the right contacts on every backend."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sendwell.db.models import Contact
from sendwell.segments.expression import SegmentError, compile_segment
from tests.helpers import make_contact


@pytest.fixture
def people(session):
    make_contact(session, email="de@x.example", country="DE", stage="prospect", industry="lighting", tags=["fair"])
    make_contact(session, email="fr@x.example", country="FR", stage="customer", industry="furniture")
    make_contact(session, email="us@x.example", country="US", stage="new_lead", industry="lighting", tags=["vip", "fair"])
    make_contact(session, email="au@y.example", country="AU", stage="customer", industry="hardware")
    session.flush()


def emails(session, expr: str) -> set[str]:
    return set(session.scalars(select(Contact.email).where(compile_segment(expr))))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("country = DE", {"de@x.example"}),
        ("country = Germany", {"de@x.example"}),
        ("region = eu", {"de@x.example", "fr@x.example"}),
        ("region = eu and stage = customer", {"fr@x.example"}),
        ("stage in (prospect, customer) and not region = eu", {"au@y.example"}),
        ("industry = lighting or country = AU", {"de@x.example", "us@x.example", "au@y.example"}),
        ("tag = fair", {"de@x.example", "us@x.example"}),
        ("tag = vip", {"us@x.example"}),
        ("email_domain = y.example", {"au@y.example"}),
        ("country != US and (stage = prospect or stage = new_lead)", {"de@x.example"}),
        ("region not in (eu, us)", {"au@y.example"}),
        ("", {"de@x.example", "fr@x.example", "us@x.example", "au@y.example"}),
    ],
)
def test_expressions_select_the_right_contacts(session, people, expr, expected) -> None:
    assert emails(session, expr) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("colour = red", "unknown segment field 'colour' at position 1"),
        ("country = Narnia", "unknown country"),
        ("stage = 'vip customer'", "unknown stage 'vip customer' at position 9"),
        ("region = mars", "unknown region 'mars'"),
        ("country DE", "expected =, !=, in or not in"),
        ("country = DE and", "ends too early"),
        ("(country = DE", "expected ')'"),
    ],
)
def test_bad_expressions_name_the_problem(expr, message) -> None:
    with pytest.raises(SegmentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_segment(expr)
