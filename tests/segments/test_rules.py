"""Segment rules beyond the basics: engagement recency, consent kind, custom fields, language
prefixes, the JSON form, positions in errors, saved segments, live counts and `@name` campaigns."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from sendwell.cli.main import cli, register_commands
from sendwell.contacts.vocabulary import add_value
from sendwell.db.models import Consent, Contact, Event
from sendwell.optout.service import unsubscribe_contact
from sendwell.segments.expression import SegmentError, Vocabularies, compile_segment, parse, to_json, to_text
from sendwell.segments.service import count_segment, create_segment, resolve_segment
from tests.helpers import make_contact

register_commands()
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def people(session):
    de = make_contact(session, email="de@x.example", country="DE", stage="prospect", industry="furniture",
                      language="de-AT", custom={"WhatsApp": "+49 1", "tier": "gold"})
    fr = make_contact(session, email="fr@x.example", country="FR", stage="prospect", industry="lighting",
                      language="fr", consent="legitimate_interest_b2b", custom={"tier": "silver"})
    us = make_contact(session, email="us@x.example", country="US", stage="customer", industry="lighting",
                      language="en-US", consent="implied_inquiry")
    ca = make_contact(session, email="ca@x.example", country="CA", stage="prospect", industry="lighting",
                      language="en", consent=None, last_engaged_at=NOW - timedelta(days=3))
    session.add_all([
        Event(kind="clicked", contact_id=de.id, occurred_at=NOW - timedelta(days=10)),
        Event(kind="opened", contact_id=fr.id, occurred_at=NOW - timedelta(days=20)),
        Event(kind="clicked", contact_id=us.id, occurred_at=NOW - timedelta(days=400)),
        Consent(contact_id=ca.id, kind="implied_inquiry", source="t", obtained_at=NOW - timedelta(days=300),
                expires_at=NOW - timedelta(days=117)),
    ])
    session.flush()


def emails(session, expr, now=NOW) -> set[str]:
    return set(session.scalars(select(Contact.email).where(compile_segment(expr, now=now))))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("industry in (furniture, lighting) and stage = prospect and region = EU and not clicked within 180 days",
         {"fr@x.example"}),
        ("clicked within 180 days", {"de@x.example"}),
        ("clicked within 500 days", {"de@x.example", "us@x.example"}),
        ("opened within 30 days", {"fr@x.example"}),
        ("not opened within 30 days and not clicked within 30 days", {"us@x.example", "ca@x.example"}),
        ("engaged within 7 days", {"ca@x.example"}),
        ("engaged within 15 d", {"ca@x.example", "de@x.example"}),
        ("consent = express", {"de@x.example"}),
        ("consent in (legitimate_interest_b2b, implied_inquiry)", {"fr@x.example", "us@x.example"}),
        ("consent = implied_inquiry", {"us@x.example"}),  # ca's has lapsed
        ("custom.tier = gold", {"de@x.example"}),
        ("custom.tier in (gold, silver)", {"de@x.example", "fr@x.example"}),
        ("custom.tier != gold", {"fr@x.example", "us@x.example", "ca@x.example"}),
        ("custom.WhatsApp = '+49 1'", {"de@x.example"}),
        ("language = de", {"de@x.example"}),
        ("language = en", {"us@x.example", "ca@x.example"}),
        ("language = en-US", {"us@x.example"}),
        ("industry = 照明", {"fr@x.example", "us@x.example", "ca@x.example"}),
        ("company = \"'; DROP TABLE contacts; --\"", set()),
        ("custom.tier = \"x' OR '1'='1\"", set()),
    ],
)
def test_rules_select_the_right_contacts(session, people, expr, expected) -> None:
    assert emails(session, expr) == expected
    # The JSON form of the same rule selects the same contacts, and so does its text again.
    node = parse(expr)
    assert emails(session, json.dumps(to_json(node))) == expected
    assert emails(session, to_json(node)) == expected
    assert emails(session, to_text(node)) == expected


def test_json_rules(session, people) -> None:
    rule = {"and": [{"field": "industry", "op": "in", "value": ["furniture", "lighting"]},
                    {"field": "region", "value": "eu"},
                    {"not": {"engagement": "clicked", "within_days": 180}}]}
    assert emails(session, rule) == {"fr@x.example"}
    assert to_text(parse(rule)) == "industry in (furniture, lighting) and region = eu and not clicked within 180 days"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("clicked 180 days", "expected 'within' after 'clicked' at position 9"),
        ("clicked within soon", "expected a number of days (1 to 36500) at position 16"),
        ("region = eu and consent = maybe", "unknown consent kind 'maybe' at position 27"),
        ("custom. = x", "custom field name '' at position 1"),
        ("region = eu stage = prospect", "unexpected 'stage' at position 13"),
        ("company = 'unclosed", "unexpected character \"'\" at position 11"),
        ('{"field": "colour", "value": "red"}', "unknown segment field 'colour' at $"),
        ('{"and": [{"field": "region", "value": "mars"}]}', "unknown region 'mars' at $.and[0]"),
        ('{"and": []}', "$.and: expected a non-empty list"),
        ('{"engagement": "clicked", "within_days": "180"}', "$.within_days: expected a whole number"),
        ('{"field": "region", "op": "=", "value": ["eu", "uk"]}', "op '=' takes one value"),
        ('{"field": "region", "op": "like", "value": "eu"}', "$.op: use one of"),
        ('{"region": "eu"', "invalid JSON at position"),
        ("company = 'a\x00b'", "the value at position 11 contains a control character"),
        ("language = klingon-xx-yy", "unknown language 'klingon-xx-yy' at position 12"),
        ("country in (DE, Narnia)", "unknown country 'Narnia' at position 17"),
        ('{"field": "stage", "op": "in", "value": ["prospect", "a b"]}', "unknown stage 'a b' at $.value[1]"),
    ],
)
def test_bad_rules_name_the_problem_and_where(expr, message) -> None:
    with pytest.raises(SegmentError) as info:
        compile_segment(expr)
    assert message in str(info.value)


def test_strict_vocabularies_know_added_values(session) -> None:
    add_value(session, kind="stage", value="key_account")
    strict = Vocabularies.from_session(session)
    compile_segment("stage = key_account", vocabularies=strict)
    with pytest.raises(SegmentError, match="unknown stage 'vip' at position 9"):
        compile_segment("stage = vip", vocabularies=strict)
    with pytest.raises(SegmentError, match="unknown industry 'unicorns'"):
        compile_segment("industry = unicorns", vocabularies=strict)


def test_saved_segments_and_live_counts(session, people) -> None:
    create_segment(session, name="eu-prospects", expression="region = eu and stage = prospect")
    assert resolve_segment(session, "@eu-prospects") == "region = eu and stage = prospect"
    with pytest.raises(SegmentError, match="exists already"):
        create_segment(session, name="eu-prospects", expression="region = eu")
    with pytest.raises(SegmentError, match="no saved segment 'nope' \\(saved: eu-prospects\\)"):
        resolve_segment(session, "@nope")
    counts = count_segment(session, expression="@eu-prospects", now=NOW)
    # de: express in DE → reachable; fr: B2B legitimate interest in FR → reachable.
    assert counts == {"matching": 2, "suppressed": 0, "no_lawful_basis": 0, "reachable": 2}
    de = session.scalar(select(Contact).where(Contact.email == "de@x.example"))
    unsubscribe_contact(session, contact_id=de.id, method="one_click")
    counts = count_segment(session, expression="stage = prospect", now=NOW)
    # ca: its implied inquiry consent has lapsed.
    assert counts == {"matching": 3, "suppressed": 1, "no_lawful_basis": 1, "reachable": 1}
    saved = create_segment(session, name="json-one", expression='{"field": "country", "value": "Deutschland"}')
    assert saved.expression == "country = Deutschland"


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str | None]:
    return {"SENDWELL_DATA_DIR": str(tmp_path / "data"), "SENDWELL_DATABASE_URL": db_url,
            "SENDWELL_SECRET_KEY": None, "SENDWELL_HASH_PEPPER": None, "SENDWELL_SMTP_URL": None,
            "SENDWELL_QUEUE_URL": None}


def run(env, *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_segments_cli_and_campaign_at_name(env, tmp_path) -> None:
    run(env, "init")
    (tmp_path / "c.csv").write_text("email,country,industry,stage\n"
                                    "a@de.example,DE,furniture,prospect\nb@us.example,US,lighting,customer\n")
    run(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express")
    created = json.loads(run(env, "segments", "create", "eu-furniture",
                             "industry in (furniture, lighting) and region = eu and not clicked within 180 days",
                             "--json").output)
    assert (created["matching"], created["reachable"]) == (1, 1)
    assert created["json"]["and"][0] == {"field": "industry", "op": "in", "value": ["furniture", "lighting"]}
    listed = json.loads(run(env, "segments", "list", "--json").output)
    assert [s["name"] for s in listed] == ["eu-furniture"]
    shown = json.loads(run(env, "segments", "show", "eu-furniture", "--json").output)
    assert shown["matching"] == 1
    assert json.loads(run(env, "segments", "count", "region in (eu, us)", "--json").output)["matching"] == 2
    bad = run(env, "segments", "count", "region = eu and stage = vip", ok=False)
    assert bad.exit_code != 0 and "unknown stage 'vip' at position 25" in bad.output
    (tmp_path / "m.html").write_text("<p>Hello</p>")
    cid = json.loads(run(env, "campaigns", "create", "--name", "x", "--subject", "s", "--html",
                         str(tmp_path / "m.html"), "--segment", "@eu-furniture", "--json").output)["id"]
    status = json.loads(run(env, "campaigns", "send", str(cid), "--wait", "--json").output)
    assert status["total"] == 1
    missing = run(env, "campaigns", "create", "--name", "x", "--subject", "s", "--html",
                  str(tmp_path / "m.html"), "--segment", "@nope", ok=False)
    assert "no saved segment 'nope'" in missing.output
