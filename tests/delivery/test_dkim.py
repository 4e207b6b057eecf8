"""DKIM signing checked by an independent verifier (dkimpy, offline DNS)."""

from __future__ import annotations

import base64
import hashlib
import random
import re
import time
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dkim.canonicalization import Relaxed as DkimpyRelaxed

from sendwell.config import Settings
from sendwell.delivery.dkim import (
    DEFAULT_SIGNED_HEADERS,
    DkimSigner,
    MultiSigner,
    _fold_b64,
    _split_message,
    dns_record,
    generate_private_key,
    key_bits,
    load_signer,
    public_key_b64,
    relaxed_body,
    relaxed_header,
)

DOMAIN = "bright-lighting.example"
SELECTOR = "sw2026"

# Generated with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:512`;
# `cryptography` refuses to generate keys this small, but will load one.
RSA_512_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEArDCSGVBuW9IizV7M
5LnyDmfbge/vrEOy6ZI1RnnflO1vUJWvzh8htnwUFn74jVWmZGH1PvOra89hPl0x
FuxDhwIDAQABAkBgN3/cD1qril+SHNAnW1RMAnLhR77Ipse5xs5oRD/QSnZIzNID
t5zMTIeyu9GC/SjKRDx3416QjZ+wxsvAWQoBAiEA1MPONsxwWau4mrKX5UIR0iBs
dpn9KvHPZfh4S5aEswECIQDPLgPQ8ZCwysxIQk109cCOPtIcSzg80qNyPfFHrrfe
hwIhAJ88oKSAo4FpNPOKwIYTybSjEao+G609ZwShTp772vsBAiBGAmSjvJ2KQF1b
pZwLA+h3qN7TVM/CLeOxfSEFehMEDQIgRz6qVex2ScjIKbTCkzHoe43sK8fCgr0f
v3O+ImvWUeg=
-----END PRIVATE KEY-----
"""

LIST_UNSUB = (
    "<https://mail.bright-lighting.example/u/eyJjIjoxMjMsInQiOiJhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmIn0.sig>, "
    "<mailto:unsubscribe+eyJjIjoxMjMsInQiOiJhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmIn0@bright-lighting.example>"
)


def multipart_message() -> bytes:
    """A campaign-like mail: text+HTML, UTF-8 encoded-word subject, folded List-Unsubscribe."""
    msg = MIMEMultipart("alternative")
    msg["From"] = "Ningbo Bright Lighting <sales@bright-lighting.example>"
    msg["To"] = formataddr(("Jörg Müller", "buyer@importer.example.de"))  # encoded word
    msg["Subject"] = Header("LED-Röhren mit CE-Kennzeichnung — 新品 2026", "utf-8")
    msg["Date"] = "Tue, 03 Mar 2026 09:00:00 +0800"
    msg["Message-ID"] = "<20260303090000.123@bright-lighting.example>"
    msg["List-Unsubscribe"] = LIST_UNSUB  # compat32 folds this long value
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["List-Id"] = "Newsletter <newsletter.bright-lighting.example>"
    msg["Feedback-ID"] = "123:newsletter:sendwell"
    utf8_qp = Charset("utf-8")
    utf8_qp.body_encoding = QP  # readable bodies, so tests can tamper with words
    msg.attach(MIMEText("Hello Jörg,\n\nOur new T8 tubes.   Unsubscribe: https://x.example/u/1\n", "plain", utf8_qp))
    msg.attach(MIMEText("<p>Hello J&ouml;rg,</p>\n<p>Our  new  T8 tubes.</p>   \n<a href='https://x.example/u/1'>Unsubscribe</a>\n", "html", utf8_qp))
    return msg.as_bytes(policy=compat32.clone(linesep="\r\n"))  # the cheap classes (BENCHMARKS.md)


def simple(body: bytes = b"Hello.\r\n", extra: bytes = b"") -> bytes:
    return (
        b"From: Sales <sales@bright-lighting.example>\r\n"
        b"To: buyer@importer.example\r\n"
        b"Subject: Catalogue\r\n"
        b"Date: Tue, 03 Mar 2026 09:00:00 +0800\r\n"
        b"Message-ID: <1@bright-lighting.example>\r\n" + extra + b"\r\n" + body
    )


def tamper(message: bytes, old: bytes, new: bytes) -> bytes:
    assert old in message, old  # a no-op "tampering" would make the test pass for nothing
    return message.replace(old, new, 1)


def tags(header: bytes) -> dict[str, str]:
    value = header.decode().partition(":")[2]
    value = re.sub(r"\s+", "", value)  # FWS may appear anywhere in these tag values
    return dict(item.split("=", 1) for item in value.strip(";").split(";"))


@pytest.fixture(scope="module")
def rsa_signer(rsa_pem: bytes) -> DkimSigner:
    return DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=rsa_pem)


@pytest.fixture(scope="module")
def record(rsa_pem: bytes) -> str:
    return dns_record(domain=DOMAIN, selector=SELECTOR, private_key_pem=rsa_pem)


# ---- canonicalisation ----------------------------------------------------


def test_relaxed_matches_rfc6376_example():
    # RFC 6376 §3.4.5, the relaxed/relaxed example.
    fields, body = _split_message(b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n")
    assert [relaxed_header(n, v) for n, v in fields] == [b"a:X", b"b:Y Z"]
    assert relaxed_body(body) == b" C\r\nD E\r\n"


@pytest.mark.parametrize(
    ("body", "canonical"),
    [
        (b"", b""),
        (b"\r\n", b""),
        (b"\r\n\r\n\r\n", b""),
        (b"  \t \r\n", b""),
        (b"text", b"text\r\n"),  # SMTP terminates the last line; sign what arrives
        (b"text \t ", b"text\r\n"),
        (b"a\r\r\n\r\n", b"a\r\r\n"),  # a bare CR is content, not an empty line
        (b"a  b\t\tc\r\n\r\n", b"a b c\r\n"),
    ],
)
def test_relaxed_body_edge_cases(body, canonical):
    assert relaxed_body(body) == canonical


def test_relaxed_body_agrees_with_dkimpy_on_random_bodies():
    rng = random.Random(6376)
    alphabet = [b"a", b"Z", b" ", b"\t", b"\r\n", b"\r\n", b"\r", b"\xc3\xa4"]
    for _ in range(2000):
        body = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30))) + b"\r\n"
        assert relaxed_body(body) == DkimpyRelaxed.canonicalize_body(body), body


# ---- signatures that verify ------------------------------------------------


def test_multipart_campaign_mail_verifies_and_covers_list_unsubscribe(rsa_signer, record, verify):
    message = multipart_message()
    assert b"List-Unsubscribe: \r\n <https" in message and b"\r\n <mailto:" in message  # really folded
    sig = rsa_signer.sign(message)
    assert verify(sig + message, record)
    t = tags(sig)
    names = t["h"].split(":")
    assert "list-unsubscribe" in names and "list-unsubscribe-post" in names  # RFC 8058 §4
    assert names == ["from", "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                     "list-unsubscribe", "list-unsubscribe", "list-unsubscribe-post", "list-unsubscribe-post",
                     "list-id", "feedback-id"]  # From and both unsubscribe fields over-signed
    assert t["a"] == "rsa-sha256" and t["c"] == "relaxed/relaxed" and t["v"] == "1"
    assert t["d"] == DOMAIN and t["s"] == SELECTOR
    assert "l" not in t
    assert abs(int(t["t"]) - time.time()) < 60


def test_signature_field_is_folded_to_78_columns(rsa_signer):
    sig = rsa_signer.sign(multipart_message())
    assert sig.startswith(b"DKIM-Signature: v=1;") and sig.endswith(b"\r\n")
    lines = sig[:-2].split(b"\r\n")
    assert len(lines) > 3
    assert all(len(line) <= 78 for line in lines)
    assert all(line.startswith(b" ") for line in lines[1:])  # RFC 5322 §2.2.3 continuation


def test_only_present_headers_are_signed_in_order(rsa_signer, record, verify):
    message = simple()
    sig = rsa_signer.sign(message)
    assert tags(sig)["h"] == "from:from:to:subject:date:message-id"
    assert verify(sig + message, record)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n\r\n",
        b"Line with   runs\tof \t whitespace   \r\n\r\nSecond paragraph.  \t\r\n\r\n\r\n\r\n",
        b"  leading space kept\r\n\t\r\n \r\n",
    ],
    ids=["empty", "only-blank-lines", "runs-and-trailing-blank-lines", "whitespace-only-lines"],
)
def test_bodies_verify(rsa_signer, record, verify, body):
    message = simple(body)
    assert verify(rsa_signer.sign(message) + message, record)


def test_message_without_body_separator_verifies(rsa_signer, record, verify):
    message = simple()[: simple().index(b"\r\n\r\n") + 2]
    assert verify(rsa_signer.sign(message) + message, record)


def test_body_without_final_crlf_verifies_as_transmitted(rsa_signer, record, verify):
    # smtplib and every MTA end DATA with CRLF, so that is what the receiver verifies.
    message = simple(b"last line has no newline   ")
    assert verify(rsa_signer.sign(message) + message + b"\r\n", record)


def test_lf_input_is_signed_as_crlf(rsa_signer, record, verify):
    crlf = multipart_message()
    lf = crlf.replace(b"\r\n", b"\n")
    sig = rsa_signer.sign(lf, timestamp=1_770_000_000)
    assert sig == rsa_signer.sign(crlf, timestamp=1_770_000_000)  # PKCS#1 v1.5 is deterministic
    assert verify(sig + crlf, record)  # what goes over SMTP
    assert verify(sig.replace(b"\r\n", b"\n") + lf, record)  # dkimpy also reads LF files


def test_utf8_and_encoded_word_headers_verify(rsa_signer, record, verify):
    extra = (
        "List-Id: 新品通知 <launches.bright-lighting.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
    ).encode("utf-8")
    message = tamper(
        simple("Grüße,  李经理\r\n".encode(), extra=extra),
        b"Subject: Catalogue",
        "Subject: Katalog für   Händler \t2026".encode(),
    )
    sig = rsa_signer.sign(message)
    assert "list-id" in tags(sig)["h"].split(":")
    assert verify(sig + message, record)


def test_repeated_headers_are_selected_bottom_up(rsa_pem, record, verify):
    signer = DkimSigner(
        domain=DOMAIN, selector=SELECTOR, private_key_pem=rsa_pem, headers=DEFAULT_SIGNED_HEADERS + ("received",)
    )
    received = (
        b"Received: from app1 (app1 [10.0.0.5]) by relay1; Tue, 3 Mar 2026 09:00:01 +0800\r\n"
        b"Received: from localhost by app1;\r\n\tTue, 3 Mar 2026 09:00:00 +0800\r\n"
    )
    message = received + simple()
    sig = signer.sign(message)
    assert tags(sig)["h"].split(":").count("received") == 2
    assert verify(sig + message, record)
    # RFC 6376 §5.4.2: a relay adds Received at the top; the signed instances are the
    # bottom ones, so the signature still holds.
    relayed = b"Received: from relay1 by mx.importer.example; Tue, 3 Mar 2026 09:00:02 +0800\r\n" + sig + message
    assert verify(relayed, record)
    # Swapping the two signed instances changes what h= selects: must fail.
    first, second = received.split(b"\r\nReceived: ", 1)
    swapped = b"Received: " + second + first + b"\r\n" + message[len(received):]
    assert not verify(sig + swapped, record)


def test_relaxed_canonicalisation_tolerates_refolding(rsa_signer, record, verify):
    message = simple(b"Body  text\r\n")
    sig = rsa_signer.sign(message)
    refolded = tamper(message, b"Subject: Catalogue", b"Subject:    Catalogue  ")
    refolded = tamper(refolded, b"To: buyer@importer.example", b"TO: buyer@importer.example")
    refolded = tamper(refolded, b"Body  text\r\n", b"Body \t text  \r\n\r\n")
    assert verify(sig + refolded, record)


# ---- signatures that must fail ----------------------------------------------


def test_tampered_body_fails(rsa_signer, record, verify):
    message = multipart_message()
    sig = rsa_signer.sign(message)
    assert verify(sig + message, record)
    assert not verify(sig + tamper(message, b"T8 tubes", b"T5 tubes"), record)


def test_tampered_list_unsubscribe_fails(rsa_signer, record, verify):
    message = multipart_message()
    sig = rsa_signer.sign(message)
    forged = tamper(message, b"<https://mail.bright-lighting.example/u/", b"<https://evil.example/u/")
    assert not verify(sig + forged, record)
    no_post = tamper(message, b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"")
    assert not verify(sig + no_post, record)


def test_second_from_breaks_signature(rsa_signer, record, verify):
    message = simple()
    sig = rsa_signer.sign(message)
    names = tags(sig)["h"].split(":")
    assert names.count("from") == 2  # oversigned: one more than present
    assert not verify(sig + b"From: attacker@evil.example\r\n" + message, record)


def test_wrong_key_in_dns_fails(rsa_signer, verify):
    other = dns_record(domain=DOMAIN, selector=SELECTOR, private_key_pem=generate_private_key("rsa", 1024))
    message = simple()
    assert not verify(rsa_signer.sign(message) + message, other)


def test_message_without_from_is_refused(rsa_signer):
    with pytest.raises(ValueError, match="From"):
        rsa_signer.sign(b"To: a@b.example\r\nSubject: x\r\n\r\nbody\r\n")


def test_malformed_header_line_is_named(rsa_signer):
    with pytest.raises(ValueError, match="this is not a header"):
        rsa_signer.sign(b"From: a@b.example\r\nthis is not a header\r\n\r\nbody\r\n")


# ---- Ed25519 and two signatures ----------------------------------------------


def test_ed25519_signature_verifies(ed25519_pem, dkimpy_ed25519, verify):
    signer = DkimSigner(domain=DOMAIN, selector="ed", private_key_pem=ed25519_pem)
    rec = dns_record(domain=DOMAIN, selector="ed", private_key_pem=ed25519_pem)
    assert rec == f'ed._domainkey.{DOMAIN}. TXT "v=DKIM1; k=ed25519; p={public_key_b64(ed25519_pem)}"'
    assert len(base64.b64decode(public_key_b64(ed25519_pem))) == 32  # RFC 8463 §4.2: raw key
    message = multipart_message()
    sig = signer.sign(message)
    assert tags(sig)["a"] == "ed25519-sha256"
    assert verify(sig + message, rec)
    assert not verify(sig + tamper(message, b"T8 tubes", b"T5 tubes"), rec)


def test_multisigner_adds_rsa_and_ed25519(rsa_pem, ed25519_pem, record, dkimpy_ed25519, verify):
    rsa_signer = DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=rsa_pem)
    ed_signer = DkimSigner(domain=DOMAIN, selector="ed", private_key_pem=ed25519_pem)
    ed_record = dns_record(domain=DOMAIN, selector="ed", private_key_pem=ed25519_pem)
    message = multipart_message()
    sigs = MultiSigner([rsa_signer, ed_signer]).sign(message)
    assert sigs.count(b"DKIM-Signature:") == 2
    signed = sigs + message
    assert verify(signed, record, ed_record, idx=0)
    assert verify(signed, record, ed_record, idx=1)
    tampered = tamper(signed, b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Nope")
    assert not verify(tampered, record, ed_record, idx=0)
    assert not verify(tampered, record, ed_record, idx=1)


# ---- keys and DNS records ------------------------------------------------------


def test_rsa_512_is_rejected():
    with pytest.raises(ValueError, match="512 bits"):
        DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=RSA_512_PEM)
    assert key_bits(RSA_512_PEM) == 512
    with pytest.raises(ValueError, match="1024"):
        generate_private_key("rsa", 512)


def test_key_bits_and_kinds(rsa_pem, ed25519_pem):
    assert key_bits(rsa_pem) == 2048
    assert key_bits(ed25519_pem) == 256
    assert b"BEGIN PRIVATE KEY" in rsa_pem  # PKCS#8
    with pytest.raises(ValueError, match="not an unencrypted PEM"):
        key_bits(b"not a key")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="RSA or Ed25519"):
        DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=ec_pem)


def test_dns_record_format_2048(rsa_pem, record):
    p = public_key_b64(rsa_pem)
    m = re.fullmatch(rf'{SELECTOR}\._domainkey\.{re.escape(DOMAIN)}\. TXT ("[^"]{{1,255}}")( "[^"]{{1,255}}")+', record)
    assert m, record
    strings = re.findall(r'"([^"]*)"', record)
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={p}"
    assert strings[0].startswith("v=DKIM1; k=rsa; p=MII")
    assert all(len(s) <= 255 for s in strings) and "\n" not in record
    der = base64.b64decode(p)
    assert serialization.load_der_public_key(der).key_size == 2048


def test_dns_record_short_and_long_keys():
    short = generate_private_key("rsa", 1024)
    rec = dns_record(domain=DOMAIN + ".", selector="s", private_key_pem=short)
    assert rec == f's._domainkey.{DOMAIN}. TXT "v=DKIM1; k=rsa; p={public_key_b64(short)}"'
    long = generate_private_key("rsa", 4096)
    strings = re.findall(r'"([^"]*)"', dns_record(domain=DOMAIN, selector="s", private_key_pem=long))
    assert len(strings) == 3 and all(len(s) <= 255 for s in strings)


# ---- settings ----------------------------------------------------------------


def test_load_signer(tmp_path, rsa_pem, monkeypatch):
    monkeypatch.setenv("SENDWELL_DATA_DIR", str(tmp_path))
    for var in ("SENDWELL_DKIM_DOMAIN", "SENDWELL_DKIM_SELECTOR", "SENDWELL_DKIM_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert load_signer(Settings(data_dir=tmp_path)) is None
    assert load_signer(Settings(data_dir=tmp_path, dkim_domain=DOMAIN)) is None

    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        load_signer(Settings(data_dir=tmp_path, dkim_domain=DOMAIN, dkim_key_file=str(missing)))

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(ValueError, match=re.escape(str(garbage))):
        load_signer(Settings(data_dir=tmp_path, dkim_domain=DOMAIN, dkim_key_file=str(garbage)))

    key = tmp_path / "k.pem"
    key.write_bytes(rsa_pem)
    signer = load_signer(Settings(data_dir=tmp_path, dkim_domain=DOMAIN, dkim_selector="abc", dkim_key_file=str(key)))
    assert signer is not None and signer.selector == "abc" and signer.domain == DOMAIN
    assert signer.dns_record() == dns_record(domain=DOMAIN, selector="abc", private_key_pem=rsa_pem)


def test_signer_rejects_bad_names_and_header_lists(rsa_pem):
    with pytest.raises(ValueError, match="selector"):
        DkimSigner(domain=DOMAIN, selector="a b", private_key_pem=rsa_pem)
    with pytest.raises(ValueError, match="from"):
        DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=rsa_pem, headers=("to", "subject"))


def test_body_hash_is_sha256_of_canonical_body(rsa_signer):
    sig = rsa_signer.sign(simple(b"Hi  there \r\n\r\n"))
    assert tags(sig)["bh"] == base64.b64encode(hashlib.sha256(b"Hi there\r\n").digest()).decode()


@pytest.mark.parametrize(
    ("domain", "selector"),
    [
        ("mail." + "x" * 50 + ".example", "s"),
        ("a.example", "selector-" + "y" * 40),
        ("b.example", "s" * 56),
    ],
)
def test_folding_with_long_names_still_verifies(rsa_pem, verify, domain, selector):
    signer = DkimSigner(domain=domain, selector=selector, private_key_pem=rsa_pem)
    rec = dns_record(domain=domain, selector=selector, private_key_pem=rsa_pem)
    message = multipart_message()
    sig = signer.sign(message)
    assert all(len(line) <= 78 for line in sig[:-2].split(b"\r\n"))
    assert verify(sig + message, rec)


@pytest.mark.parametrize("col", [10, 76, 77, 78])
def test_base64_folding_fills_lines_and_loses_nothing(col):
    value = base64.b64encode(bytes(range(256)))
    folded = _fold_b64(value, col)
    lines = folded.split(b"\r\n")
    assert col + len(lines[0]) <= 78
    assert all(line.startswith(b" ") and len(line) <= 78 for line in lines[1:])
    assert b"".join(line.strip() for line in lines) == value


def test_multisigner_needs_a_signer():
    with pytest.raises(ValueError):
        MultiSigner([])


# ---- over-signing the unsubscribe headers (RFC 6376 §5.4, §8.15) ------------------


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_second_unsubscribe_pair_breaks_signature(kind, rsa_pem, ed25519_pem, dkimpy_ed25519, verify):
    pem = rsa_pem if kind == "rsa" else ed25519_pem
    signer = DkimSigner(domain=DOMAIN, selector=kind, private_key_pem=pem)
    rec = dns_record(domain=DOMAIN, selector=kind, private_key_pem=pem)
    message = multipart_message()
    sig = signer.sign(message)
    assert verify(sig + message, rec)
    names = tags(sig)["h"].split(":")
    assert names.count("list-unsubscribe") == 2 and names.count("list-unsubscribe-post") == 2
    # Someone on the path puts their own unsubscribe target above ours: the signature no longer holds.
    evil = b"List-Unsubscribe: <https://evil.example/u/1>\r\n"
    assert not verify(sig + evil + message, rec)
    assert not verify(evil + sig + message, rec)
    assert not verify(sig + b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" + message, rec)
    assert not verify(sig + evil + b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" + message, rec)


def test_unsubscribe_headers_are_not_over_signed_when_absent(rsa_signer):
    # A mail without them (a transactional follow-up) keeps the short h= it had.
    assert "list-unsubscribe" not in tags(rsa_signer.sign(simple()))["h"]
