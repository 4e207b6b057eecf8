"""SENDWELL_LOG_FORMAT=json: `sendwell serve` and `sendwell worker` log one JSON object per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_PEPPER, TEST_SECRET

TOKEN = "eyJjIjo0MiwiZSI6ImFubmFAbGljaHQuZXhhbXBsZSJ9.Zm9yZ2VkLXNpZ25hdHVyZQ"


def start(tmp_path: Path, db_url: str, *args: str) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDWELL_", "PROMETHEUS_"))}
    env.update(SENDWELL_DATA_DIR=str(tmp_path / "data"), SENDWELL_DATABASE_URL=db_url, SENDWELL_SMTP_URL="capture",
               SENDWELL_SECRET_KEY=TEST_SECRET, SENDWELL_HASH_PEPPER=TEST_PEPPER, SENDWELL_LOG_FORMAT="json")
    log = tmp_path / f"{args[0]}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sendwell.cli", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    return proc, log


def wait_for(proc: subprocess.Popen, log: Path, needle: str) -> None:
    deadline = time.monotonic() + 30  # a start-up guard, not a performance check
    while needle not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def json_lines(log: Path) -> list[dict]:
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_serve_logs_json_lines_with_tokens_still_redacted(tmp_path: Path, db_url: str, unused_port: int) -> None:
    proc, log = start(tmp_path, db_url, "serve", "--port", str(unused_port), "--workers", "0", "--no-outbox")
    try:
        wait_for(proc, log, "Uvicorn running on")
        httpx.get(f"http://127.0.0.1:{unused_port}/u/{TOKEN}")
        wait_for(proc, log, "/u/")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    entries = json_lines(log)
    # Every line uvicorn wrote is JSON (click's own start-up notes are the only other lines).
    assert entries and all(not line.startswith("INFO") for line in text.splitlines()), text
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert access and "/u/…" in access[0]["message"] and access[0]["level"] == "INFO"
    assert TOKEN not in text and TOKEN[:20] not in text


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_worker_logs_json_lines(tmp_path: Path, db_url: str) -> None:
    proc, log = start(tmp_path, db_url, "worker", "--threads", "1")
    try:
        wait_for(proc, log, '"logger"')
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    entries = json_lines(log)
    assert entries, log.read_text()
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["logger"].startswith("huey") for e in entries), entries
