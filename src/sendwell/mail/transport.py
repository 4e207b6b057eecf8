"""Mail transports behind one port: SMTP (the real thing) and capture (.eml files)."""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

_LEADING_DOT = re.compile(rb"(?m)^\.")

# A session quiet for longer than this is checked with NOOP before its next mail: servers
# close idle sessions (Postfix after 300 s, many relays after 10-60 s) without telling us.
IDLE_CHECK_SECONDS = 10.0


class _Disconnected(Exception):
    """The session was gone before the server accepted any part of the transaction."""


class TransportUnavailable(RuntimeError):
    """The server cannot be reached or refused the session; nothing was sent."""


@dataclass(frozen=True)
class Outcome:
    """What the server said about one recipient."""

    status: str  # "sent" | "temporary" | "permanent" | "skip" (message = the skip reason)
    code: int
    message: str


class Transport(Protocol):
    def open(self) -> None: ...
    def send(self, mail_from: str, rcpt_to: str, data: bytes) -> Outcome: ...
    def close(self) -> None: ...


class SmtpTransport:
    """One persistent SMTP session on smtplib; a worker holds one per thread (the "pool").

    smtplib over threads rather than aiosmtplib, by measurement (docs/delivery.md, bench/send.py
    --compare-clients): per message, RSA signing and MIME cost ~10× the SMTP exchange, and
    smtplib spends less CPU per exchange than aiosmtplib's event loop; both wait on the socket
    with the GIL released, so N threads keep N sessions busy. Scaling past one core is done
    with processes (`sendwell worker`), which neither library can avoid.
    """

    def __init__(self, url: str, *, timeout: float = 30.0, local_hostname: str | None = None,
                 ca_file: str = "", idle_check: float = IDLE_CHECK_SECONDS) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"invalid SMTP URL {url!r}: expected smtp://host:port or smtps://user:pass@host:port")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = parse_qs(parts.query)
        self.starttls = query.get("starttls", ["0"])[0] in ("1", "true", "yes")
        self.verify = query.get("verify", ["1"])[0] not in ("0", "false", "no")
        self.ca_file = query.get("cafile", [ca_file])[0]
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.pipelining = query.get("pipelining", ["1"])[0] not in ("0", "false", "no")
        self.idle_check = idle_check
        self._smtp: smtplib.SMTP | None = None
        self._last_reply = 0.0  # time.monotonic() of the session's last transaction

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file or None)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def open(self) -> None:
        if self._smtp is not None:
            return
        smtp: smtplib.SMTP | None = None
        try:
            if self.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout,
                    local_hostname=self.local_hostname, context=self._tls_context(),
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname)
            smtp.ehlo()
            if self.starttls:
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS")
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if self.username:
                # RFC 4954 §4: never send credentials in clear over the network.
                if not (self.implicit_tls or self.starttls) and self.host not in ("127.0.0.1", "::1", "localhost"):
                    raise smtplib.SMTPNotSupportedError("refusing AUTH without TLS: use smtps:// or ?starttls=1")
                smtp.login(self.username, self.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            if smtp is not None:
                try:
                    smtp.close()
                except OSError:
                    pass
            raise TransportUnavailable(f"cannot reach SMTP server {self.where}: {_reason(exc)}") from exc
        self._smtp = smtp
        self._last_reply = time.monotonic()

    def _check_idle(self) -> None:
        """NOOP on a session that was quiet past `idle_check`; a dead one is dropped (open() reconnects)."""
        assert self._smtp is not None
        try:
            code, _ = self._smtp.noop()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code == 250:
            self._last_reply = time.monotonic()
        else:  # 421 (RFC 5321 §3.8), a closed socket, or a reply that makes no sense
            self._drop()

    def supports_smtputf8(self) -> bool:
        self.open()
        assert self._smtp is not None
        return bool(self._smtp.has_extn("smtputf8"))

    def send(self, mail_from: str, rcpt_to: str, data: bytes) -> Outcome:
        """One SMTP transaction. A dropped connection is a temporary outcome (the next send reconnects).

        A session that was idle past `idle_check` is checked first (NOOP) and replaced if dead;
        one found closed at MAIL FROM is replaced once and the mail sent on the new one: nothing
        of it was accepted, so it cannot have been delivered.
        """
        # The hot path pays one clock read: back-to-back mails never send NOOP.
        if self._smtp is not None and time.monotonic() - self._last_reply > self.idle_check:
            self._check_idle()
        try:
            return self._transaction(mail_from, rcpt_to, data)
        except _Disconnected:
            self._drop()
        try:
            return self._transaction(mail_from, rcpt_to, data)
        except _Disconnected as exc:
            self._drop()
            return Outcome("temporary", 0, f"connection lost: {exc}")

    def _transaction(self, mail_from: str, rcpt_to: str, data: bytes) -> Outcome:
        self.open()
        assert self._smtp is not None
        options: list[str] = []
        if not rcpt_to.isascii():
            # RFC 6531 §3.4: a non-ASCII mailbox needs SMTPUTF8, and only if the server offers it.
            if not self._smtp.has_extn("smtputf8"):
                return Outcome("skip", 0, "needs_smtputf8")
            options.append("SMTPUTF8")
        smtp = self._smtp
        try:
            # The transaction by hand rather than smtplib.sendmail: sendmail re-parses both
            # addresses with email.utils.parseaddr (~0.3 ms each), more than the exchange itself.
            smtp.command_encoding = "utf-8" if options else "ascii"
            mail_cmd = f"MAIL FROM:<{mail_from}>" + "".join(" " + o for o in options)
            if self.pipelining and smtp.has_extn("pipelining"):
                outcome = self._send_pipelined(smtp, mail_cmd, rcpt_to, data)
            else:
                outcome = self._send_lockstep(smtp, mail_cmd, rcpt_to, data)
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            return Outcome("temporary", 0, f"connection lost: {_reason(exc)}")
        except smtplib.SMTPResponseException as exc:  # DATA refused before the message (no 354)
            if exc.smtp_code == 421:
                self._drop()
            else:
                self._reset()
            return _outcome(exc.smtp_code, exc.smtp_error)
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            return Outcome("temporary", 0, f"connection lost: {_reason(exc)}")
        self._last_reply = time.monotonic()
        return outcome

    def _send_lockstep(self, smtp: smtplib.SMTP, mail_cmd: str, rcpt_to: str, data: bytes) -> Outcome:
        try:
            code, reply = smtp.docmd(mail_cmd)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise _Disconnected(_reason(exc)) from exc
        if code != 250:
            self._reset()
            return _outcome(code, reply, "MAIL FROM")
        code, reply = smtp.docmd("RCPT", f"TO:<{rcpt_to}>")
        if code not in (250, 251):
            if code == 421:  # RFC 5321 §3.8: the server is closing the channel
                self._drop()
            else:
                self._reset()
            return _outcome(code, reply, "RCPT TO")
        code, reply = smtp.data(data)
        if code == 421:
            self._drop()
        # smtplib's data() answers for DATA itself or for the end of the message; a refusal
        # of DATA (no 354) comes before any content, which only the first reading can tell.
        return Outcome("sent", code, "OK") if code == 250 else _outcome(code, reply, "end of DATA")

    def _send_pipelined(self, smtp: smtplib.SMTP, mail_cmd: str, rcpt_to: str, data: bytes) -> Outcome:
        """MAIL, RCPT and DATA in one write, then the message (RFC 2920 §3.1: DATA ends a group)."""
        try:
            smtp.send(f"{mail_cmd}\r\nRCPT TO:<{rcpt_to}>\r\nDATA\r\n")
            mail_code, mail_reply = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            # No reply at all: the server took nothing, and the message body was never sent.
            raise _Disconnected(_reason(exc)) from exc
        rcpt_code, rcpt_reply = smtp.getreply()
        data_code, data_reply = smtp.getreply()
        if mail_code != 250 or rcpt_code not in (250, 251) or data_code != 354:
            if data_code == 354:
                # A server that accepted DATA anyway gets an empty message it must not deliver
                # without a recipient; RSET below discards the transaction either way.
                smtp.send(b".\r\n")
                smtp.getreply()
            code, reply, command = next(
                (c, r, command) for c, r, command in ((mail_code, mail_reply, "MAIL FROM"),
                                                      (rcpt_code, rcpt_reply, "RCPT TO"),
                                                      (data_code, data_reply, "DATA"))
                if c not in (250, 251, 354)
            )
            if 421 in (mail_code, rcpt_code, data_code):
                self._drop()
            else:
                self._reset()
            return _outcome(code, reply, command)
        # RFC 5321 §4.5.2: a line starting with "." gets another "."; the message ends with CRLF.CRLF.
        body = _LEADING_DOT.sub(b"..", data)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body + b".\r\n")
        code, reply = smtp.getreply()
        if code == 421:
            self._drop()
        return Outcome("sent", code, "OK") if code == 250 else _outcome(code, reply, "end of DATA")

    def _reset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.close()
            except OSError:
                pass

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()


