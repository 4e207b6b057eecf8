"""Factories and small helpers for tests."""

from __future__ import annotations

import email
import os
import email.policy
import re
from datetime import datetime, timezone
from typing import Any

import pytest
import redis

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


class WebhookReceiver:
    """A real HTTP endpoint on loopback (http.server in a thread) that records every POST.

    `fail` maps a path to how many of its first requests answer 500; `status` overrides the
    answer for a path for good (e.g. 500 forever).
    """

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.calls: list[dict[str, Any]] = []
        self.fail: dict[str, int] = {}
        self.status: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.calls.append({"path": self.path, "body": body,
                                           "headers": {k.lower(): v for k, v in self.headers.items()}})
                    seen = sum(1 for c in receiver.calls if c["path"] == self.path)
                    code = receiver.status.get(self.path, 500 if seen <= receiver.fail.get(self.path, 0) else 204)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies received (at `path`), in order."""
        import json

        return [json.loads(c["body"]) for c in self.calls if path is None or c["path"] == path]


def run_once(runtime: Any, campaign_id: int) -> dict[str, Any]:
    """Send what is due of a campaign with one deliverer of the runtime's own, then close it."""
    from sendwell.delivery.runner import run_campaign

    deliverer = runtime.make_deliverer()
    try:
        return run_campaign(runtime.factory, deliverer, campaign_id=campaign_id)
    finally:
        deliverer.transport.close()


def self_signed_certificate(directory: Any) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 written to `directory`: (cert file, key file)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return str(directory / "cert.pem"), str(directory / "key.pem")


def redis_or_skip(url: str) -> redis.Redis:
    """A client of the Redis at `url`; skips the test when none answers, fails under CI."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable: {exc}")
    return client
