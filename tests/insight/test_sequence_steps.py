"""Why people leave a sequence, per step: step mails go to a real SMTP server, people leave through the
List-Unsubscribe link of the mail they got and answer the survey on the real pages; the advice names the step."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

from click.testing import CliRunner
from sqlalchemy import select

from sendwell.cli.main import cli
from sendwell.db.models import SequenceStepCampaign
from sendwell.db.session import transaction
from sendwell.insight.alerts import Thresholds, check_campaign
from sendwell.insight.sequence_steps import reasons_by_step, step_recommendations
from sendwell.sequences.service import step_report
from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.optout.conftest import web
from tests.sequences.test_sequences import (
    FAIR,
    _advance,
    _create,
    _deliver,
    _tagged,
    dkim_key,
    runtime,
    smtp_runtime,
)

__all__ = ["dkim_key", "runtime", "smtp_runtime", "web"]
THREE_DAYS = timedelta(days=3, minutes=1)


def _leave(web, smtp_server, address: str, subject: str, reason: str) -> None:
    """Unsubscribe with the List-Unsubscribe link of the mail `address` got with `subject`, then answer the survey."""
    mail = next(m for m in (message_from_bytes(r.data) for r in smtp_server.messages if r.rcpt_tos == [address])
                if subject in str(m["Subject"]))
    path = re.search(r"https?://[^/]+(/u/[^>\s]+)>", " ".join(str(mail["List-Unsubscribe"]).split())).group(1)
    assert web.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert web.post(path + "/reason", data={"reason": reason}).status_code == 200


def _recommendations(runtime, sequence_id: int) -> list[dict]:
    with transaction(runtime.factory) as s:
        return [r.as_dict() for r in step_recommendations(s, sequence_id=sequence_id)]


def _people(runtime, count: int, stage: str = "new_lead") -> list[str]:
    return [_tagged(runtime, stage=stage)[1] for _ in range(count)]


def test_leavers_at_the_catalogue_step_are_named_with_the_wait_before_it(smtp_runtime, smtp_server, web) -> None:
    sequence_id = _create(smtp_runtime)
    people = _people(smtp_runtime, 21)
    _deliver(smtp_runtime, _advance(smtp_runtime))
    _leave(web, smtp_server, people[0], "Thank you for visiting", "too_many")
    _deliver(smtp_runtime, _advance(smtp_runtime, now=datetime.now(UTC) + THREE_DAYS))
    assert len(smtp_server.messages) == 21 + 20
    for address in people[1:4]:
        _leave(web, smtp_server, address, "Our catalogue", "too_many")
    _leave(web, smtp_server, people[4], "Our catalogue", "not_relevant")

    with transaction(smtp_runtime.factory) as s:
        assert reasons_by_step(s, sequence_id=sequence_id) == {
            "catalogue": {"not_relevant": 1, "too_many": 3}, "thanks": {"too_many": 1}}
    advice = {r["code"]: r for r in _recommendations(smtp_runtime, sequence_id)}
    assert set(advice) == {"sequence_step_wait", "sequence_step_unsubscribes"}
    wait = advice["sequence_step_wait"]
    assert wait["evidence"] == {"step": "catalogue", "wait": "wait-3d", "answers": 3, "of": 4}
    assert wait["title"] == "Leave more time before step “catalogue”"
    assert wait["why"] == ("3 of 4 people who left this sequence because of too many emails left at step "
                           "“catalogue”. Lengthen the wait “wait-3d” before it.")
    assert wait["why_params"] == {"count": 3, "total": 4, "step": "catalogue", "wait": "wait-3d"}
    rate = advice["sequence_step_unsubscribes"]
    assert rate["evidence"]["step"] == "catalogue" and rate["evidence"]["factor"] == 4.2
    assert rate["why"].startswith("Step “catalogue” lost 20.0% of the people it reached (4 of 20), 4.2× the rate "
                                  "of the sequence's other mail steps (4.8%, 1 of 21)")


def test_the_advice_fits_where_the_step_stands(smtp_runtime, smtp_server, web) -> None:
    # The catalogue right after the thanks, no wait between: more time before it, or not at all.
    sequence_id = _create(smtp_runtime, {**FAIR, "name": "Two at once", "steps": [FAIR["steps"][0], FAIR["steps"][2]]})
    people = _people(smtp_runtime, 3)
    _deliver(smtp_runtime, _advance(smtp_runtime))
    _deliver(smtp_runtime, _advance(smtp_runtime))
    for address in people:
        _leave(web, smtp_server, address, "Our catalogue", "too_many")
    (advice,) = _recommendations(smtp_runtime, sequence_id)
    assert advice["why"] == ("3 of 3 people who left this sequence because of too many emails left at step "
                             "“catalogue”. Leave more time before it, or leave it out.")


def test_two_answers_or_two_waits_are_no_advice_and_a_third_is(smtp_runtime, smtp_server, web) -> None:
    sequence_id = _create(smtp_runtime)
    leavers = _people(smtp_runtime, 2)
    _people(smtp_runtime, 2, stage="prospect")  # one mail a week: the catalogue three days on waits for the cap
    _deliver(smtp_runtime, _advance(smtp_runtime))
    _deliver(smtp_runtime, _advance(smtp_runtime, now=datetime.now(UTC) + THREE_DAYS))
    for address in leavers:
        _leave(web, smtp_server, address, "Our catalogue", "too_many")
    with transaction(smtp_runtime.factory) as s:
        assert reasons_by_step(s, sequence_id=sequence_id) == {"catalogue": {"too_many": 2}}
        waited = {r["id"]: r["waited"] for r in step_report(s, sequence_id=sequence_id)["steps"]}
    assert waited["catalogue"] == 2
    assert _recommendations(smtp_runtime, sequence_id) == []

    _people(smtp_runtime, 1, stage="prospect")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    _deliver(smtp_runtime, _advance(smtp_runtime, now=datetime.now(UTC) + THREE_DAYS))
    (advice,) = _recommendations(smtp_runtime, sequence_id)
    assert advice["code"] == "sequence_step_over_cap"
    assert advice["evidence"] == {"step": "catalogue", "waited": 3, "runs": 5, "stage": "prospect"}
    assert advice["why"].startswith("3 of 5 contacts who reached step “catalogue” were over their stage's frequency "
                                    "cap, so its mail waited (most now in stage prospect).")


def test_the_report_shows_the_steps_alert_reasons_and_advice(smtp_runtime, smtp_server, web) -> None:
    sequence_id = _create(smtp_runtime)
    people = _people(smtp_runtime, 3)
    _deliver(smtp_runtime, _advance(smtp_runtime))
    for address in people:
        _leave(web, smtp_server, address, "Thank you for visiting", "too_many")
    with transaction(smtp_runtime.factory) as s:
        step_one = step_report(s, sequence_id=sequence_id)["steps"][0]
        assert step_one["alert"] is None
        campaign_id = s.scalar(select(SequenceStepCampaign.campaign_id).where(
            SequenceStepCampaign.sequence_id == sequence_id, SequenceStepCampaign.step_id == "thanks"))
        thresholds = dataclasses.replace(Thresholds.from_settings(smtp_runtime.settings), min_sample=1)
        (alert,) = check_campaign(s, campaign_id=campaign_id, thresholds=thresholds)
        created_at = alert.created_at.isoformat()

    settings = smtp_runtime.settings
    env = {"SENDWELL_DATA_DIR": str(settings.data_dir), "SENDWELL_DATABASE_URL": settings.database_url,
           "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER}
    result = CliRunner().invoke(cli, ["sequences", "report", str(sequence_id), "--json"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    thanks = out["steps"][0]
    assert thanks["alert"]["severity"] == "critical" and thanks["alert"]["created_at"] == created_at
    assert thanks["alert"]["kind"] == "unsubscribe_spike" and thanks["alert"]["pauses_step"] is True
    assert out["reasons"] == {"thanks": {"too_many": 3}}
    assert [r["evidence"]["step"] for r in out["recommendations"]] == ["thanks"]
    assert out["recommendations"][0]["why_template"].startswith("%(count)s of %(total)s people who left this sequence")

    text = CliRunner().invoke(cli, ["sequences", "report", str(sequence_id)], env=env, catch_exceptions=False).output
    assert "critical alert since" in text and "reasons: too_many 3" in text
    # The first mail: nothing of the sequence comes before it, the person's other mails do.
    assert "→ Leave more time before step “thanks”: 3 of 3 people" in text
    assert "Start the sequence with a wait, or lower the frequency cap of their stage." in text
