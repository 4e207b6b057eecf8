"""`sendwell campaigns send ID --wait` as a real process: killed, blocked, cut off from Redis or PostgreSQL.

With the default settings (a 600 s lease): a second run takes back what a killed first run held
at once (its pid is dead) and finishes the campaign; a run never exits 0 while another live
process holds some of its sends; Redis or PostgreSQL unreachable is one line and exit status 1,
and the same command run again continues.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.migrate import upgrade
from sendwell.db.models import Campaign, Contact, Send
from sendwell.db.session import make_engine, transaction
from sendwell.delivery.planning import plan_campaign, queue_campaign
from sendwell.runtime import Runtime
from sendwell.worker.queue import Queue
from tests.reliability.conftest import DEFAULT_RECOVERY, RECIPIENTS, THREADS, ArrivalServer, record_figures, shape_settings
from tests.reliability.servers import PrivatePostgres, PrivateRedis
from tests.reliability.test_crash import _open_connections
from tests.worker import support

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _env(settings, dkim_key_file: str, **extra: str) -> dict[str, str]:
    # One delivery process (the pool has its own tests), a DKIM key (the send gate wants one), and
    # no sender-domain DNS gate for the test domain.
    return support.worker_env(settings, SENDWELL_DELIVERY_PROCESSES="1", SENDWELL_BULK_THRESHOLD="1000000000",
                              SENDWELL_DKIM_DOMAIN=settings.sender_domain, SENDWELL_DKIM_KEY_FILE=dkim_key_file,
                              **extra)


def _draft(runtime) -> int:
    with transaction(runtime.factory) as s:
        return create_campaign(s, settings=runtime.settings, name="Wait", subject="Hello {{ contact.company }}",
                               html="<p>Dear {{ first_name }}, our new panels.</p>").id


def _send(env, campaign_id: int, *args: str, wait: bool = True) -> subprocess.Popen[str]:
    cmd = [support.SENDWELL, "campaigns", "send", str(campaign_id), *(["--wait"] if wait else []), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(env, campaign_id: int, *args: str, wait: bool = True) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = _send(env, campaign_id, *args, wait=wait)
    out, err = proc.communicate(timeout=900)
    return proc.returncode, out, err, time.monotonic() - started


def _a_third_sent(runtime, server, dkim_key_file: str) -> tuple[int, dict[str, str], subprocess.Popen[str]]:
    """A campaign to RECIPIENTS contacts under `send --wait`, a third of it received."""
    support.seed_contacts(runtime, RECIPIENTS)
    campaign_id = _draft(runtime)
    env = _env(runtime.settings, dkim_key_file)
    first = _send(env, campaign_id)
    support.wait_for(lambda: server.received >= RECIPIENTS // 3, "a third of the mails", procs=[first], timeout=900)
    return campaign_id, env, first


def _flagged_and_counts(runtime, server, campaign_id: int):
    with transaction(runtime.factory) as s:
        flagged = set(s.scalars(select(Contact.email).join(Send, Send.contact_id == Contact.id)
                                .where(Send.campaign_id == campaign_id, Send.possible_duplicate.is_(True))))
    return flagged, server.receipts()


def test_a_killed_send_wait_run_again_with_default_settings_finishes_the_campaign(db_url, tmp_path, dkim_key_file) -> None:
    with ArrivalServer() as server:
        runtime = Runtime(shape_settings(db_url, tmp_path / "data", server.url, **DEFAULT_RECOVERY))
        try:
            campaign_id, env, first = _a_third_sent(runtime, server, dkim_key_file)
            open_at_kill = _open_connections(server.port)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=60)
            at_kill = server.received
            held = support.states(runtime, campaign_id).get("sending", 0)
            code, out, err, took = _run(env, campaign_id)
            flagged, counts = _flagged_and_counts(runtime, server, campaign_id)
            states = support.states(runtime, campaign_id)
        finally:
            runtime.dispose()
    extra = sum(counts.values()) - RECIPIENTS
    record_figures(f"send-wait-killed[{db_url.split(':', 1)[0]}]", recipients=RECIPIENTS,
                   received_at_kill=at_kill, held_at_kill=held, open_connections_at_kill=open_at_kill,
                   second_run_seconds=round(took, 1), missing=RECIPIENTS - len(counts), duplicates=extra,
                   flagged_possible_duplicates=len(flagged), **DEFAULT_RECOVERY)
    assert code == 0, out + err
    assert held > 0 and at_kill < RECIPIENTS, "the kill came when nothing was held"
    assert took < 60, f"the second run took {took:.0f} s"
    assert states == {"sent": RECIPIENTS}
    assert set(counts) == {f"buyer{n}@buyers.example" for n in range(RECIPIENTS)}, "a recipient got nothing"
    assert {rcpt for rcpt, n in counts.items() if n > 1} <= flagged
    assert extra <= min(open_at_kill, THREADS)


def test_send_wait_does_not_exit_0_while_a_live_process_holds_some_of_its_sends(db_url, tmp_path, dkim_key_file) -> None:
    with ArrivalServer() as server:
        runtime = Runtime(shape_settings(db_url, tmp_path / "data", server.url, **DEFAULT_RECOVERY))
        try:
            support.seed_contacts(runtime, 300)
            campaign_id = _draft(runtime)
            with transaction(runtime.factory) as s:
                campaign = s.get(Campaign, campaign_id)
                plan_campaign(s, campaign=campaign, settings=runtime.settings)
                queue_campaign(s, campaign=campaign)
            holder = subprocess.Popen([sys.executable, "-m", "tests.reliability.holder",
                                       runtime.settings.effective_database_url, str(campaign_id), "50"],
                                      cwd=ROOT, stdout=subprocess.PIPE, text=True)
            try:
                assert holder.stdout.readline().strip() == "50"
                # Patience: two SMTP timeouts without any of the held sends finishing.
                env = _env(runtime.settings, dkim_key_file, SENDWELL_SMTP_TIMEOUT="2")
                code, out, err, _ = _run(env, campaign_id)
                assert code == 3, out + err
                assert "not sent: 50 sends held by worker" in out and f":{holder.pid}, alive, last seen" in out
                assert server.received == 250
            finally:
                support.stop(holder, signal.SIGKILL)
            code, out, err, took = _run(env, campaign_id)  # the holder is dead: its sends come back at once
            states = support.states(runtime, campaign_id)
        finally:
            runtime.dispose()
    record_figures("send-wait-after-holder-killed", seconds=round(took, 1))
    assert code == 0 and "not sent" not in out, out + err
    assert states == {"sent": 300}
    assert sorted(server.receipts().values()) == [1] * 300


def test_campaigns_send_with_redis_down_says_so_in_one_line_and_runs_again(tmp_path, dkim_key_file) -> None:
    redis = PrivateRedis(tmp_path / "redis")  # not started yet: nothing listens on its port
    runtime = Runtime(shape_settings(f"sqlite:///{tmp_path / 'send.db'}", tmp_path / "data", "capture",
                                     queue_url=redis.url))
    upgrade(runtime.engine)
    try:
        support.seed_contacts(runtime, 250)
        campaign_id = _draft(runtime)
        env = _env(runtime.settings, dkim_key_file)
        code, out, err, _ = _run(env, campaign_id, wait=False)
        assert code == 1 and "Traceback" not in err, err
        assert err.strip().splitlines() == [err.strip()] and "is unreachable" in err and f":{redis.port}" in err
        assert support.states(runtime, campaign_id) == {}  # nothing planned: the campaign is as it was
        redis.start()
        try:
            code, out, err, _ = _run(env, campaign_id, wait=False)
            assert code == 0, out + err
            queue = Queue(runtime)
            assert queue.pending() == 3  # 250 mails in batches of 100
            queue.huey.flush()  # the jobs are lost (say, Redis restarted empty): the same command hands them over again
            code, out, err, _ = _run(env, campaign_id, wait=False)
            assert code == 0 and queue.pending() == 3, out + err
        finally:
            redis.stop()
    finally:
        runtime.dispose()


def test_send_wait_with_postgresql_gone_mid_campaign_says_so_in_one_line_and_runs_again(tmp_path, dkim_key_file) -> None:
    pg = PrivatePostgres()
    pg.start()
    try:
        engine = make_engine(pg.url)
        upgrade(engine)
        engine.dispose()
        with ArrivalServer() as server:
            runtime = Runtime(shape_settings(pg.url, tmp_path / "data", server.url, queue_url="",
                                             **DEFAULT_RECOVERY))
            try:
                campaign_id, env, first = _a_third_sent(runtime, server, dkim_key_file)
                runtime.engine.dispose()
                pg._as_postgres(pg.bin / "pg_ctl", "-D", pg.dir, "-m", "fast", "-w", "stop")
                out, err = first.communicate(timeout=300)
                assert first.returncode == 1 and "Traceback" not in err, err
                assert err.strip().splitlines() == [err.strip()] and "is unreachable" in err, err
                pg.start()
                code, out, err, took = _run(env, campaign_id)
                flagged, counts = _flagged_and_counts(runtime, server, campaign_id)
                states = support.states(runtime, campaign_id)
            finally:
                runtime.dispose()
    finally:
        pg.stop()
    extra = sum(counts.values()) - RECIPIENTS
    record_figures("send-wait-postgresql-stopped", recipients=RECIPIENTS, second_run_seconds=round(took, 1),
                   missing=RECIPIENTS - len(counts), duplicates=extra, flagged_possible_duplicates=len(flagged))
    assert code == 0, out + err
    assert states == {"sent": RECIPIENTS}
    assert set(counts) == {f"buyer{n}@buyers.example" for n in range(RECIPIENTS)}, "a recipient got nothing"
    assert {rcpt for rcpt, n in counts.items() if n > 1} <= flagged and extra <= THREADS
