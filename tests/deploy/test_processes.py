"""The containers' commands and health checks as plain processes: migrate, serve, workers, listener.

The commands come from deploy/compose.yaml (the units run the same ones, tests/deploy/test_files.py),
so this test breaks when the files drift from what the product accepts.
"""

from __future__ import annotations

import email
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, text

from sendwell.db.session import make_engine
from sendwell.demo.smtp_server import CaptureSMTPServer, free_port
from sendwell.suppression.service import hash_email
from tests.conftest import PG_ADMIN_URL, TEST_PEPPER, TEST_SECRET
from tests.deploy import files
from tests.helpers import redis_or_skip
from tests.worker import support

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("SENDWELL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BUYERS = 12


@pytest.fixture
def empty_pg_database(tmp_path):
    """A new, empty PostgreSQL database: the migrate service must create the schema itself."""
    name = "sendwell_deploy_" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_queue():
    client = redis_or_skip(REDIS_URL)
    name = support.unique_name()
    yield name
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)
    client.close()


def deploy_env(tmp_path: Path, database_url: str, queue_name: str, smtp_url: str, web_port: int) -> dict[str, str]:
    """deploy/sendwell.env.example with this machine's addresses and freshly made secrets filled in."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dkim = tmp_path / "dkim.pem"
    dkim.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")}
    env.update(files.env_example())
    env.update(
        SENDWELL_DATA_DIR=str(tmp_path / "data"), SENDWELL_DATABASE_URL=database_url, SENDWELL_QUEUE_URL=REDIS_URL,
        SENDWELL_QUEUE_NAME=queue_name, SENDWELL_BASE_URL=f"http://127.0.0.1:{web_port}",
        SENDWELL_TRUSTED_PROXIES="127.0.0.1", SENDWELL_SMTP_URL=smtp_url, SENDWELL_INBOUND_HOST="127.0.0.1",
        SENDWELL_SECRET_KEY=TEST_SECRET, SENDWELL_HASH_PEPPER=TEST_PEPPER, SENDWELL_DKIM_KEY_FILE=str(dkim),
    )
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run([support.SENDWELL, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, f"sendwell {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def healthcheck(service: dict, ports: dict[int, int]) -> list[str]:
    """A compose healthcheck's command for this machine (the image's `python` is this interpreter)."""
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] in ("python", "sendwell")
    return [sys.executable if test[1] == "python" else support.SENDWELL, *files.local(test[2:], ports)]


def probe(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_compose_commands_migrate_serve_work_and_listen_and_one_click_suppresses(
        empty_pg_database, redis_queue, tmp_path) -> None:
    services = files.compose()["services"]
    web_port, inbound_port = free_port(), free_port()
    ports = {8025: web_port, 2525: inbound_port}
    with CaptureSMTPServer() as smtp:
        env = deploy_env(tmp_path, empty_pg_database, redis_queue, smtp.url, web_port)
        env["SENDWELL_INBOUND_PORT"] = str(inbound_port)
        assert "migrated" in run(services["migrate"]["command"], env, tmp_path)  # one-shot, before the others
        assert "already at" in run(services["migrate"]["command"], env, tmp_path)  # safe again (an upgrade)

        log = (tmp_path / "processes.log").open("ab")  # outlives the processes; closed below
        roles = ["web", "listener"] + ["worker"] * services["worker"]["deploy"]["replicas"]
        procs = [subprocess.Popen([support.SENDWELL, *files.local(services[role]["command"], ports)], env=env,
                                  cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT) for role in roles]
        try:
            for role in ("web", "listener", "worker"):
                check = healthcheck(services[role], ports)
                support.wait_for(lambda c=check: probe(c, env).returncode == 0, f"the {role} healthcheck",
                                 procs=procs, describe=lambda c=check: probe(c, env).stderr[-1000:])

            buyers = tmp_path / "buyers.csv"
            buyers.write_text("email,first_name,company,country\n" + "".join(
                f"buyer{n}@buyers.example,Anna{n},Importer {n} GmbH,DE\n" for n in range(BUYERS)))
            run(["contacts", "import", str(buyers), "--consent", "express", "--consent-source", "trade_fair",
                 "--wording", "Send me your catalogue", "--source", "Canton Fair"], env, tmp_path)
            html = tmp_path / "launch.html"
            html.write_text("<p>Dear {{ first_name }}, our new panels are in stock.</p>")
            campaign_id = run(["campaigns", "create", "--name", "Launch", "--subject", "New panels for {{ company }}",
                               "--html", str(html)], env, tmp_path).split()[-1]
            run(["campaigns", "send", campaign_id], env, tmp_path)  # queued in Redis; the workers deliver
            support.wait_for(lambda: len(smtp.messages) >= BUYERS, "the workers to send the campaign", procs=procs)

            mail = email.message_from_bytes(smtp.messages[0].data)
            recipient = smtp.messages[0].rcpt_tos[0]
            assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            link = next(part.strip(" <>") for part in mail["List-Unsubscribe"].split(",") if "http" in part)
            assert link.startswith(env["SENDWELL_BASE_URL"] + "/u/")
            # The mailbox provider's one-click POST, straight to the web process.
            response = httpx.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=30)
            assert response.status_code == 200, response.text[:500]
        finally:
            codes = [support.stop(p, signal.SIGTERM) for p in procs]
            log.close()
    logs = (tmp_path / "processes.log").read_text(errors="replace")
    assert codes == [0] * len(procs), logs[-3000:]
    campaign = [m for m in smtp.messages if "New panels" in email.message_from_bytes(m.data)["Subject"]]
    assert sorted(m.rcpt_tos[0] for m in campaign) == sorted(f"buyer{n}@buyers.example" for n in range(BUYERS))
    # Anything else is a follow-up to the person who just opted out (the thank-you mail, if configured).
    assert {m.rcpt_tos[0] for m in smtp.messages if m not in campaign} <= {recipient}
    engine = make_engine(empty_pg_database)
    with engine.connect() as conn:
        suppressed = set(conn.execute(text("SELECT email_hash FROM suppressions WHERE reason = 'unsubscribe'")).scalars())
    engine.dispose()
    assert suppressed == {hash_email(TEST_PEPPER.encode(), recipient)}
