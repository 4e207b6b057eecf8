"""The sender-domain gate for step mails, against the real DNS server (NSD) the domain-check tests use."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sendwell.access.service import create_token
from sendwell.db.models import DomainCheck, Send
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.sequences.report import enrollments, step_runs
from sendwell.sequences.service import advance, create_sequence, sender_domain_findings
from sendwell.web.app import create_app
from tests.deliverability.conftest import dns, keys
from tests.deliverability.test_gate import runtime_for
from tests.dnsserver import dns_zones, free_port, needs_nsd
from tests.helpers import make_contact

with warnings.catch_warnings():  # as tests/web/api/conftest.py: starlette's notice about httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["dns", "dns_zones", "keys"]  # fixtures pytest finds by name

pytestmark = [pytest.mark.slow, needs_nsd]

WELCOME = {
    "name": "Welcome",
    "trigger": {"kind": "tag_added", "tag": "fair-2026"},
    "steps": [{"id": "thanks", "kind": "mail", "subject": "Thank you for visiting",
               "html": "<p>Dear {{ first_name }}, thank you for visiting our stand.</p>"},
              {"id": "mark", "kind": "set", "tag": "welcomed"}],
}


def _start(rt: Runtime) -> tuple[int, list[dict[str, Any]]]:
    """Create the sequence and tag a contact; returns the sequence id and the findings creating it reports."""
    with transaction(rt.factory) as s:
        sequence_id = create_sequence(s, settings=rt.settings, data=WELCOME).id
        findings = sender_domain_findings(s, settings=rt.settings)
    with transaction(rt.factory) as s:
        make_contact(s, tags=["fair-2026"], stage="customer")
    return sequence_id, findings


def _advance(rt: Runtime) -> dict[str, Any]:
    with transaction(rt.factory) as s:
        return advance(s, settings=rt.settings)


def _sends(rt: Runtime) -> int:
    with transaction(rt.factory) as s:
        return s.scalar(select(func.count()).select_from(Send)) or 0


def test_mail_steps_wait_while_the_domain_is_not_ready_and_go_once_it_is(tmp_path: Path, db_url: str, dns: str,
                                                                         keys: Any) -> None:
    rt = runtime_for(tmp_path, db_url, dns, keys, "nothing.example")
    try:
        sequence_id, findings = _start(rt)
        by_code = {f["code"]: f for f in findings}
        assert {"sender-domain-spf-missing", "sender-domain-dkim-missing", "sender-domain-dmarc-missing"} <= set(by_code)
        assert by_code["sender-domain-spf-missing"]["severity"] == "blocking"
        assert 'Publish: nothing.example. TXT "v=spf1 ip4:192.0.2.10 -all"' in by_code["sender-domain-spf-missing"][
            "message"]

        for _ in range(2):  # held, not skipped: the contact waits at the mail step on every advance
            report = _advance(rt)
            assert report["batches"] == [] and _sends(rt) == 0
            with transaction(rt.factory) as s:
                (waiting,) = enrollments(s, sequence_id=sequence_id)
                assert (waiting.state, waiting.step_id, waiting.wait_reason) == ("active", "thanks", "sender_domain")
                assert step_runs(s, sequence_id=sequence_id) == []

        # The domain is fixed (here: the same installation sending from a ready domain): the mail goes.
        rt.replace_settings(runtime_for(tmp_path, db_url, dns, keys, "good.example").settings)
        with transaction(rt.factory) as s:
            assert [f for f in sender_domain_findings(s, settings=rt.settings) if f["severity"] == "blocking"] == []
        report = _advance(rt)
        assert len(report["batches"]) == 1 and _sends(rt) == 1
        with transaction(rt.factory) as s:
            (done,) = enrollments(s, sequence_id=sequence_id)
            assert (done.state, done.wait_reason) == ("done", "")
            assert [r.step_id for r in step_runs(s, sequence_id=sequence_id)] == ["thanks", "mark"]
    finally:
        rt.dispose()


def test_dns_outage_only_warns(tmp_path: Path, db_url: str, keys: Any, caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime_for(tmp_path, db_url, f"127.0.0.1:{free_port()}", keys, "nothing.example", dns_timeout=1.0)
    try:
        _, findings = _start(rt)
        assert [(f["code"], f["severity"]) for f in findings] == [("sender-domain-dns-unreachable", "warning")]
        with caplog.at_level(logging.WARNING, "sendwell.sequences"):
            report = _advance(rt)
        assert len(report["batches"]) == 1 and _sends(rt) == 1
        assert "sender-domain-dns-unreachable" in caplog.text
        with transaction(rt.factory) as s:
            assert s.scalar(select(func.count()).select_from(DomainCheck)) == 0  # an incomplete check is not kept
    finally:
        rt.dispose()


def test_capture_mode_skips_the_check(tmp_path: Path, db_url: str, dns: str, keys: Any) -> None:
    rt = runtime_for(tmp_path, db_url, dns, keys, "nothing.example", smtp_url="capture")
    try:
        _, findings = _start(rt)
        assert findings == []
        assert len(_advance(rt)["batches"]) == 1 and _sends(rt) == 1
        with transaction(rt.factory) as s:
            assert s.scalar(select(func.count()).select_from(DomainCheck)) == 0  # nothing was asked
    finally:
        rt.dispose()


def test_the_api_reports_the_findings_on_create_and_on_resume(tmp_path: Path, db_url: str, dns: str,
                                                              keys: Any) -> None:
    rt = runtime_for(tmp_path, db_url, dns, keys, "nothing.example")
    try:
        with transaction(rt.factory) as s:
            token = {"Authorization": f"Bearer {create_token(s, name='crm', scopes=['sequences:write']).secret}"}
        with TestClient(create_app(rt, outbox=False)) as client:
            created = client.post("/api/v1/sequences", json=WELCOME, headers=token)
            assert created.status_code == 201, created.text
            blocking = {f["code"] for f in created.json()["findings"] if f["severity"] == "blocking"}
            assert "sender-domain-spf-missing" in blocking
            sequence_id = created.json()["id"]
            paused = client.post(f"/api/v1/sequences/{sequence_id}/pause", headers=token).json()
            assert (paused["status"], paused["findings"]) == ("paused", [])
            resumed = client.post(f"/api/v1/sequences/{sequence_id}/resume", headers=token).json()
            assert resumed["status"] == "active"
            assert any("Publish:" in f["message"] for f in resumed["findings"] if f["severity"] == "blocking")
    finally:
        rt.dispose()
