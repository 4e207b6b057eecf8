"""Scheduled campaigns: the API and CLI set a start time, the worker's scan starts it once, and a
campaign that can no longer be sent at its time goes back to draft with a critical alert."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from click.testing import CliRunner
from sqlalchemy import select

from sendwell.campaigns.service import CampaignError, claim_scheduled, schedule_campaign
from sendwell.db.models import Alert, Campaign
from sendwell.db.session import transaction
from sendwell.flows import start_due_campaigns
from sendwell.worker.queue import Queue
from tests.web.api.conftest import assert_problem
from tests.web.api.test_campaigns_events_reports import API, HTML, _audience


def _draft(client, admin, **extra) -> int:
    created = client.post(f"{API}/campaigns", headers=admin, json={
        "name": "Autumn range", "subject": "New LED panels", "html": HTML, **extra})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def test_schedule_then_the_scan_starts_it_once(client, admin, runtime) -> None:
    _audience(client, admin)
    campaign_id = _draft(client, admin)
    start = datetime.now(timezone.utc) + timedelta(hours=2)
    shanghai = start.astimezone(timezone(timedelta(hours=8)))
    scheduled = client.post(f"{API}/campaigns/{campaign_id}/schedule", headers=admin, json={"at": _iso(shanghai)})
    assert scheduled.status_code == 200, scheduled.text
    body = scheduled.json()
    assert body["status"] == "scheduled" and body["total"] == 0
    assert datetime.fromisoformat(body["scheduled_at"]) == start  # stored in UTC, the same instant
    listed = client.get(f"{API}/campaigns", headers=admin).json()["items"]
    assert datetime.fromisoformat(listed[0]["scheduled_at"]) == start

    # Not due yet: nothing starts, nothing is planned.
    assert start_due_campaigns(runtime.factory, settings=runtime.settings, now=start - timedelta(seconds=1)) == []
    assert client.get(f"{API}/campaigns/{campaign_id}", headers=admin).json()["status"] == "scheduled"

    started = start_due_campaigns(runtime.factory, settings=runtime.settings, now=start + timedelta(seconds=1))
    assert [cid for cid, _ in started] == [campaign_id]
    assert sum(map(len, started[0][1])) == 3  # every eligible contact queued
    status = client.get(f"{API}/campaigns/{campaign_id}", headers=admin).json()
    assert status["status"] == "sending" and status["states"]["queued"] == 3
    # A second scan (another worker, a minute later) starts nothing again.
    assert start_due_campaigns(runtime.factory, settings=runtime.settings, now=start + timedelta(minutes=1)) == []


def test_only_one_claim_wins(client, admin, runtime) -> None:
    campaign_id = _draft(client, admin)
    with transaction(runtime.factory) as s:
        schedule_campaign(s, campaign_id=campaign_id, at=datetime.now(timezone.utc) + timedelta(minutes=5))
    with transaction(runtime.factory) as s:
        assert claim_scheduled(s, campaign_id=campaign_id) is True
    with transaction(runtime.factory) as s:
        assert claim_scheduled(s, campaign_id=campaign_id) is False
        assert s.get(Campaign, campaign_id).status == "draft"


def test_bad_times_and_states_are_refused_by_name(client, admin, runtime) -> None:
    campaign_id = _draft(client, admin)
    url = f"{API}/campaigns/{campaign_id}/schedule"
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    assert "not in the future" in assert_problem(client.post(url, headers=admin, json={"at": _iso(past)}), 422,
                                                 "at")["detail"]
    assert_problem(client.post(url, headers=admin, json={"at": "2030-01-01T09:00:00"}), 422, "at")  # no zone
    assert_problem(client.post(url, headers=admin, json={"at": "tomorrow"}), 422, "at")
    assert_problem(client.post(url, headers=admin, json={"at": "0001-01-01T00:00:00+23:59"}), 422, "at")
    assert_problem(client.post(f"{API}/campaigns/99999/schedule", headers=admin,
                               json={"at": _iso(datetime.now(timezone.utc) + timedelta(days=1))}), 404)
    future = _iso(datetime.now(timezone.utc) + timedelta(days=1))
    assert client.post(url, headers=admin, json={"at": future}).status_code == 200
    assert_problem(client.post(url, headers=admin, json={"at": future}), 409)  # already scheduled
    assert_problem(client.post(f"{API}/campaigns/{campaign_id}/send", headers=admin), 409)
    with transaction(runtime.factory) as s:  # a scheduled campaign cannot be edited: unschedule first
        try:
            from sendwell.campaigns.service import update_campaign

            update_campaign(s, settings=runtime.settings, campaign_id=campaign_id, name="x", subject="y", html=HTML)
            raise AssertionError("a scheduled campaign was changed")
        except CampaignError as exc:
            assert "only a draft can be changed" in str(exc)
    back = client.post(f"{API}/campaigns/{campaign_id}/unschedule", headers=admin).json()
    assert back["status"] == "draft" and back["scheduled_at"] is None
    assert_problem(client.post(f"{API}/campaigns/{campaign_id}/unschedule", headers=admin), 409)
    assert client.post(url, headers=admin, json={"at": future}).status_code == 200
    cancelled = client.post(f"{API}/campaigns/{campaign_id}/cancel", headers=admin).json()
    assert cancelled["status"] == "cancelled" and cancelled["scheduled_at"] is None


def test_a_campaign_the_lint_blocks_is_not_scheduled(client, admin, runtime) -> None:
    campaign_id = _draft(client, admin)
    # CAN-SPAM: no postal address, no marketing mail
    runtime.replace_settings(runtime.settings.replace(postal_address=""))
    answer = client.post(f"{API}/campaigns/{campaign_id}/schedule", headers=admin,
                         json={"at": _iso(datetime.now(timezone.utc) + timedelta(hours=1))})
    assert_problem(answer, 422)
    assert client.get(f"{API}/campaigns/{campaign_id}", headers=admin).json()["status"] == "draft"


def test_when_it_can_no_longer_be_sent_it_goes_back_to_draft_with_an_alert(client, admin, runtime) -> None:
    campaign_id = _draft(client, admin)
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    assert client.post(f"{API}/campaigns/{campaign_id}/schedule", headers=admin,
                       json={"at": _iso(start)}).status_code == 200
    # The settings changed between scheduling and the start.
    runtime.replace_settings(runtime.settings.replace(postal_address=""))
    assert start_due_campaigns(runtime.factory, settings=runtime.settings, now=start + timedelta(seconds=5)) == []
    with transaction(runtime.factory) as s:
        campaign = s.get(Campaign, campaign_id)
        assert (campaign.status, campaign.scheduled_at) == ("draft", None)
        alerts = list(s.scalars(select(Alert).where(Alert.campaign_id == campaign_id)))
    assert [(a.kind, a.severity) for a in alerts] == [("schedule_failed", "critical")]
    assert "did not start at its scheduled time" in alerts[0].message
    assert alerts[0].data["scheduled_at"].startswith(start.strftime("%Y-%m-%dT%H:%M"))


def test_the_worker_scan_queues_what_it_starts(client, admin, runtime) -> None:
    _audience(client, admin)
    campaign_id = _draft(client, admin)
    with transaction(runtime.factory) as s:
        campaign = s.get(Campaign, campaign_id)
        schedule_campaign(s, campaign_id=campaign_id, at=datetime.now(timezone.utc) + timedelta(seconds=30))
        campaign.scheduled_at = datetime.now(timezone.utc) - timedelta(seconds=1)  # as if the time has come
    queue = Queue(runtime)
    assert queue.start_scheduled() == [campaign_id]
    assert queue.pending() == 1
    assert queue.start_scheduled() == []


def test_cli_schedule_and_unschedule(client, admin, runtime, monkeypatch) -> None:
    from sendwell.cli import context
    from sendwell.cli.main import cli, register_commands

    register_commands()
    campaign_id = _draft(client, admin)
    monkeypatch.setattr(context, "get_runtime", lambda: runtime)
    monkeypatch.setattr("sendwell.cli.campaigns.get_runtime", lambda: runtime)
    runner = CliRunner()
    naive = runner.invoke(cli, ["campaigns", "schedule", str(campaign_id), "--at", "2030-01-01T09:00"])
    assert naive.exit_code == 1 and "needs a time zone" in naive.output
    garbage = runner.invoke(cli, ["campaigns", "schedule", str(campaign_id), "--at", "next tuesday"])
    assert garbage.exit_code == 1 and "--at" in garbage.output
    at = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    done = runner.invoke(cli, ["campaigns", "schedule", str(campaign_id), "--at", at.isoformat()])
    assert done.exit_code == 0, done.output
    assert "scheduled" in done.output and f"starts at {at.isoformat()}" in done.output
    undone = runner.invoke(cli, ["campaigns", "unschedule", str(campaign_id)])
    assert undone.exit_code == 0 and ": draft," in undone.output
