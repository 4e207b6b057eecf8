"""Editing a live sequence into a new version: contacts in flight keep their place by step id, each step runs once."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sendwell.content.service import ComplianceError
from sendwell.db.models import SequenceEnrollment, SequenceStepCampaign
from sendwell.db.session import transaction
from sendwell.sequences.definition import DefinitionError
from sendwell.sequences.report import enrollments, step_runs
from sendwell.sequences.service import SequenceError, describe, get_sequence, resume_step, update_sequence
from sendwell.sequences.versions import versions
from tests.policy.test_cli_policy import env, run
from tests.sequences.test_sequences import (
    _advance,
    _create,
    _deliver,
    _tagged,
    dkim_key,
    runtime,
    smtp_runtime,
)

__all__ = ["dkim_key", "env", "runtime", "smtp_runtime"]  # fixtures pytest finds by name

FIVE = {
    "name": "Fair follow-up in five steps",
    "trigger": {"kind": "tag_added", "tag": "fair-2026"},
    "steps": [
        {"id": "thanks", "kind": "mail", "subject": "Thank you for visiting",
         "html": "<p>Dear {{ first_name }}, thank you for visiting our stand.</p>"},
        {"id": "wait-3d", "kind": "wait", "days": 3},
        {"id": "catalogue", "kind": "mail", "subject": "Our catalogue",
         "html": "<p>Dear {{ first_name }}, here is our catalogue.</p>"},
        {"id": "wait-7d", "kind": "wait", "days": 7},
        {"id": "samples", "kind": "mail", "subject": "Free samples",
         "html": "<p>Dear {{ first_name }}, may we send you samples?</p>"},
    ],
}


def _edit(runtime, sequence_id: int, data: dict) -> dict:
    with transaction(runtime.factory) as s:
        return describe(s, update_sequence(s, settings=runtime.settings, sequence_id=sequence_id, data=data))


def _campaigns(runtime, sequence_id: int) -> dict[tuple[int, str], int]:
    with transaction(runtime.factory) as s:
        c = SequenceStepCampaign
        return {(v, step): campaign for v, step, campaign in s.execute(
            select(c.version, c.step_id, c.campaign_id).where(c.sequence_id == sequence_id, c.round == 1))}


def _days(n: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=n, minutes=1)


def test_a_waiting_contact_keeps_its_step_when_a_later_step_changes(smtp_runtime, smtp_server) -> None:
    sequence_id = _create(smtp_runtime, FIVE)
    _, address = _tagged(smtp_runtime, stage="customer")
    _deliver(smtp_runtime, _advance(smtp_runtime))  # thanks sent; waits three days before the catalogue
    with transaction(smtp_runtime.factory) as s:
        (before,) = enrollments(s, sequence_id=sequence_id)

    edited = copy.deepcopy(FIVE)
    edited["steps"][4]["subject"] = "Free samples for your showroom"
    assert _edit(smtp_runtime, sequence_id, edited)["version"] == 2

    with transaction(smtp_runtime.factory) as s:
        (after,) = enrollments(s, sequence_id=sequence_id)
        assert (after.step_id, after.next_at, after.version) == ("catalogue", before.next_at, 2)
        assert [v.version for v in versions(s, sequence_id=sequence_id)] == [1, 2]
        assert versions(s, sequence_id=sequence_id)[0].definition["steps"][4]["subject"] == "Free samples"
    campaigns = _campaigns(smtp_runtime, sequence_id)
    # The unchanged mail steps keep their campaign (their report goes on); the changed one has a new one.
    assert campaigns[(2, "thanks")] == campaigns[(1, "thanks")]
    assert campaigns[(2, "catalogue")] == campaigns[(1, "catalogue")]
    assert campaigns[(2, "samples")] != campaigns[(1, "samples")]

    _deliver(smtp_runtime, _advance(smtp_runtime, now=_days(3)))
    _deliver(smtp_runtime, _advance(smtp_runtime, now=_days(10)))
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [address] * 3
    assert b"Subject: Free samples for your showroom" in smtp_server.messages[2].data
    with transaction(smtp_runtime.factory) as s:
        assert [r.step_id for r in step_runs(s, sequence_id=sequence_id)] == [
            "thanks", "wait-3d", "catalogue", "wait-7d", "samples"]
        (done,) = enrollments(s, sequence_id=sequence_id)
        assert done.state == "done"


def test_a_contact_at_a_removed_step_goes_on_at_the_next_step_that_is_left(smtp_runtime, smtp_server) -> None:
    sequence_id = _create(smtp_runtime, FIVE)
    _tagged(smtp_runtime, stage="customer")
    _deliver(smtp_runtime, _advance(smtp_runtime))  # at catalogue, due in three days
    edited = copy.deepcopy(FIVE)
    del edited["steps"][2:4]  # catalogue and its wait go; samples follows the first wait
    _edit(smtp_runtime, sequence_id, edited)
    with transaction(smtp_runtime.factory) as s:
        (moved,) = enrollments(s, sequence_id=sequence_id)
        assert (moved.step_id, moved.state) == ("samples", "active")
    _deliver(smtp_runtime, _advance(smtp_runtime, now=_days(3)))
    assert [b"Free samples" in m.data for m in smtp_server.messages] == [False, True]
    with transaction(smtp_runtime.factory) as s:
        assert [r.step_id for r in step_runs(s, sequence_id=sequence_id)] == ["thanks", "wait-3d", "samples"]


def test_removing_every_step_left_ends_the_pass_with_step_removed(runtime) -> None:
    sequence_id = _create(runtime, FIVE)
    _tagged(runtime, stage="customer")
    _advance(runtime)
    edited = copy.deepcopy(FIVE)
    edited["steps"] = edited["steps"][:2]  # thanks and the wait after it: nothing from catalogue on
    _edit(runtime, sequence_id, edited)
    with transaction(runtime.factory) as s:
        (ended,) = enrollments(s, sequence_id=sequence_id)
        assert (ended.state, ended.exited_reason, ended.step_id) == ("exited", "step_removed", "catalogue")


def test_a_step_moved_before_the_contact_is_not_run_again(smtp_runtime, smtp_server) -> None:
    sequence_id = _create(smtp_runtime, FIVE)
    _tagged(smtp_runtime, stage="customer")
    _deliver(smtp_runtime, _advance(smtp_runtime))
    edited = copy.deepcopy(FIVE)
    thanks = edited["steps"].pop(0)
    thanks["subject"] = "Thank you again"  # changed and moved after the catalogue: a new campaign
    edited["steps"].insert(3, thanks)
    _edit(smtp_runtime, sequence_id, edited)
    _deliver(smtp_runtime, _advance(smtp_runtime, now=_days(3)))
    _deliver(smtp_runtime, _advance(smtp_runtime, now=_days(10)))
    subjects = [m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in smtp_server.messages]
    assert subjects == [b"Thank you for visiting", b"Our catalogue", b"Free samples"]
    with transaction(smtp_runtime.factory) as s:
        runs = [r.step_id for r in step_runs(s, sequence_id=sequence_id)]
        assert sorted(runs) == sorted(set(runs)) and runs.count("thanks") == 1
        assert s.scalar(select(SequenceEnrollment.state)) == "done"


def test_an_edit_is_checked_like_a_new_sequence(runtime) -> None:
    sequence_id = _create(runtime, FIVE)
    bad = copy.deepcopy(FIVE)
    bad["steps"][1]["days"] = "soon"
    with pytest.raises(DefinitionError, match="wait-3d"), transaction(runtime.factory) as s:
        update_sequence(s, settings=runtime.settings, sequence_id=sequence_id, data=bad)
    deceptive = copy.deepcopy(FIVE)
    deceptive["steps"][2]["subject"] = "Re: Our catalogue"  # the lint blocks a changed step as on create
    with pytest.raises(ComplianceError) as caught, transaction(runtime.factory) as s:
        update_sequence(s, settings=runtime.settings, sequence_id=sequence_id, data=deceptive)
    assert "deceptive-subject" in {f.code for f in caught.value.report.errors}
    with pytest.raises(SequenceError, match="no sequence"), transaction(runtime.factory) as s:
        update_sequence(s, settings=runtime.settings, sequence_id=999, data=FIVE)
    with transaction(runtime.factory) as s:
        assert get_sequence(s, sequence_id=sequence_id).version == 1  # every refusal rolled back
        assert [v.version for v in versions(s, sequence_id=sequence_id)] == [1]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # an adapter: SQLite is enough
def test_cli_update_and_show_print_the_version(env, tmp_path) -> None:
    run(env, "init")
    (tmp_path / "v1.json").write_text(json.dumps(FIVE))
    created = json.loads(run(env, "sequences", "create", str(tmp_path / "v1.json"), "--json").output)
    sequence_id = created["id"]
    assert created["findings"] == []  # a reserved sender domain (.example) in public DNS: nothing to check
    edited = copy.deepcopy(FIVE)
    edited["steps"][0]["subject"] = "Thanks for coming by"
    (tmp_path / "v2.json").write_text(json.dumps(edited))
    out = json.loads(run(env, "sequences", "update", str(sequence_id), str(tmp_path / "v2.json"), "--json").output)
    assert (out["id"], out["version"]) == (sequence_id, 2)
    assert "version 2" in run(env, "sequences", "show", str(sequence_id)).output
    edited["steps"][1]["days"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(edited))
    bad = run(env, "sequences", "update", str(sequence_id), str(tmp_path / "bad.json"), ok=False)
    assert bad.exit_code == 1 and "wait-3d" in bad.output


def test_resume_step_names_a_campaign_the_versions_share_once(runtime) -> None:
    sequence_id = _create(runtime, FIVE)
    edited = copy.deepcopy(FIVE)
    edited["steps"][4]["subject"] = "Free samples for your showroom"
    _edit(runtime, sequence_id, edited)
    with transaction(runtime.factory) as s:
        assert len(resume_step(s, sequence_id=sequence_id, step_id="thanks")) == 1  # kept by version 2
        assert len(resume_step(s, sequence_id=sequence_id, step_id="samples")) == 2  # one campaign per version
