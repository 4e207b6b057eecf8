"""Fixtures for the hygiene tests: a runtime that delivers to a real loopback SMTP server."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sendwell.db.models import Consent, Contact
from sendwell.db.session import transaction
from sendwell.delivery.dkim import generate_private_key
from sendwell.delivery.runner import run_campaign
from sendwell.demo.smtp_server import CaptureSMTPServer
from sendwell.flows import run_hygiene
from sendwell.hygiene.service import HygieneResult
from sendwell.runtime import Runtime
from tests.conftest import make_settings
from tests.helpers import make_contact


@pytest.fixture(scope="session")
def dkim_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / "sendwell.bright-lighting.example.pem"
    path.write_bytes(generate_private_key("rsa", 2048))
    return path


def hygiene_settings(tmp_path: Path, db_url: str, dkim_key_file: Path, **overrides: Any) -> Any:
    """Compliant settings (the send path's lint gate passes) delivering where `overrides` say."""
    return make_settings(tmp_path / "data", database_url=db_url, dkim_domain="bright-lighting.example",
                         dkim_key_file=str(dkim_key_file), privacy_url="https://bright-lighting.example/privacy",
                         click_tracking=False, **overrides)


@pytest.fixture
def mail_runtime(tmp_path: Path, db_url: str, smtp_server: CaptureSMTPServer, dkim_key_file: Path) -> Iterator[Runtime]:
    rt = Runtime(hygiene_settings(tmp_path, db_url, dkim_key_file, smtp_url=smtp_server.url))
    yield rt
    rt.dispose()


def old_contact(session: Any, *, at: datetime, **fields: Any) -> Contact:
    """A contact created, and consenting, at `at` (a simulated past)."""
    contact = make_contact(session, created_at=at, **fields)
    for consent in session.scalars(select(Consent).where(Consent.contact_id == contact.id)):
        consent.obtained_at = at
    session.flush()
    return contact


def hygiene_pass(runtime: Runtime, at: datetime, *, deliver: bool = True, dry_run: bool = False) -> HygieneResult:
    """One pass as of `at`, committed; then its reconfirmation mails are delivered over SMTP."""
    with transaction(runtime.factory) as session:
        result = run_hygiene(session, settings=runtime.settings, now=at, dry_run=dry_run)
    if deliver:
        deliver_all(runtime, [c for c, _ in result.batches])
    return result


def cli_env(settings: Any) -> dict[str, str]:
    """The SENDWELL_* environment a `sendwell` command needs to act on the test's database as `settings`."""
    names = ("data_dir", "database_url", "smtp_url", "secret_key", "hash_pepper", "from_", "company_name",
             "postal_address", "contact_email", "base_url", "dkim_domain", "dkim_key_file", "privacy_url",
             "stage_caps", "click_tracking")
    return {f"SENDWELL_{n.rstrip('_').upper()}": str(getattr(settings, n)).lower() if isinstance(
        getattr(settings, n), bool) else str(getattr(settings, n)) for n in names}


def cli_pass(runtime: Runtime, at: datetime) -> dict[str, Any]:
    """`sendwell hygiene run --as-of AT --wait --json`: one pass, its mails delivered; the report."""
    import json

    from click.testing import CliRunner

    from sendwell.cli.main import cli, register_commands

    register_commands()
    result = CliRunner().invoke(cli, ["hygiene", "run", "--as-of", at.isoformat(), "--wait", "--json"],
                                env=cli_env(runtime.settings))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def deliver_all(runtime: Runtime, campaign_ids: list[int]) -> None:
    deliverer = runtime.make_deliverer()
    try:
        for campaign_id in campaign_ids:
            run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
    finally:
        deliverer.transport.close()


_KEEP = re.compile(r"https?://[^\s\"'<>]+/k/[A-Za-z0-9_.\-]+")


def keep_url(raw: bytes) -> str:
    """The "keep me subscribed" link of a received reconfirmation mail (from its text part)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    match = _KEEP.search(body.get_content())
    assert match, body.get_content()
    return match.group(0)
