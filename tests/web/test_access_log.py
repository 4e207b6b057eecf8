"""Recipient tokens never reach the access log of a real `sendwell serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_PEPPER, TEST_SECRET

TOKEN = "eyJjIjo0MiwiZSI6ImFubmFAbGljaHQuZXhhbXBsZSJ9.Zm9yZ2VkLXNpZ25hdHVyZQ"
PATHS = [("GET", f"/u/{TOKEN}"), ("POST", f"/u/{TOKEN}"), ("POST", f"/u/{TOKEN}/reason?lang=de"),
         ("GET", f"/p/{TOKEN}"), ("GET", f"/k/{TOKEN}"), ("GET", f"/c/{TOKEN}"), ("GET", f"/r/{TOKEN}"),
         ("GET", f"/o/{TOKEN}.gif")]


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_access_log_shows_recipient_paths_without_their_tokens(tmp_path: Path, db_url: str,
                                                                    unused_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")}
    # db_url is migrated already and the keys are given: no `sendwell init` needed.
    env.update(SENDWELL_DATA_DIR=str(tmp_path / "data"), SENDWELL_DATABASE_URL=db_url, SENDWELL_SMTP_URL="capture",
               SENDWELL_BASE_URL=f"http://127.0.0.1:{unused_port}", SENDWELL_SECRET_KEY=TEST_SECRET,
               SENDWELL_HASH_PEPPER=TEST_PEPPER)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sendwell.cli", "serve", "--port", str(unused_port),
                                 "--workers", "0", "--no-outbox"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{unused_port}"
    try:
        deadline = time.monotonic() + 30
        # uvicorn says so once it listens (a start-up guard, not a performance check).
        while "Uvicorn running on" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert httpx.get(f"{base}/healthz").status_code == 200
        for method, path in PATHS:
            httpx.request(method, base + path, data={"reason": "other"} if method == "POST" else None)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "/healthz" in text and '"GET /r/… HTTP/1.1"' in text and "/u/…/reason?lang=de" in text, text
    assert "/o/…" in text and "/p/…" in text and "/k/…" in text and "/c/…" in text
    assert TOKEN not in text and TOKEN[:20] not in text
