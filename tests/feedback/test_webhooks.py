"""The SES (SNS) and SendGrid webhooks over real HTTP, with self-made certificates and keys."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from sendwell.db.models import Event, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.feedback.providers import SnsVerifier, sns_string_to_sign
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.helpers import make_contact

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"


@pytest.fixture(scope="module")
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    """An RSA key and a self-signed certificate standing in for the one SNS serves."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


def _signed(key: rsa.RSAPrivateKey, message: dict, version: str = "2") -> dict:
    message = {**message, "SignatureVersion": version, "SigningCertURL": CERT_URL}
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(sns_string_to_sign(message), padding.PKCS1v15(), digest)
    return {**message, "Signature": base64.b64encode(signature).decode()}


def _notification(inner: dict, message_id: str = "m-1") -> dict:
    return {"Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
            "Timestamp": "2026-03-03T10:00:00.000Z", "Message": json.dumps(inner)}


def _ses_bounce(address: str) -> dict:
    return {"notificationType": "Bounce", "mail": {"messageId": "ses-1"},
            "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                       "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}


@pytest.fixture
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def server(settings, sns_key, ec_key):
    public = ec_key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    runtime = Runtime(settings.model_copy(update={"sendgrid_public_key": base64.b64encode(public).decode()}))
    app = create_app(runtime)
    fetched: list[str] = []
    app.state.sns_verifier = SnsVerifier(fetch=lambda url: (fetched.append(url), sns_key[1])[1])
    confirmed: list[str] = []
    app.state.sns_confirm = lambda url: (confirmed.append(url), b"ok")[1]
    with BackgroundServer(app, free_port()) as srv:
        srv.runtime, srv.confirmed, srv.fetched = runtime, confirmed, fetched
        yield srv
    runtime.dispose()


def _contact(runtime, email: str):
    with transaction(runtime.factory) as session:
        contact = make_contact(session, email=email)
        return contact.id, contact.email_hash


def _reason(runtime, email_hash: str) -> str | None:
    with transaction(runtime.factory) as session:
        return session.scalar(select(Suppression.reason).where(Suppression.email_hash == email_hash))


def _event_count(runtime) -> int:
    with transaction(runtime.factory) as session:
        return len(session.scalars(select(Event.id)).all())


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_through_sns(server, sns_key, version) -> None:
    _, email_hash = _contact(server.runtime, "jane.doe@example.com")
    body = _signed(sns_key[0], _notification(_ses_bounce("jane.doe@example.com")), version)
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == ["hard_bounce"]
    assert _reason(server.runtime, email_hash) == "hard_bounce"
    assert server.fetched == [CERT_URL]
    events = _event_count(server.runtime)
    again = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body), timeout=10)
    assert again.json()["actions"] == ["duplicate"] and _event_count(server.runtime) == events


def test_ses_complaint_through_sns(server, sns_key) -> None:
    _, email_hash = _contact(server.runtime, "angry@example.com")
    inner = {"notificationType": "Complaint", "mail": {"messageId": "ses-2"},
             "complaint": {"complaintFeedbackType": "abuse", "complainedRecipients": [{"emailAddress": "angry@example.com"}]}}
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(_signed(sns_key[0], _notification(inner))))
    assert response.status_code == 200 and _reason(server.runtime, email_hash) == "complaint"


def test_tampered_sns_message_changes_nothing(server, sns_key) -> None:
    _, email_hash = _contact(server.runtime, "jane.doe@example.com")
    body = _signed(sns_key[0], _notification(_ses_bounce("someone@example.com")))
    body["Message"] = json.dumps(_ses_bounce("jane.doe@example.com"))
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body))
    assert response.status_code == 403 and "does not verify" in response.json()["error"]
    assert _reason(server.runtime, email_hash) is None and _event_count(server.runtime) == 0


def test_certificate_from_a_foreign_host_is_refused(server, sns_key) -> None:
    body = _signed(sns_key[0], _notification(_ses_bounce("x@example.com")))
    body["SigningCertURL"] = "https://attacker.example/sns.pem"
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body))
    assert response.status_code == 403 and server.fetched == []


def test_not_an_sns_message_is_400(server) -> None:
    assert httpx.post(f"{server.url}/webhooks/ses", content=b"{nope").status_code == 400
    assert httpx.post(f"{server.url}/webhooks/ses", content=b'{"Type": "Other"}').status_code == 400


def test_subscription_confirmation_visits_the_subscribe_url(server, sns_key) -> None:
    url = f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=abc"
    message = {"Type": "SubscriptionConfirmation", "MessageId": "s-1", "Token": "abc", "TopicArn": TOPIC,
               "Message": "You have chosen to subscribe", "SubscribeURL": url, "Timestamp": "2026-03-03T10:00:00Z"}
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(_signed(sns_key[0], message)))
    assert response.status_code == 200 and response.json() == {"type": "SubscriptionConfirmation", "confirmed": True}
    assert server.confirmed == [url]


def test_topic_outside_the_allowlist_is_refused(server, sns_key) -> None:
    server.runtime.settings.ses_topic_arns = "arn:aws:sns:eu-west-1:123456789012:other"
    _, email_hash = _contact(server.runtime, "jane.doe@example.com")
    body = _signed(sns_key[0], _notification(_ses_bounce("jane.doe@example.com")))
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body))
    assert response.status_code == 403 and _reason(server.runtime, email_hash) is None


def _sendgrid(server, key, events: list, timestamp: str = "1772532000", signature: str | None = None):
    body = json.dumps(events).encode()
    if signature is None:
        signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {"X-Twilio-Email-Event-Webhook-Signature": signature,
               "X-Twilio-Email-Event-Webhook-Timestamp": timestamp, "Content-Type": "application/json"}
    return httpx.post(f"{server.url}/webhooks/sendgrid", content=body, headers=headers, timeout=10)


def test_sendgrid_signed_events(server, ec_key) -> None:
    _, gone = _contact(server.runtime, "gone@example.com")
    _, angry = _contact(server.runtime, "angry@example.com")
    events = [
        {"email": "gone@example.com", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 user unknown", "sg_event_id": "e1"},
        {"email": "angry@example.com", "event": "spamreport", "sg_event_id": "e2"},
        {"email": "later@example.com", "event": "deferred", "response": "421 try later", "sg_event_id": "e3"},
    ]
    response = _sendgrid(server, ec_key, events)
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == ["hard_bounce", "complaint", "unmatched"]
    assert _reason(server.runtime, gone) == "hard_bounce" and _reason(server.runtime, angry) == "complaint"


def test_sendgrid_bad_signature_changes_nothing(server, ec_key) -> None:
    _, gone = _contact(server.runtime, "gone@example.com")
    events = [{"email": "gone@example.com", "event": "bounce", "status": "5.1.1", "sg_event_id": "e1"}]
    other = ec.generate_private_key(ec.SECP256R1())
    assert _sendgrid(server, other, events).status_code == 403
    assert _sendgrid(server, ec_key, events, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert _sendgrid(server, ec_key, events, signature="").status_code == 403
    assert _reason(server.runtime, gone) is None


def test_sendgrid_refused_without_a_configured_key(server, ec_key) -> None:
    server.runtime.settings.sendgrid_public_key = ""
    response = _sendgrid(server, ec_key, [{"email": "x@example.com", "event": "spamreport"}])
    assert response.status_code == 403 and "not set" in response.json()["error"]
