"""Factories and small helpers for tests."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from sendwell.contacts.regions import region_for
from sendwell.db.models import Consent, Contact
from sendwell.suppression.service import hash_email

TEST_PEPPER = b"test-pepper-0123456789"
_counter = iter(range(1, 10**9))


def make_contact(session: Session, *, consent: str | None = "express", **fields: Any) -> Contact:
    """A contact with sensible defaults and (by default) express consent."""
    n = next(_counter)
    email_addr = fields.pop("email", f"buyer{n}@importer{n}.example")
    country = fields.pop("country", "DE")
    contact = Contact(
        email=email_addr,
        email_hash=hash_email(TEST_PEPPER, email_addr),
        first_name=fields.pop("first_name", f"Anna{n}"),
        last_name=fields.pop("last_name", "Müller"),
        company=fields.pop("company", f"Importer {n} GmbH"),
        country=country,
        region=fields.pop("region", region_for(country)),
        industry=fields.pop("industry", "lighting"),
        stage=fields.pop("stage", "prospect"),
        language=fields.pop("language", "de"),
        tags=fields.pop("tags", []),
        custom=fields.pop("custom", {}),
        **fields,
    )
    session.add(contact)
    session.flush()
    if consent:
        session.add(Consent(contact_id=contact.id, kind=consent, source="test",
                            obtained_at=datetime.now(timezone.utc), wording="test"))
        session.flush()
    return contact


def parse_strict(data: bytes) -> email.message.EmailMessage:
    """Re-parse a sent message under a strict policy: any defect raises."""
    return email.message_from_bytes(data, policy=email.policy.strict)  # type: ignore[return-value]


_URL = re.compile(r"<(https?://[^>]+)>")


def one_click_url(message: email.message.EmailMessage) -> str:
    match = _URL.search(str(message["List-Unsubscribe"]))
    assert match, message["List-Unsubscribe"]
    return match.group(1)
