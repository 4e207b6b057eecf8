"""STARTTLS, implicit TLS and AUTH against aiosmtpd with a self-signed certificate made here."""

from __future__ import annotations

import ssl

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from sendwell.mail.transport import SmtpTransport, TransportUnavailable
from tests.delivery.faults import FaultySMTPServer
from tests.helpers import self_signed_certificate


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert file, key file)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def _server_ctx(cert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


def _auth(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


MAIL = b"From: a@x.example\r\nTo: b@y.example\r\nSubject: t\r\n\r\nhello\r\n"


def test_starttls_with_auth_delivers_and_the_session_is_encrypted(cert) -> None:
    with FaultySMTPServer(tls_context=_server_ctx(cert), require_starttls=True, authenticator=_auth,
                          auth_require_tls=True) as server:
        t = SmtpTransport(f"smtp://mailer:s3cret@127.0.0.1:{server.port}?starttls=1", ca_file=cert[0], timeout=5)
        outcome = t.send("bounce@x.example", "b@y.example", MAIL)
        assert isinstance(t._smtp.sock, ssl.SSLSocket)
        t.close()
    assert outcome.status == "sent"
    assert [m.rcpt_tos for m in server.messages] == [["b@y.example"]]


def test_wrong_password_and_untrusted_certificate_are_clear_errors(cert) -> None:
    with FaultySMTPServer(tls_context=_server_ctx(cert), require_starttls=True, authenticator=_auth,
                          auth_require_tls=True) as server:
        bad = SmtpTransport(f"smtp://mailer:wrong@127.0.0.1:{server.port}?starttls=1", ca_file=cert[0], timeout=5)
        with pytest.raises(TransportUnavailable, match="cannot reach SMTP server .*535"):
            bad.open()
        untrusted = SmtpTransport(f"smtp://mailer:s3cret@127.0.0.1:{server.port}?starttls=1", timeout=5)
        with pytest.raises(TransportUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.open()
    assert server.messages == []


def test_implicit_tls_smtps(cert) -> None:
    with FaultySMTPServer(ssl_context=_server_ctx(cert), authenticator=_auth, auth_require_tls=False) as server:
        t = SmtpTransport(f"smtps://mailer:s3cret@127.0.0.1:{server.port}", ca_file=cert[0], timeout=5)
        outcome = t.send("bounce@x.example", "b@y.example", MAIL)
        assert isinstance(t._smtp.sock, ssl.SSLSocket)
        t.close()
    assert outcome.status == "sent" and len(server.messages) == 1


def test_auth_is_never_sent_in_clear_to_a_remote_host() -> None:
    t = SmtpTransport("smtp://mailer:s3cret@192.0.2.1:25", timeout=0.5)
    # No TLS asked for and not loopback: refused before any password could leave the machine.
    assert not (t.implicit_tls or t.starttls)
    with pytest.raises(TransportUnavailable):
        t.open()
