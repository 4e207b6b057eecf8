"""The send gate: a bulk marketing campaign from a domain that is not ready is refused with the fix."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sendwell.campaigns.service import confirm_transactional, create_campaign
from sendwell.content.service import ComplianceError
from sendwell.db.models import DomainCheck, Send
from sendwell.db.session import transaction
from sendwell.deliverability.service import cached_check, reserved_name, skip_reason
from sendwell.flows import schedule_sending, start_sending
from sendwell.runtime import Runtime
from tests.deliverability.zones import domain_settings
from tests.dnsserver import free_port, needs_nsd
from tests.helpers import make_contact

pytestmark = [pytest.mark.slow, needs_nsd]


def runtime_for(tmp_path: Path, db_url: str, dns: str, keys: Any, domain: str, **overrides: Any) -> Runtime:
    return Runtime(domain_settings(tmp_path, dns, domain, keys[0], database_url=db_url,
                                   privacy_url=f"https://{domain}/privacy", **overrides))


def campaign_with_audience(rt: Runtime, n: int = 3, kind: str = "marketing") -> int:
    with transaction(rt.factory) as s:
        for _ in range(n):
            make_contact(s)
        return create_campaign(s, settings=rt.settings, name="Spring", subject="New lamps", kind=kind,
                               html="<p>Hello {{ contact.first_name }}</p>").id


def planned(rt: Runtime, campaign_id: int) -> int:
    with transaction(rt.factory) as s:
        return s.scalar(select(func.count()).select_from(Send).where(Send.campaign_id == campaign_id)) or 0


def test_bulk_campaign_from_an_unready_domain_is_refused_with_the_fix(tmp_path: Path, db_url: str, dns: str,
                                                                    keys: Any) -> None:
    rt = runtime_for(tmp_path, db_url, dns, keys, "nothing.example", bulk_threshold=3)
    try:
        campaign_id = campaign_with_audience(rt, 3)
        with pytest.raises(ComplianceError) as caught, transaction(rt.factory) as s:
            start_sending(s, settings=rt.settings, campaign_id=campaign_id)
        errors = {f.code: f for f in caught.value.report.errors}
        assert {"sender-domain-spf-missing", "sender-domain-dkim-missing", "sender-domain-dmarc-missing",
                "sender-domain-dmarc-alignment"} <= set(errors)
        assert "Publish: nothing.example. TXT \"v=spf1 ip4:192.0.2.10 -all\"" in errors["sender-domain-spf-missing"].message
        assert "[COMPLIANCE #23]" in errors["sender-domain-dmarc-missing"].line()
        assert planned(rt, campaign_id) == 0
        with transaction(rt.factory) as s:  # rolled back with the start: the next attempt checks again
            assert s.scalar(select(func.count()).select_from(DomainCheck)) == 0
        with pytest.raises(ComplianceError), transaction(rt.factory) as s:
            schedule_sending(s, settings=rt.settings, campaign_id=campaign_id,
                             at=datetime.now(timezone.utc) + timedelta(hours=1))
    finally:
        rt.dispose()


def test_below_the_bulk_threshold_it_only_warns(tmp_path: Path, db_url: str, dns: str, keys: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime_for(tmp_path, db_url, dns, keys, "nothing.example", bulk_threshold=4)
    try:
        campaign_id = campaign_with_audience(rt, 3)
        with caplog.at_level(logging.WARNING, "sendwell.deliverability"), transaction(rt.factory) as s:
            start_sending(s, settings=rt.settings, campaign_id=campaign_id)
        assert planned(rt, campaign_id) == 3
        assert "sender-domain-spf-missing" in caplog.text
    finally:
        rt.dispose()


def test_transactional_mail_is_never_refused(tmp_path: Path, db_url: str, dns: str, keys: Any) -> None:
    rt = runtime_for(tmp_path, db_url, dns, keys, "nothing.example", bulk_threshold=0)
    try:
        campaign_id = campaign_with_audience(rt, 2, kind="transactional")
        with transaction(rt.factory) as s:
            confirm_transactional(s, campaign_id=campaign_id, email="admin@bright-lighting.example", role="admin")
        with transaction(rt.factory) as s:
            start_sending(s, settings=rt.settings, campaign_id=campaign_id)
        assert planned(rt, campaign_id) == 2
    finally:
        rt.dispose()


def test_a_ready_domain_sends_and_the_result_is_cached_for_the_ttl(tmp_path: Path, db_url: str, dns: str,
                                                                   keys: Any) -> None:
    rt = runtime_for(tmp_path, db_url, dns, keys, "good.example", bulk_threshold=1)
    try:
        first = campaign_with_audience(rt, 2)
        with transaction(rt.factory) as s:
            start_sending(s, settings=rt.settings, campaign_id=first)
        with transaction(rt.factory) as s:
            row = s.scalars(select(DomainCheck)).one()
            checked_at, report = row.checked_at, row.report
        assert row.domain == "good.example" and not row.blocking and report["ok"]
        # Within the TTL the stored result is used.
        with transaction(rt.factory) as s:
            cached = cached_check(s, rt.settings, now=checked_at + timedelta(seconds=3599))
        assert cached.checked_at == checked_at and cached.ok
        # Past it (TTL 0: every start), the check runs again.
        later = datetime.now(timezone.utc) + timedelta(seconds=5)
        with transaction(rt.factory) as s:
            again = cached_check(s, rt.settings, now=later, max_age=0)
        assert again.checked_at == later
        with transaction(rt.factory) as s:
            assert s.scalars(select(DomainCheck)).one().checked_at == later
    finally:
        rt.dispose()


def test_dns_outage_warns_and_never_blocks(tmp_path: Path, db_url: str, keys: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime_for(tmp_path, db_url, f"127.0.0.1:{free_port()}", keys, "nothing.example", bulk_threshold=1,
                     dns_timeout=1.0)
    try:
        campaign_id = campaign_with_audience(rt, 2)
        with caplog.at_level(logging.WARNING, "sendwell.deliverability"), transaction(rt.factory) as s:
            start_sending(s, settings=rt.settings, campaign_id=campaign_id)
        assert planned(rt, campaign_id) == 2
        assert "sender-domain-dns-unreachable" in caplog.text
        with transaction(rt.factory) as s:
            assert s.scalar(select(func.count()).select_from(DomainCheck)) == 0  # an incomplete check is not kept
    finally:
        rt.dispose()


def test_capture_mode_and_reserved_names_in_public_dns_are_skipped(tmp_path: Path, keys: Any) -> None:
    settings = domain_settings(tmp_path, "", "bright-lighting.example", keys[0])
    assert reserved_name("bright-lighting.example") and reserved_name("mail.example.com")
    assert not reserved_name("bright-lighting.com")
    assert "reserved name" in skip_reason(settings)
    assert "capture" in skip_reason(settings.replace(smtp_url="capture"))
    # With a nameserver of its own the installation may serve such a name: it is checked.
    assert skip_reason(settings.replace(dns_nameservers="127.0.0.1:5353")) == ""
    assert skip_reason(settings.replace(from_="Sales <sales@bright-lighting.com>")) == ""
