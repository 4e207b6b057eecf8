"""/healthz is liveness only (with the key fingerprints); /readyz and `sendwell health` check the
database, the queue and the keys (set, readable, and the installation's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from sendwell.cli.main import cli, register_commands
from sendwell.keys import local_fingerprints, record_fingerprints
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from tests.conftest import TEST_PEPPER, TEST_SECRET, make_settings

register_commands()


def probe(settings):
    """(/readyz, /healthz) of a web app over these settings."""
    runtime = Runtime(settings)
    try:
        client = TestClient(create_app(runtime, outbox=False))
        return client.get("/readyz"), client.get("/healthz")
    finally:
        runtime.dispose()


def test_readyz_answers_200_with_each_check(runtime: Runtime) -> None:
    with TestClient(create_app(runtime, outbox=False)) as client:
        ready = client.get("/readyz")
        live = client.get("/healthz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "queue": "ok", "keys": "ok"}
    assert live.status_code == 200 and live.json() == {"status": "ok",
                                                       "fingerprints": local_fingerprints(runtime.settings)}


def test_healthz_reports_the_three_fingerprints_never_the_keys(runtime: Runtime, tmp_path: Path) -> None:
    from sendwell.delivery.dkim import generate_private_key

    key = tmp_path / "dkim.pem"
    key.write_bytes(generate_private_key())
    runtime.replace_settings(runtime.settings.replace(dkim_domain="bright-lighting.example", dkim_key_file=str(key)))
    live = TestClient(create_app(runtime, outbox=False)).get("/healthz")
    body = live.json()["fingerprints"]
    assert set(body) == {"secret_key", "hash_pepper", "dkim"}
    assert body == local_fingerprints(runtime.settings)
    assert TEST_SECRET not in live.text and TEST_PEPPER not in live.text and "PRIVATE" not in live.text


def test_other_keys_than_the_installations_fail_readyz_but_not_healthz(runtime: Runtime) -> None:
    record_fingerprints(runtime.engine, runtime.settings)
    runtime.replace_settings(runtime.settings.replace(secret_key="another-machines-secret-key-0123456789abcdef"))
    client = TestClient(create_app(runtime, outbox=False))
    ready, live = client.get("/readyz"), client.get("/healthz")
    assert ready.status_code == 503 and ready.json()["failed"] == ["keys"]
    assert "secret key" in ready.json()["checks"]["keys"] and "installation" in ready.json()["checks"]["keys"]
    assert live.status_code == 200
    assert live.json()["fingerprints"]["secret_key"] == local_fingerprints(runtime.settings)["secret_key"]


def test_readyz_names_the_queue_when_redis_is_unreachable(settings, unused_port: int) -> None:
    ready, live = probe(settings.replace(queue_url=f"redis://127.0.0.1:{unused_port}/0"))
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["queue"]
    assert "Connection" in ready.json()["checks"]["queue"]
    # Liveness does no I/O: a Redis outage must not get the web process restarted.
    assert live.status_code == 200


def test_readyz_names_the_database_when_it_is_unreachable(tmp_path: Path, unused_port: int) -> None:
    settings = make_settings(tmp_path / "data", database_url=f"postgresql://sendwell@127.0.0.1:{unused_port}/sendwell")
    ready, live = probe(settings)
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["database"]
    assert live.status_code == 200


def test_readyz_names_missing_keys_and_an_unreadable_dkim_key(settings) -> None:
    ready, _ = probe(settings.replace(hash_pepper="", dkim_domain="example.com", dkim_key_file="/nonexistent/dkim.pem"))
    assert ready.status_code == 503 and ready.json()["failed"] == ["keys"]
    assert "SENDWELL_HASH_PEPPER" in ready.json()["checks"]["keys"]
    assert "/nonexistent/dkim.pem" in ready.json()["checks"]["keys"]


def _env(settings, **extra: str) -> dict[str, str]:
    return {"SENDWELL_DATA_DIR": str(settings.data_dir), "SENDWELL_DATABASE_URL": settings.effective_database_url,
            "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER, "SENDWELL_QUEUE_URL": "",
            **extra}


def test_health_command_exits_0_when_ready(settings) -> None:
    result = CliRunner().invoke(cli, ["health", "--json"], env=_env(settings))
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["checks"] == {"database": "ok", "queue": "ok", "keys": "ok"}
    assert answer["fingerprints"] == local_fingerprints(settings.replace(secret_key=TEST_SECRET, hash_pepper=TEST_PEPPER))
    human = CliRunner().invoke(cli, ["health"], env=_env(settings))
    assert human.exit_code == 0 and answer["fingerprints"]["secret_key"] in human.output
    assert TEST_SECRET not in human.output


def test_health_command_exits_1_with_a_one_line_reason(settings, unused_port: int) -> None:
    """As a container HEALTHCHECK runs it: a real process, its exit code and one line on stderr."""
    env = {**os.environ, **_env(settings, SENDWELL_QUEUE_URL=f"redis://127.0.0.1:{unused_port}/0")}
    proc = subprocess.run([str(Path(sys.executable).parent / "sendwell"), "health"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: not ready: queue:"), proc.stderr


@pytest.mark.parametrize("missing", ["SENDWELL_SECRET_KEY", "SENDWELL_HASH_PEPPER"])
def test_health_command_names_a_missing_key(settings, missing: str) -> None:
    env = _env(settings)
    env[missing] = None  # type: ignore[assignment]
    result = CliRunner().invoke(cli, ["health"], env=env)
    assert result.exit_code == 1
    assert "keys:" in result.output and missing in result.output
