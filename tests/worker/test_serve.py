"""The embedded shape end to end: `sendwell serve` delivers a queued campaign with its own consumer."""

from __future__ import annotations

import shutil
import signal
import subprocess

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
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        finally:
            code = support.stop(proc, signal.SIGTERM)
        runtime.dispose()
    assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]
    assert sorted(support.receipts(server).values()) == [1] * 40
