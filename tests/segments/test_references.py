"""Saved segments named inside a rule: `@eu-prospects`, `@'Trade fair buyers'`, expanded before use."""

from __future__ import annotations

import pytest

from sendwell.campaigns.service import create_campaign
from sendwell.segments.expression import Ref, SegmentError, compile_segment, parse, reference, to_json, to_text
from sendwell.segments.service import count_segment, create_segment, expand_references
from tests.helpers import make_contact


def test_a_reference_reads_and_writes_in_text_and_json() -> None:
    assert parse("@'Trade fair buyers'") == Ref("Trade fair buyers", "position 1")
    assert parse('@"Trade fair buyers"').name == "Trade fair buyers"
    assert parse("@eu-prospects").name == "eu-prospects"
    assert reference("Trade fair buyers") == "@'Trade fair buyers'" and reference("eu") == "@eu"
    node = parse("@'Trade fair buyers' and not country = US")
    assert to_text(node) == "@'Trade fair buyers' and not country = US"
    assert to_json(node) == {"and": [{"segment": "Trade fair buyers"},
                                     {"not": {"field": "country", "op": "=", "value": "US"}}]}
    assert parse({"segment": "Trade fair buyers"}).name == "Trade fair buyers"
    with pytest.raises(SegmentError, match="only known where saved segments are looked up"):
        compile_segment("@'Trade fair buyers'")


def test_references_are_expanded_to_the_saved_rules(session) -> None:
    create_segment(session, name="Trade fair buyers", expression="country = DE or country = FR")
    create_segment(session, name="eu", expression="region = eu")
    assert expand_references(session, "@'Trade fair buyers' and stage = prospect") == \
        "(country = DE or country = FR) and stage = prospect"
    assert expand_references(session, "@Trade fair buyers") == "country = DE or country = FR"  # the CLI's old form
    assert expand_references(session, "region = eu") == "region = eu"  # untouched without a reference
    # A saved rule that names another is stored expanded: it never changes behind the campaign's back.
    assert create_segment(session, name="EU fair", expression="@eu and @'Trade fair buyers'").expression == \
        "region = eu and (country = DE or country = FR)"
    with pytest.raises(SegmentError, match="no saved segment 'Nobody'"):
        expand_references(session, "@Nobody and country = DE")
    create_segment(session, name="Buyers' club", expression="country = DE")
    assert expand_references(session, reference("Buyers' club")) == "country = DE"  # @"Buyers' club"
    with pytest.raises(SegmentError, match="not both"):
        create_segment(session, name="""The "best" buyers' club""", expression="country = DE")


def test_a_campaign_and_a_count_use_a_name_with_spaces(session, settings) -> None:
    make_contact(session, country="DE")
    make_contact(session, country="US")
    create_segment(session, name="Trade fair buyers", expression="country = DE")
    campaign = create_campaign(session, settings=settings, name="Fair", subject="Hello", html="<p>Hi</p>",
                               segment="@'Trade fair buyers' and not tag = competitor")
    assert campaign.segment_expr == "country = DE and not tag = competitor"
    assert count_segment(session, expression="@'Trade fair buyers'")["matching"] == 1
