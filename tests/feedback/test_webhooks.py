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

from sendwell.db.models import Event, FeedbackReview, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.feedback.providers import SnsVerifier, sns_string_to_sign
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from sendwell.web.server import BackgroundServer
from tests.feedback.factories import make_sent
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


def _ses_bounce(address: str, message_id: str | None = None) -> dict:
    # SES names the mail by its own id and, in commonHeaders, by the Message-ID we wrote.
    mail = {"messageId": "ses-1", "commonHeaders": {"messageId": message_id}} if message_id else {"messageId": "ses-1"}
    return {"notificationType": "Bounce", "mail": mail,
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
    runtime = Runtime(settings.model_copy(update={"sendgrid_public_key": base64.b64encode(public).decode(),
                                                  "ses_topic_arns": TOPIC}))
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


def _sent(runtime, email: str) -> tuple[str, str]:
    """A contact who was mailed: (email hash, the Message-ID of the mail)."""
    with transaction(runtime.factory) as session:
        contact = make_contact(session, email=email)
        return contact.email_hash, make_sent(session, contact).message_id


def _settings(server, **changes) -> None:
    server.runtime.replace_settings(server.runtime.settings.model_copy(update=changes))


def _reason(runtime, email_hash: str) -> str | None:
    with transaction(runtime.factory) as session:
        return session.scalar(select(Suppression.reason).where(Suppression.email_hash == email_hash))


def _event_count(runtime) -> int:
    with transaction(runtime.factory) as session:
        return len(session.scalars(select(Event.id)).all())


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_through_sns(server, sns_key, version) -> None:
    email_hash, message_id = _sent(server.runtime, "jane.doe@example.com")
    body = _signed(sns_key[0], _notification(_ses_bounce("jane.doe@example.com", message_id)), version)
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == ["hard_bounce"]
    assert _reason(server.runtime, email_hash) == "hard_bounce"
    assert server.fetched == [CERT_URL]
    events = _event_count(server.runtime)
    again = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body), timeout=10)
    assert again.json()["actions"] == ["duplicate"] and _event_count(server.runtime) == events


def test_ses_complaint_through_sns(server, sns_key) -> None:
    email_hash, message_id = _sent(server.runtime, "angry@example.com")
    inner = {"notificationType": "Complaint", "mail": {"messageId": "ses-2", "commonHeaders": {"messageId": message_id}},
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


def test_ses_bounce_naming_no_send_of_ours_is_kept_for_review(server, sns_key) -> None:
    email_hash, _ = _sent(server.runtime, "jane.doe@example.com")
    body = _signed(sns_key[0], _notification(_ses_bounce("jane.doe@example.com")))
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body))
    assert response.status_code == 200 and response.json()["actions"] == ["unmatched"]
    assert _reason(server.runtime, email_hash) is None
    with transaction(server.runtime.factory) as session:
        [review] = session.scalars(select(FeedbackReview)).all()
        assert (review.source, review.why, review.recipients) == ("ses", "not_tied", ["jane.doe@example.com"])
        assert '"bounceType": "Permanent"' in review.raw  # the SES notification, for a person to read


def test_topic_outside_the_allowlist_is_refused(server, sns_key) -> None:
    _settings(server, ses_topic_arns="arn:aws:sns:eu-west-1:123456789012:other")
    email_hash, message_id = _sent(server.runtime, "jane.doe@example.com")
    body = _signed(sns_key[0], _notification(_ses_bounce("jane.doe@example.com", message_id)))
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body))
    assert response.status_code == 403 and _reason(server.runtime, email_hash) is None
    assert "is not in SENDWELL_SES_TOPIC_ARNS" in response.json()["error"]


def test_without_an_allowlist_every_sns_message_is_refused(server, sns_key) -> None:
    _settings(server, ses_topic_arns="")
    email_hash, message_id = _sent(server.runtime, "jane.doe@example.com")
    body = _signed(sns_key[0], _notification(_ses_bounce("jane.doe@example.com", message_id)))
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(body))
    assert response.status_code == 403 and "set SENDWELL_SES_TOPIC_ARNS" in response.json()["error"]
    assert _reason(server.runtime, email_hash) is None and _event_count(server.runtime) == 0
    # Nothing is fetched for a refused topic: not the certificate, not a subscription URL.
    url = f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=abc"
    message = {"Type": "SubscriptionConfirmation", "MessageId": "s-1", "Token": "abc", "TopicArn": TOPIC,
               "Message": "You have chosen to subscribe", "SubscribeURL": url, "Timestamp": "2026-03-03T10:00:00Z"}
    assert httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(_signed(sns_key[0], message))).status_code == 403
    assert server.confirmed == [] and server.fetched == []


def test_subscription_for_an_unlisted_topic_is_not_confirmed(server, sns_key) -> None:
    other = "arn:aws:sns:eu-west-1:999999999999:attacker"
    url = f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={other}&Token=abc"
    message = {"Type": "SubscriptionConfirmation", "MessageId": "s-2", "Token": "abc", "TopicArn": other,
               "Message": "You have chosen to subscribe", "SubscribeURL": url, "Timestamp": "2026-03-03T10:00:00Z"}
    response = httpx.post(f"{server.url}/webhooks/ses", content=json.dumps(_signed(sns_key[0], message)))
    assert response.status_code == 403 and server.confirmed == []


def _sendgrid(server, key, events: list, timestamp: str = "1772532000", signature: str | None = None):
    body = json.dumps(events).encode()
    if signature is None:
        signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {"X-Twilio-Email-Event-Webhook-Signature": signature,
               "X-Twilio-Email-Event-Webhook-Timestamp": timestamp, "Content-Type": "application/json"}
    return httpx.post(f"{server.url}/webhooks/sendgrid", content=body, headers=headers, timeout=10)


def test_sendgrid_signed_events(server, ec_key) -> None:
    gone, gone_id = _sent(server.runtime, "gone@example.com")
    angry, angry_id = _sent(server.runtime, "angry@example.com")
    # SendGrid's "smtp-id" is the Message-ID we wrote: it ties the event to our send.
    events = [
        {"email": "gone@example.com", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 user unknown", "sg_event_id": "e1", "smtp-id": gone_id},
        {"email": "angry@example.com", "event": "spamreport", "sg_event_id": "e2", "smtp-id": angry_id},
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
    _settings(server, sendgrid_public_key="")
    response = _sendgrid(server, ec_key, [{"email": "x@example.com", "event": "spamreport"}])
    assert response.status_code == 403 and "not set" in response.json()["error"]
