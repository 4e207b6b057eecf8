"""The embedded shape end to end: `sendwell serve` delivers a queued campaign with its own consumer."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import httpx
import pytest

from sendwell.demo.smtp_server import CaptureSMTPServer, free_port
from sendwell.runtime import Runtime
from sendwell.worker.queue import Queue
from tests.conftest import make_settings
from tests.worker import support

pytestmark = pytest.mark.slow


def test_serve_delivers_queued_mail_and_stops_gracefully_on_sigterm(sqlite_template, tmp_path) -> None:
    db = tmp_path / "sendwell.db"
    shutil.copyfile(sqlite_template, db)
    with CaptureSMTPServer() as server:
        settings = make_settings(tmp_path / "data", database_url=f"sqlite:///{db}", smtp_url=server.url,
                                 recovery_interval=0.5, smtp_concurrency=2, batch_size=10)
        runtime = Runtime(settings)
        support.seed_contacts(runtime, 40)
        campaign_id = support.start_campaign(runtime, Queue(runtime))
        port = free_port()
        env = support.worker_env(settings)
        proc = subprocess.Popen([support.SENDWELL, "serve", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"))
        try:
            support.wait_for(lambda: support.campaign_finished(runtime, campaign_id), "the campaign", procs=[proc])
            # The consumer may finish 40 mails before a loaded machine has the web app up.
            support.wait_for(lambda: _answers(port), "serve to answer", procs=[proc])
        finally:
            code = support.stop(proc, signal.SIGTERM)
        runtime.dispose()
    assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]
    assert sorted(support.receipts(server).values()) == [1] * 40
    # Two sessions against a server on loopback: serve says one would send more.
    assert "serve: the SMTP server is on this machine" in (tmp_path / "serve.log").read_text()


def test_serve_stops_on_sigterm_even_before_the_web_app_is_up(sqlite_template, tmp_path) -> None:
    # A SIGTERM in serve's first moments (the embedded consumer already started, uvicorn not
    # yet serving) used to reach huey's handler, which only its own run loop reads: serve
    # then ran on, unstoppable by SIGTERM.
    db = tmp_path / "sendwell.db"
    shutil.copyfile(sqlite_template, db)
    settings = make_settings(tmp_path / "data", database_url=f"sqlite:///{db}", smtp_url="capture")
    env = support.worker_env(settings)
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([support.SENDWELL, "serve", "--port", str(free_port())], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    try:
        # Right after the consumer's start-up line, before uvicorn's "Started server process".
        support.wait_for(lambda: "embedded queue worker started" in log.read_text(), "the consumer to start",
                         procs=[proc])
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log.read_text()[-2000:]


def test_split_shape_the_worker_sends_the_thank_you_mails_serve_no_outbox_leaves(sqlite_template, tmp_path) -> None:
    # README "Scale-out", one machine: `serve --workers 0 --no-outbox` only answers requests;
    # a `sendwell worker` beside it drains the outbox (thank-you mails) by polling.
    from sqlalchemy import select

    from sendwell.db.models import Contact, OutboxMessage
    from sendwell.db.session import transaction
    from sendwell.optout.tokens import SALT_UNSUBSCRIBE, TokenData, make_token

    db = tmp_path / "sendwell.db"
    shutil.copyfile(sqlite_template, db)
    with CaptureSMTPServer() as server:
        settings = make_settings(tmp_path / "data", database_url=f"sqlite:///{db}", smtp_url=server.url)
        runtime = Runtime(settings)
        support.seed_contacts(runtime, 3)
        port = free_port()
        env = support.worker_env(settings, SENDWELL_OUTBOX_POLL_SECONDS="0.2")
        serve = subprocess.Popen([support.SENDWELL, "serve", "--port", str(port), "--workers", "0", "--no-outbox"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"))
        procs = [serve]

        def thank_yous() -> list[str]:
            with transaction(runtime.factory) as s:
                return list(s.scalars(select(OutboxMessage.status).where(OutboxMessage.kind == "thank_you")))

        try:
            support.wait_for(lambda: _answers(port), "serve to answer", procs=procs)
            with transaction(runtime.factory) as s:
                ids = list(s.scalars(select(Contact.id).order_by(Contact.id)))[:2]
            for contact_id in ids:
                tok = make_token(settings.secret_keys, SALT_UNSUBSCRIBE, TokenData(contact_id, None, None))
                r = httpx.post(f"http://127.0.0.1:{port}/u/{tok}", data={"List-Unsubscribe": "One-Click"}, timeout=30)
                assert r.status_code == 200
            # serve's own dispatcher would have sent them after its 0.5 s debounce; it has none.
            time.sleep(2.0)
            assert serve.poll() is None and server.messages == [] and thank_yous() == ["pending", "pending"]
            procs.append(support.start_worker(env, tmp_path / "worker.log"))
            support.wait_for(lambda: thank_yous() == ["done", "done"], "the worker to send the thank-you mails",
                             procs=procs)
        finally:
            codes = [support.stop(p, signal.SIGTERM) for p in procs]
        runtime.dispose()
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["buyer0@buyers.example", "buyer1@buyers.example"]
    assert codes == [0, 0], (tmp_path / "worker.log").read_text()[-2000:]


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
