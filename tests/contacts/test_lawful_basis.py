"""Lawful basis per country: which consent kinds allow marketing, and the skip reasons it gives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sendwell.contacts.lawful_basis import (
    DEFAULT,
    has_lawful_basis,
    normalise_kind,
    parse_rules,
)
from sendwell.db.models import Campaign, Consent, Contact
from sendwell.policy.eligibility import skip_reason
from tests.helpers import make_contact

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def _with_consent(session, email: str, country: str, kind: str | None, **consent_fields):
    contact = make_contact(session, email=email, country=country, consent=None)
    if kind:
        session.add(Consent(contact_id=contact.id, kind=kind, source="test",
                            obtained_at=consent_fields.pop("obtained_at", NOW - timedelta(days=1)),
                            **consent_fields))
        session.flush()
    return contact


def _reasons(session, now=NOW) -> dict[str, str | None]:
    campaign = Campaign(kind="marketing", topic_id=None)
    rows = session.execute(select(Contact.email, skip_reason(campaign, None, now))).all()
    return dict(rows)


@pytest.mark.parametrize(
    ("country", "kind", "allowed"),
    [
        ("DE", "express", True),
        ("DE", "soft_opt_in", True),
        ("DE", "legitimate_interest_b2b", False),  # UWG §7: consent even for B2B
        ("DE", "implied_inquiry", False),
        ("FR", "legitimate_interest_b2b", True),  # CNIL B2B
        ("IT", "legitimate_interest_b2b", False),
        ("GB", "legitimate_interest_b2b", True),  # PECR corporate subscribers
        ("CA", "implied_purchase", True),
        ("CA", "soft_opt_in", False),
        ("CA", "legitimate_interest_b2b", False),
        ("US", "legitimate_interest_b2b", True),
        ("US", "implied_inquiry", True),
        ("CN", "express", True),
        ("CN", "soft_opt_in", False),
        ("BR", "soft_opt_in", True),
        ("US", None, False),  # no basis on record at all
    ],
)
def test_kind_allowed_per_country(session, country, kind, allowed) -> None:
    _with_consent(session, "a@b.example", country, kind)
    reasons = _reasons(session)
    assert (reasons["a@b.example"] is None) == allowed
    assert DEFAULT.kinds_for(country).__contains__(kind) == allowed if kind else True
    matched = set(session.scalars(select(Contact.email).where(has_lawful_basis(NOW))))
    assert (matched == {"a@b.example"}) == allowed


def test_expired_implied_consent_is_reported_apart_from_no_consent(session) -> None:
    # CASL s10(10): an inquiry gives six months.
    _with_consent(session, "lapsed@ca.example", "CA", "implied_inquiry",
                  obtained_at=NOW - timedelta(days=200), expires_at=NOW - timedelta(days=17))
    _with_consent(session, "fresh@ca.example", "CA", "implied_inquiry",
                  obtained_at=NOW - timedelta(days=20), expires_at=NOW + timedelta(days=163))
    _with_consent(session, "none@ca.example", "CA", None)
    _with_consent(session, "withdrawn@ca.example", "CA", "express", withdrawn_at=NOW - timedelta(days=2))
    assert _reasons(session) == {
        "lapsed@ca.example": "consent_expired",
        "fresh@ca.example": None,
        "none@ca.example": "no_consent",
        "withdrawn@ca.example": "no_consent",
    }
    # Half a year later the fresh one lapses too.
    assert _reasons(session, NOW + timedelta(days=200))["fresh@ca.example"] == "consent_expired"


def test_an_expired_kind_the_country_does_not_accept_is_just_no_consent(session) -> None:
    _with_consent(session, "de@x.example", "DE", "implied_purchase",
                  obtained_at=NOW - timedelta(days=800), expires_at=NOW - timedelta(days=70))
    assert _reasons(session) == {"de@x.example": "no_consent"}


def test_legacy_kind_rows_still_count(session) -> None:
    _with_consent(session, "old@fr.example", "FR", "legitimate_interest")
    assert _reasons(session) == {"old@fr.example": None}


def test_any_valid_consent_among_several_is_enough(session) -> None:
    contact = _with_consent(session, "two@de.example", "DE", "legitimate_interest_b2b")
    session.add(Consent(contact_id=contact.id, kind="express", source="web form", obtained_at=NOW))
    session.flush()
    assert _reasons(session) == {"two@de.example": None}


def test_normalise_kind_and_rule_overrides() -> None:
    assert normalise_kind("Legitimate-Interest") == "legitimate_interest_b2b"
    assert normalise_kind("soft opt in") == "soft_opt_in"
    with pytest.raises(ValueError, match="unknown consent kind 'maybe'"):
        normalise_kind("maybe")
    basis = parse_rules("DE=express; US=express+implied_purchase; *=express")
    assert basis.kinds_for("DE") == {"express"}
    assert basis.kinds_for("US") == {"express", "implied_purchase"}
    assert basis.kinds_for("JP") == {"express"}
    assert basis.kinds_for("CA") == DEFAULT.kinds_for("CA")
    with pytest.raises(ValueError, match="expected CC=kind"):
        parse_rules("Germany express")


def test_rule_overrides_apply_in_sql(session) -> None:
    _with_consent(session, "us@x.example", "US", "soft_opt_in")
    strict = parse_rules("US=express")
    assert set(session.scalars(select(Contact.email).where(has_lawful_basis(NOW)))) == {"us@x.example"}
    assert set(session.scalars(select(Contact.email).where(has_lawful_basis(NOW, strict)))) == set()
