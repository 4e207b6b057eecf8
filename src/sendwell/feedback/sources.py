"""Inbound sources that are not SMTP: maildir, mbox and IMAP mailboxes, read message by message."""

from __future__ import annotations

import email
import email.policy
import imaplib
import mailbox
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sendwell.config import Settings
from sendwell.feedback.inbound import route_of


class SourceError(ValueError):
    """The mailbox path or URL cannot be read."""


@dataclass
class MailItem:
    """One stored message, its best-known envelope recipients, and how to mark it done."""

    ref: str
    raw: bytes
    rcpt_to: list[str]
    done: Callable[[], None]


_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "X-Rcpt-To")


def envelope_recipients(raw: bytes, settings: Settings) -> list[str]:
    """The envelope recipients a stored message most likely had, at our inbound domains.

    Local delivery agents record the envelope in Delivered-To / X-Original-To; To and Cc are a
    fallback. A message naming none of our addresses is treated as sent to the bare bounce
    address (a dedicated bounce mailbox), so it still gets classified.
    """
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    msg = email.message_from_bytes(head + b"\n\n", policy=email.policy.compat32)
    for names in (_ENVELOPE_HEADERS, ("To", "Cc")):
        values = [str(v) for name in names for v in msg.get_all(name) or []]
        found = [a.lower() for _, a in getaddresses(values) if "@" in a]
        ours = [a for a in dict.fromkeys(found) if route_of(a, settings) != "foreign"]
        if ours:
            # Delivered-To is prepended at each hop; the first one of ours is the final mailbox.
            return ours[:1] if names is _ENVELOPE_HEADERS else ours
    return [f"bounce@{settings.inbound_domain_list[0]}"]


def open_source(location: str, settings: Settings) -> tuple[str, Iterator[MailItem]]:
    """(kind, items) for a maildir folder, an mbox file, a single .eml file or an imap(s):// URL."""
    if re.match(r"^imaps?://", location, re.I):
        return "imap", _imap(location, settings)
    path = Path(location)
    if path.is_dir():
        if not ((path / "cur").is_dir() and (path / "new").is_dir()):
            raise SourceError(f"{path}: a folder must be a maildir (with cur/ and new/)")
        return "maildir", _maildir(path, settings)
    if not path.is_file():
        raise SourceError(f"{path}: no such file or folder")
    with path.open("rb") as handle:
        first = handle.read(5)
    if first == b"From ":
        return "mbox", _mbox(path, settings)
    return "eml", _single(path, settings)


def _maildir(path: Path, settings: Settings) -> Iterator[MailItem]:
    # Read the files directly rather than through mailbox.Maildir, whose flag update rewrites
    # the message: the bytes must stay as delivered so a re-read is recognised as the same mail.
    # The listing is taken first: files moved from new/ to cur/ below must not be read twice.
    files = [f for sub in ("new", "cur") for f in sorted((path / sub).iterdir())]
    for file in files:
        if file.name.startswith(".") or not file.is_file():
            continue
        try:
            raw = file.read_bytes()
        except OSError:  # taken by another reader meanwhile
            continue
        yield MailItem(
            f"maildir:{file.name}", raw, envelope_recipients(raw, settings), lambda file=file: _mark_seen(path, file)
        )


def _mark_seen(path: Path, file: Path) -> None:
    """Maildir convention: a read message lives in cur/ with the S flag in its info suffix."""
    name, _, info = file.name.partition(":")
    flags = info[2:] if info.startswith("2,") else ""
    if file.parent.name == "cur" and "S" in flags:
        return
    target = path / "cur" / f"{name}:2,{''.join(sorted(set(flags + 'S')))}"
    try:
        os.rename(file, target)
    except OSError:
        pass


def _mbox(path: Path, settings: Settings) -> Iterator[MailItem]:
    box = mailbox.mbox(path, factory=None, create=False)
    if os.access(path, os.W_OK):
        box.lock()  # a local delivery agent may be appending meanwhile
    try:
        for index, key in enumerate(box.keys()):
            raw = box.get_bytes(key)
            # An mbox is read whole each time; record_feedback's raw_ref makes re-reading harmless.
            yield MailItem(f"mbox:{index}", raw, envelope_recipients(raw, settings), lambda: None)
    finally:
        try:
            box.unlock()
        except mailbox.ExternalClashError:
            pass
        box.close()


def _single(path: Path, settings: Settings) -> Iterator[MailItem]:
    raw = path.read_bytes()
    yield MailItem(f"file:{path.name}", raw, envelope_recipients(raw, settings), lambda: None)


def parse_imap_url(url: str) -> tuple[bool, str, int, str, str, str]:
    """(ssl, host, port, user, password, mailbox) from imaps://user:pass@host[:port]/MAILBOX."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("imap", "imaps") or not parts.hostname:
        raise SourceError("the IMAP URL must look like imaps://user:password@host/INBOX")
    ssl = parts.scheme.lower() == "imaps"
    port = parts.port or (993 if ssl else 143)
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ssl, parts.hostname, port, unquote(parts.username or ""), unquote(parts.password or ""), folder


def _imap(url: str, settings: Settings) -> Iterator[MailItem]:
    ssl, host, port, user, password, folder = parse_imap_url(url)
    try:
        client = imaplib.IMAP4_SSL(host, port) if ssl else imaplib.IMAP4(host, port)
        if not ssl and "STARTTLS" in client.capabilities:
            client.starttls()
        client.login(user, password)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise SourceError(f"cannot log in to {host}:{port} as {user!r}: {exc}") from exc
    try:
        status, _ = client.select(_quote(folder))
        if status != "OK":
            raise SourceError(f"no IMAP folder {folder!r} on {host}")
        # Unseen only: \Seen is set after each message is committed, so a crash re-reads it.
        status, data = client.uid("SEARCH", None, "UNSEEN")
        uids = data[0].split() if status == "OK" and data and data[0] else []
        for uid in uids:
            status, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts or [] if isinstance(p, tuple) and len(p) == 2), None)
            if status != "OK" or not isinstance(raw, bytes):
                continue

            def done(uid: bytes = uid) -> None:
                client.uid("STORE", uid, "+FLAGS", "(\\Seen)")

            yield MailItem(f"imap:{uid.decode()}", raw, envelope_recipients(raw, settings), done)
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
