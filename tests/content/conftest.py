"""Settings with a real DKIM key, sample recipients, and a one-call render for content tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sendwell.content.footer import RecipientFacts
from sendwell.content.render import CompiledCampaign, Links, Rendered
from sendwell.delivery.dkim import generate_private_key
from tests.conftest import make_settings

LINKS = Links(unsubscribe="https://mail.bright-lighting.example/u/TOKEN-1",
              preferences="https://mail.bright-lighting.example/p/TOKEN-1")


@pytest.fixture(scope="session")
def dkim_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / "sendwell.bright-lighting.example.pem"
    path.write_bytes(generate_private_key("rsa", 2048))
    return path


@pytest.fixture
def content_settings(tmp_path: Path, dkim_key_file: Path):
    """Complete, compliant settings: identity, address, contact, privacy notice, aligned DKIM."""
    return make_settings(
        tmp_path / "data", dkim_domain="bright-lighting.example", dkim_key_file=str(dkim_key_file),
        privacy_url="https://bright-lighting.example/privacy", contact_phone="+86 574 8888 6666",
        website="https://bright-lighting.example",
    )


def recipient(**fields: Any) -> SimpleNamespace:
    """A contact-shaped object (plain attributes, no database)."""
    values: dict[str, Any] = dict(
        id=1, email="anna@licht.example", first_name="Anna", last_name="Müller", company="Licht GmbH",
        job_title="Buyer", industry="lighting", country="DE", region="eu", stage="prospect", language="en",
        tags=[], custom={}, source="Canton Fair 2026",
    )
    values.update(fields)
    return SimpleNamespace(**values)


def render(settings, *, html: str = "<p>Dear {{ first_name }}, our new panels.</p>", subject: str = "New LED panels",
           text: str = "", contact: Any = None, facts: RecipientFacts | None = None,
           kind: str = "marketing") -> Rendered:
    compiled = CompiledCampaign(subject=subject, html=html, text=text, settings=settings, kind=kind)
    return compiled.render(contact or recipient(), LINKS, facts)