class CaptureTransport:
    """Keeps every message as an .eml file; the embedded default and a real test double."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def send(self, mail_from: str, rcpt_to: str, data: bytes) -> Outcome:
        self.open()
        name = f"{os.getpid()}-{os.urandom(6).hex()}.eml"
        tmp = self.directory / (name + ".tmp")
        envelope = f"X-Envelope-From: <{mail_from}>\r\nX-Envelope-To: <{rcpt_to}>\r\n".encode()
        tmp.write_bytes(envelope + data)
        tmp.replace(self.directory / name)
        return Outcome("sent", 250, "captured")

    def close(self) -> None:
        return None


def _outcome(code: int, message: bytes | str, command: str | None = None) -> Outcome:
    """The server's answer; a refusal names the command it answered, in the words Postfix's
    DSNs use ("in reply to RCPT TO command"): only a refusal at RCPT TO is about the address
    itself (RFC 5321 §3.3), and the bounce classifier reads the stage from these words."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    status = "temporary" if 400 <= code < 500 else "permanent" if code >= 500 else "sent"
    text = " ".join(text.split())
    if command is not None and code >= 400:
        text = f"{text} (in reply to {command} command)"
    return Outcome(status, code, text)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return " ".join(str(exc).split()) or type(exc).__name__


def make_transport(smtp_url: str, capture_dir: Path, timeout: float = 30.0, ca_file: str = "") -> Transport:
    """The transport named by SENDWELL_SMTP_URL."""
    if smtp_url == "capture":
        return CaptureTransport(capture_dir)
    return SmtpTransport(smtp_url, timeout=timeout, ca_file=ca_file)


def loopback_sessions_hint(smtp_url: str, sessions: int) -> str | None:
    """A hint when several SMTP sessions per process talk to a server on this machine.

    Sessions exist to hide a server's reply latency; on loopback there is none, and threads of
    one process then only contend for the GIL (and for SQLite's write lock through it): one
    session per worker process sends more (docs/delivery.md). The setting is left as given: a
    loopback port may also be a tunnel to a remote server, where sessions do help.
    """
    if sessions <= 1 or not smtp_url.startswith(("smtp://", "smtps://")):
        return None
    host = (urlsplit(smtp_url).hostname or "").lower()
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    return (f"the SMTP server is on this machine ({host}) and this process runs {sessions} sessions: "
            "with no network latency to hide, SENDWELL_SMTP_CONCURRENCY=1 and one worker per core "
            "usually send more (docs/delivery.md)")
