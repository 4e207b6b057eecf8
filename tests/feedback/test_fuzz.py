"""Property-based tests: no input, however broken, crashes the parsers of inbound feedback."""

from __future__ import annotations

import email
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendwell.config import load_settings
from sendwell.feedback.classify import Classification, classify_message, classify_provider_json
from sendwell.feedback.inbound import asks_to_stop, body_text, new_text, route_of, split_address
from sendwell.feedback.sources import envelope_recipients

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = sorted(p.read_bytes() for p in FIXTURES.rglob("*.eml"))
KINDS = {"hard", "soft", "complaint", "auto_reply", "other"}
# No time limit (the suite's rule), a fixed budget of examples.
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SETTINGS = load_settings(secret_key="k", hash_pepper="p", from_="x <sales@bright-lighting.example>",
                         data_dir=Path("/nonexistent"))


def _valid(result: Classification) -> None:
    assert result.kind in KINDS
    assert all(isinstance(r, str) and "@" in r for r in result.recipients)
    assert result.status is None or result.status[0] in "245"


@FUZZ
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    _valid(classify_message(raw))


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_and_corrupted_real_messages_never_crash(sample: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(sample)))
    raw = bytearray(sample[:cut])
    for _ in range(data.draw(st.integers(0, 8))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _valid(classify_message(bytes(raw)))


_HEADER_NAMES = st.sampled_from(["Content-Type", "Subject", "From", "To", "Auto-Submitted", "X-Failed-Recipients",
                                 "Delivered-To", "Content-Transfer-Encoding", "MIME-Version", "Precedence"])
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@FUZZ
@given(st.lists(st.tuples(_HEADER_NAMES, _TEXT), max_size=8), _TEXT,
       st.sampled_from(["utf-8", "gb2312", "latin-1", "x-unknown", "utf-7", ""]))
def test_odd_headers_and_charsets_never_crash(headers, body: str, charset: str) -> None:
    head = "".join(f"{name}: {value}\n" for name, value in headers).replace("\r", "")
    ctype = f"Content-Type: multipart/report; report-type=delivery-status; boundary=b; charset={charset}\n"
    raw = (head + ctype + "\n--b\nContent-Type: message/delivery-status\n\n" + body).encode("utf-8", "replace")
    _valid(classify_message(raw))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["Message", "notificationType", "eventType", "bounce", "complaint", "mail", "event",
                         "email", "bouncedRecipients", "complainedRecipients", "emailAddress", "bounceType",
                         "status", "reason", "delivery", "recipients", "type", "x"]), children, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(_JSON)
def test_arbitrary_provider_json_never_crashes(payload) -> None:
    for item in classify_provider_json(payload) if isinstance(payload, (dict, list)) else []:
        assert item.kind in KINDS
    if isinstance(payload, dict):
        classify_provider_json({"Message": json.dumps(payload)})


@FUZZ
@given(_TEXT, _TEXT)
def test_reply_reading_never_crashes(subject: str, body: str) -> None:
    assert isinstance(asks_to_stop(subject, body, original_subject=subject), bool)
    assert len(new_text(body)) <= 6


@FUZZ
@given(st.binary(max_size=2000))
def test_stored_mail_envelope_and_body_never_crash(raw: bytes) -> None:
    rcpts = envelope_recipients(raw, SETTINGS)
    assert rcpts and all(route_of(r, SETTINGS) != "foreign" for r in rcpts)
    import email

    assert isinstance(body_text(email.message_from_bytes(raw)), str)


@FUZZ
@given(_TEXT)
def test_address_splitting_never_crashes(address: str) -> None:
    base, detail, domain = split_address(address)
    assert base == base.lower() and domain == domain.lower()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=1500), st.sampled_from(SAMPLES)),
       local=st.sampled_from(["bounce", "bounce+1.abcdefghij", "unsubscribe+1-0-abc", "unsubscribe", "sales", "x+y"]))
def test_process_inbound_never_crashes(session, settings, raw: bytes, local: str) -> None:
    """Whatever arrives at whichever of our addresses, routing ends in a result, not an exception."""
    from sendwell.feedback.inbound import process_inbound

    ours = settings.model_copy(update={"from_": "x <sales@bright-lighting.example>"})
    with session.begin_nested():
        [result] = process_inbound(session, raw=raw, rcpt_to=[f"{local}@bright-lighting.example"], settings=ours)
    assert result.route in ("bounce", "mailto", "reply") and result.action


def test_a_charset_name_with_a_nul_byte_is_read_as_utf8() -> None:
    # Found by the truncation fuzzer above: the codec lookup raises ValueError for such names.
    raw = (b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=\"utf\x00-8\"\r\n\r\n"
           b"<buyer@importer.example>: host mx.importer.example said: 550 5.1.1 User unknown\r\n")
    assert classify_message(raw).kind == "hard"
    assert "User unknown" in body_text(email.message_from_bytes(raw))
