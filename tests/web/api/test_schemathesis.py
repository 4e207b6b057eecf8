"""schemathesis against the served OpenAPI over real HTTP: no 5xx, no schema violations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sendwell.access.service import create_token
from sendwell.db.session import transaction
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")
# Small and bounded so the suite stays fast; raise SENDWELL_SCHEMATHESIS_EXAMPLES for a deeper run.
MAX_EXAMPLES = os.environ.get("SENDWELL_SCHEMATHESIS_EXAMPLES", "8")


def test_schemathesis_finds_no_server_error_and_no_schema_violation(runtime, unused_port, tmp_path: Path) -> None:
    with transaction(runtime.factory) as session:
        secret = create_token(session, name="schemathesis", scopes=["admin"]).secret
        # Something for the generated ids to hit now and then.
        for _ in range(3):
            make_contact(session)
    st = Path(sys.executable).with_name("st")
    with BackgroundServer(create_app(runtime), unused_port) as server:
        result = subprocess.run(
            [str(st), "run", f"{server.url}/api/v1/openapi.json",
             "--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--phases", os.environ.get("SENDWELL_SCHEMATHESIS_PHASES", "examples,fuzzing"),
             "--header", f"Authorization: Bearer {secret}", "--workers", "1", "--seed", "12",
             "--generation-database", "none", "--no-color", "--request-timeout", "30",
             "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=900, cwd=tmp_path,
        )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"schemathesis found problems (exit {result.returncode}):\n{output[-20000:]}")
    assert "passed" in output.lower()
