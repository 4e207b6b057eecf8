"""Provider webhooks: Amazon SES via SNS (signature checked with the signing certificate) and SendGrid signed events."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.feedback.classify.provider import classify_provider_json
from sendwell.feedback.service import FeedbackOutcome, record_feedback

Fetch = Callable[[str], bytes]


class WebhookRejected(ValueError):
    """The request is not authentic or not well-formed; nothing was changed."""


# --- Amazon SNS ----------------------------------------------------------------------------

# Only certificates served by SNS itself may sign: otherwise anyone could sign with their own.
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


def fetch_url(url: str) -> bytes:
    """GET a URL over HTTPS (the default certificate and confirmation fetcher)."""
    response = httpx.get(url, timeout=10, follow_redirects=False)
    response.raise_for_status()
    return response.content


def _check_sns_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not _SNS_HOST.match(parts.hostname or ""):
        raise WebhookRejected(f"{what} {url!r} is not an https URL on an SNS host")


def sns_string_to_sign(message: dict[str, Any]) -> bytes:
    """The canonical "name\\nvalue\\n" string SNS signs, for the message's Type."""
    kind = message.get("Type")
    fields = _NOTIFICATION_FIELDS if kind == "Notification" else _SUBSCRIPTION_FIELDS
    out = []
    for name in fields:
        if name in message and message[name] is not None:
            out.append(f"{name}\n{message[name]}\n")
        elif not (name == "Subject"):
            raise WebhookRejected(f"SNS message lacks the field {name}")
    return "".join(out).encode("utf-8")


class SnsVerifier:
    """Checks SNS message signatures; certificates are fetched once per URL (injectable for tests)."""

    def __init__(self, fetch: Fetch = fetch_url) -> None:
        self.fetch = fetch
        self._certs: dict[str, x509.Certificate] = {}

    def certificate(self, url: str) -> x509.Certificate:
        _check_sns_url(url, "SigningCertURL")
        if url not in self._certs:
            try:
                self._certs[url] = x509.load_pem_x509_certificate(self.fetch(url))
            except (ValueError, httpx.HTTPError) as exc:
                raise WebhookRejected(f"cannot load the signing certificate {url}: {exc}") from exc
        return self._certs[url]

    def verify(self, message: dict[str, Any], now: datetime | None = None) -> None:
        """Raise WebhookRejected unless the message carries a valid SNS signature."""
        version = str(message.get("SignatureVersion", ""))
        if version not in ("1", "2"):
            raise WebhookRejected(f"unsupported SNS SignatureVersion {version!r}")
        cert = self.certificate(str(message.get("SigningCertURL", "")))
        now = now or datetime.now(timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise WebhookRejected("the SNS signing certificate is not valid now")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookRejected("the SNS signing certificate has no RSA key")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WebhookRejected("the SNS signature is not base64") from exc
        # SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA (AWS SNS developer guide).
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        try:
            key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), digest)
        except InvalidSignature as exc:
            raise WebhookRejected("the SNS signature does not verify") from exc


def parse_sns(body: bytes) -> dict[str, Any]:
    """The SNS message in a request body; WebhookRejected if it is not one."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected("the body is not JSON") from exc
    if not isinstance(message, dict) or message.get("Type") not in (
        "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"
    ):
        raise WebhookRejected("the body is not an SNS message (no known Type)")
    return message


def handle_sns(
    session: Session,
    *,
    message: dict[str, Any],
    settings: Settings,
    verifier: SnsVerifier,
    confirm: Fetch = fetch_url,
) -> dict[str, Any]:
    """Verify one SNS message, confirm a subscription or record the SES notification it carries."""
    # The allow-list first, before any certificate is fetched: a valid SNS signature only proves
    # that some AWS account sent the message, so an empty list accepts nothing at all.
    allowed = [a.strip() for a in settings.ses_topic_arns.split(",") if a.strip()]
    if not allowed:
        raise WebhookRejected("SES notifications are refused: set SENDWELL_SES_TOPIC_ARNS to the ARN(s) of "
                              "your SNS topic(s); any AWS account can sign SNS messages")
    if message.get("TopicArn") not in allowed:
        raise WebhookRejected(f"SNS topic {message.get('TopicArn')!r} is not in SENDWELL_SES_TOPIC_ARNS")
    verifier.verify(message)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL", ""))
        _check_sns_url(url, "SubscribeURL")
        try:
            confirm(url)  # visiting the URL is how SNS subscriptions are confirmed
        except httpx.HTTPError as exc:
            raise WebhookRejected(f"confirming the subscription failed: {exc}") from exc
        return {"type": kind, "confirmed": True}
    if kind == "UnsubscribeConfirmation":
        return {"type": kind}
    try:
        inner = json.loads(str(message.get("Message", "")))
    except ValueError as exc:
        raise WebhookRejected("the SNS Message is not an SES notification (not JSON)") from exc
    outcomes: list[FeedbackOutcome] = []
    for item in classify_provider_json(inner) if isinstance(inner, dict) else []:
        outcomes.extend(record_feedback(session, classification=item, settings=settings,
                                        raw_ref=f"sns:{message.get('MessageId')}", source="ses",
                                        raw=str(message.get("Message", "")).encode()))
    return {"type": kind, "actions": [o.action for o in outcomes]}


# --- SendGrid -------------------------------------------------------------------------------

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def load_sendgrid_key(value: str) -> ec.EllipticCurvePublicKey:
    """The Event Webhook verification key: base64 DER as SendGrid shows it, or PEM."""
    value = value.strip()
    try:
        if value.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(value.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(value))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"SENDWELL_SENDGRID_PUBLIC_KEY is not a public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("SENDWELL_SENDGRID_PUBLIC_KEY is not an ECDSA key")
    return key


def verify_sendgrid(*, public_key: str, signature: str, timestamp: str, body: bytes) -> None:
    """Raise WebhookRejected unless `signature` is the ECDSA P-256/SHA-256 signature of timestamp + body."""
    if not public_key:
        raise WebhookRejected("SendGrid events are refused: SENDWELL_SENDGRID_PUBLIC_KEY is not set")
    if not signature or not timestamp:
        raise WebhookRejected(f"missing {SENDGRID_SIGNATURE} or {SENDGRID_TIMESTAMP} header")
    key = load_sendgrid_key(public_key)
    try:
        key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise WebhookRejected("the SendGrid signature does not verify") from exc


def handle_sendgrid(session: Session, *, body: bytes, settings: Settings) -> dict[str, Any]:
    """Record each event of a verified SendGrid batch."""
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected("the body is not JSON") from exc
    if not isinstance(events, list):
        raise WebhookRejected("SendGrid posts a JSON array of events")
    actions = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            continue
        ref = event.get("sg_event_id") or f"{event.get('sg_message_id')}:{event.get('event')}:{index}"
        for item in classify_provider_json([event]):
            for outcome in record_feedback(session, classification=item, settings=settings,
                                           raw_ref=f"sendgrid:{ref}", source="sendgrid",
                                           raw=json.dumps(event, ensure_ascii=False).encode()):
                actions.append(outcome.action)
    return {"events": len(events), "actions": actions}
