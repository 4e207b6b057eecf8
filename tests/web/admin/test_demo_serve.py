"""`sendwell demo --serve` leaves the web app running and prints a working admin login."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sendwell.demo.smtp_server import free_port

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.mark.slow
def test_demo_serve_prints_url_and_login_that_work(tmp_path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDWELL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "sendwell.cli", "demo", "--data-dir", str(tmp_path / "demo"),
                             "--contacts", "300", "--serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        output, deadline = "", time.monotonic() + 240
        while "sign in as" not in output:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, output
            output += line
            assert time.monotonic() < deadline, output
        url = re.search(r"Web admin: (\S+)", output).group(1)
        email, password = re.search(r"sign in as (\S+) with password (\S+)", output).groups()
        assert url == f"http://127.0.0.1:{port}/admin"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(100):  # uvicorn starts right after the line is printed
                try:
                    login = client.get("/admin/login")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
            signed_in = client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})
            assert signed_in.status_code == 303
            dashboard = client.get("/admin/dashboard")
            assert dashboard.status_code == 200 and "Spring LED range" in dashboard.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
