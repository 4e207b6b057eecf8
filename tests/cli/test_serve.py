"""`sendwell serve` as a real process: its embedded worker delivers queued mail; it answers one-click POSTs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import one_click_url, parse_strict

CSV = "email,country\nanna@licht.example,DE\njean@lumiere.example,FR\n"


def sendwell(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "sendwell.cli", *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def served(tmp_path: Path, db_url: str, smtp_server, unused_port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")}
    env.update(SENDWELL_DATA_DIR=str(tmp_path / "data"), SENDWELL_DATABASE_URL=db_url,
               SENDWELL_SMTP_URL=smtp_server.url, SENDWELL_BASE_URL=f"http://127.0.0.1:{unused_port}")
    sendwell(env, "init")
    proc = subprocess.Popen([sys.executable, "-m", "sendwell.cli", "serve", "--port", str(unused_port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{unused_port}"
    deadline = time.monotonic() + 30
    while True:  # wait for the server to listen (a start-up guard, not a performance check)
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"sendwell serve did not start: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.1)
    yield env, base
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.both_backends  # serve on PostgreSQL: the thread-pool one-click path (SQLite's is inline)
def test_serve_delivers_queued_mail_and_takes_one_click(tmp_path, served, smtp_server) -> None:
    env, base = served
    (tmp_path / "c.csv").write_text(CSV)
    sendwell(env, "contacts", "import", str(tmp_path / "c.csv"), "--consent", "express")
    (tmp_path / "m.html").write_text("<p>Hello</p>")
    cid = json.loads(sendwell(env, "campaigns", "create", "--name", "n", "--subject", "s", "--html",
                              str(tmp_path / "m.html"), "--json").stdout)["id"]
    sendwell(env, "campaigns", "send", str(cid))  # no --wait: the queue and serve's worker deliver
    deadline = time.monotonic() + 60
    while len(smtp_server.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["anna@licht.example", "jean@lumiere.example"]
    url = one_click_url(parse_strict(smtp_server.messages[0].data))
    assert url.startswith(base)
    response = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    assert response.status_code == 200
    status = json.loads(sendwell(env, "campaigns", "status", str(cid), "--json").stdout)
    assert status["states"]["sent"] == 2
