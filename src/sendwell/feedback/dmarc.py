"""DMARC aggregate reports (RFC 7489 §7.2, appendix C; RFC 9990): find one in inbound mail, unpack it
within bounds and read its XML without trusting it.

Why not parsedmarc (the best-known parser): 11.1.0 pulls 20 distributions this project does not
have (lxml, maxminddb, mailsuite, IMAPClient, mail-parser, html2text, httpx2/httpcore2, h2, tqdm,
publicsuffixlist, …: +48 MB installed, 28 MB of it parsedmarc's own IP-geolocation database) and
takes 0.6-0.7 s to import; by default it queries public DNS-over-HTTPS and downloads lookup maps
for every report (`offline=True` turns that off), and it gives report dates in the server's local
time. The schema is small and stable, so this module reads it by hand (~150 lines) over
defusedxml, which refuses DTDs, entity declarations and external references before expat
expands anything (billion laughs, quadratic blow-up, XXE). Archives are unpacked by hand because
the bounds must be ours: one member, at most MAX_XML_BYTES out, whatever the archive declares.
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import logging
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from functools import lru_cache
from io import BytesIO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from sendwell.feedback.classify.headers import subject_of
from sendwell.feedback.classify.mime import normalise

log = logging.getLogger(__name__)

# A report attachment, still compressed / base64-decoded; the listener takes 10 MiB mails anyway.
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
# Uncompressed XML. Google's daily report for a sender of a million mails a day is a few MiB;
# a zip or gzip bomb stops here, read MAX_XML_BYTES + 1 bytes at most.
MAX_XML_BYTES = 32 * 1024 * 1024
MAX_RECORDS = 50_000  # rows in one report; each names a distinct (source IP, result) group
MAX_AUTH_RESULTS = 20  # DKIM or SPF results in one row (a signature per header is ~1-3)
MAX_ATTACHMENTS = 5  # candidate parts looked at in one mail

_ZIP = b"PK\x03\x04"
_GZIP = b"\x1f\x8b"
_REPORT_TYPES = frozenset({
    "application/zip", "application/x-zip-compressed", "application/x-zip", "application/gzip",
    "application/x-gzip", "application/gzip-compressed", "text/xml", "application/xml",
})
_REPORT_NAME = re.compile(r"\.(?:zip|gz|gzip|xml)$", re.IGNORECASE)
# RFC 7489 §7.2.1.1: receiver "!" policy-domain "!" begin "!" end [ "!" unique-id ] "." extension
_RFC_NAME = re.compile(r"^[^!\s]+![^!\s]+!\d+!\d+(?:![^!\s]*)?\.", re.IGNORECASE)
# RFC 7489 §7.2.1.1: "Report Domain: example.com Submitter: google.com Report-ID: <…>"
_SUBJECT = re.compile(r"report\s+domain\s*:.*submitter\s*:", re.IGNORECASE | re.DOTALL)


class ReportRefused(ValueError):
    """A DMARC report that is hostile or unreadable (bomb, DTD, bad XML, a field out of the schema)."""


@dataclass(frozen=True)
class AuthResult:
    domain: str
    result: str  # pass | fail | none | neutral | temperror | permerror | softfail | policy
    detail: str = ""  # the DKIM selector or the SPF scope


@dataclass
class Record:
    """One <record>: `count` mails from one source IP with the same results."""

    source_ip: str
    count: int
    disposition: str  # none | quarantine | reject
    dkim_aligned: bool  # policy_evaluated/dkim: a DKIM pass aligned with the From domain
    spf_aligned: bool  # policy_evaluated/spf: an SPF pass aligned with the From domain
    header_from: str
    envelope_from: str = ""
    dkim: list[AuthResult] = field(default_factory=list)
    spf: list[AuthResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # policy override types (forwarded, mailing_list, …)

    @property
    def dkim_pass(self) -> bool:
        """Any DKIM signature verified, aligned or not."""
        return any(r.result == "pass" for r in self.dkim)

    @property
    def spf_pass(self) -> bool:
        return any(r.result == "pass" for r in self.spf)


@dataclass
class Report:
    org_name: str
    org_email: str
    report_id: str
    begin: datetime
    end: datetime
    domain: str  # policy_published/domain: where the DMARC record was found
    policy: dict[str, str]
    records: list[Record]


# --- finding a report in a mail ----------------------------------------------------------

def looks_like_report(raw: bytes, *, file: bool = False) -> bool:
    """Cheap first test on every inbound mail: a report subject, an archive or XML part (or, for a `file`
    given to `feedback ingest`, a bare report)."""
    return (file and _bare(raw[:4096])) or bool(_HINT.search(raw[:_HINT_SCAN]))


_HINT_SCAN = 2 * 1024 * 1024
_HINT = re.compile(rb"(?i)^subject:[^\n]*report\s+domain|content-type:\s*(?:application/(?:x-)?(?:zip|gzip|xml)|"
                   rb"application/x-zip-compressed|application/gzip-compressed|text/xml)|name\s*=\s*\"?[^\"\n]*"
                   rb"\.(?:zip|gz|gzip|xml)\b", re.MULTILINE)


def _bare(head: bytes) -> bool:
    # `feedback ingest report.xml.gz`: the report file itself rather than the mail that carried it.
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((_ZIP, _GZIP)) or stripped.startswith((b"<?xml", b"<feedback"))


def find_report(raw: bytes, *, file: bool = False) -> Report | None:
    """The aggregate report a mail carries (or, for a `file`, the bare report it is), None if it carries none.

    ReportRefused when the mail presents itself as a report (the RFC 7489 subject or file name,
    or a <feedback> document) but the report is hostile or unreadable. An archive attached to
    any other mail that turns out hostile is skipped with a log line: it is not ours to judge.
    """
    if file and _bare(raw[:4096]):
        return parse_report(unpack(raw, "the file"))
    msg = _parse(raw)
    says = bool(_SUBJECT.search(subject_of(msg)))
    seen = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename() or ""
        ctype = part.get_content_type()
        if ctype not in _REPORT_TYPES and not _REPORT_NAME.search(name):
            continue
        seen += 1
        if seen > MAX_ATTACHMENTS:
            break
        claims = says or bool(_RFC_NAME.match(name))
        what = f"attachment {name or ctype!r}"
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            xml = unpack(payload, what)
            if xml is None and not claims:
                continue
            return parse_report(xml)
        except NotAReport as exc:
            if claims:
                raise ReportRefused(f"{what}: {exc}") from None
        except ReportRefused as exc:
            if claims:
                raise
            log.warning("inbound mail: %s skipped (not taken for a DMARC report): %s", what, exc)
    if says:
        raise ReportRefused("the subject names a DMARC report, but no attachment holds one")
    return None


class NotAReport(ReportRefused):
    """Well-formed, but not a DMARC aggregate report (another XML document, a zip of something else)."""


def unpack(payload: bytes, what: str) -> bytes | None:
    """The XML in a zip, gzip or plain attachment, at most MAX_XML_BYTES; None if it is none of those."""
    if len(payload) > MAX_ATTACHMENT_BYTES:
        raise ReportRefused(f"{what} is {len(payload)} bytes, over the {MAX_ATTACHMENT_BYTES}-byte limit")
    if payload.startswith(_ZIP):
        return _unzip(payload, what)
    if payload.startswith(_GZIP):
        return _gunzip(payload, what)
    if payload[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        if len(payload) > MAX_XML_BYTES:
            raise ReportRefused(f"{what}: XML over {MAX_XML_BYTES} bytes")
        return payload
    return None


def _unzip(payload: bytes, what: str) -> bytes:
    try:
        with zipfile.ZipFile(BytesIO(payload)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                # RFC 7489 §7.2.1.1: one report per archive; many members is a bomb's shape.
                raise ReportRefused(f"{what}: a report zip holds one file, this one holds {len(members)}")
            member = members[0]
            if member.file_size > MAX_XML_BYTES:
                raise ReportRefused(f"{what}: {member.filename!r} unpacks to {member.file_size} bytes, "
                                    f"over the {MAX_XML_BYTES}-byte limit")
            with archive.open(member) as handle:
                # The declared size can lie: never read more than the limit allows.
                data = handle.read(MAX_XML_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
        if isinstance(exc, ReportRefused):
            raise
        raise ReportRefused(f"{what}: unreadable zip ({exc})") from None
    if len(data) > MAX_XML_BYTES:
        raise ReportRefused(f"{what}: unpacks to over {MAX_XML_BYTES} bytes (declared {member.file_size})")
    return data


def _gunzip(payload: bytes, what: str) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(payload, MAX_XML_BYTES + 1)
    except zlib.error as exc:
        raise ReportRefused(f"{what}: unreadable gzip ({exc})") from None
    if len(data) > MAX_XML_BYTES:
        raise ReportRefused(f"{what}: unpacks to over {MAX_XML_BYTES} bytes")
    if not decompressor.eof:
        raise ReportRefused(f"{what}: truncated gzip")
    return data


# --- reading the XML ---------------------------------------------------------------------

def parse_report(xml: bytes | None) -> Report:
    """A Report from aggregate-report XML (RFC 7489 appendix C or RFC 9990, with or without namespace)."""
    if xml is None:
        raise NotAReport("neither zip, gzip nor XML")
    meta: dict[str, str] = {}
    policy: dict[str, str] = {}
    records: list[Record] = []
    try:
        # forbid_dtd: no report has a DOCTYPE, so none is read at all (defusedxml raises at its start).
        root = ""
        for _, element in iterparse(BytesIO(xml), events=("end",), forbid_dtd=True):
            tag = root = _local(element.tag)
            if tag == "report_metadata":
                meta = _metadata(element)
                element.clear()
            elif tag == "policy_published":
                policy = {_local(c.tag): _text(c) for c in element if len(c) == 0}
                element.clear()
            elif tag == "record":
                if len(records) >= MAX_RECORDS:
                    raise ReportRefused(f"more than {MAX_RECORDS} records")
                records.append(_record(element, len(records) + 1))
                element.clear()  # stream: a record is dropped once read
        if root != "feedback":  # the last element to end is the document's root
            raise NotAReport(f"the XML document is <{root}>, not a DMARC <feedback> report")
    except DefusedXmlException as exc:
        raise ReportRefused(f"XML with a DTD or entity declarations ({type(exc).__name__}); "
                            "no DMARC report has one") from None
    except ParseError as exc:
        raise ReportRefused(f"not well-formed XML: {exc}") from None
    for name in ("org_name", "report_id", "begin", "end"):
        if not meta.get(name):
            raise ReportRefused(f"report_metadata/{name} is missing")
    domain = policy.pop("domain", "").strip().lower().rstrip(".")
    if not domain:
        raise ReportRefused("policy_published/domain is missing")
    return Report(org_name=meta["org_name"][:200], org_email=meta.get("email", "")[:320],
                  report_id=meta["report_id"][:200], begin=_timestamp(meta["begin"], "begin"),
                  end=_timestamp(meta["end"], "end"), domain=domain[:253],
                  policy={k: v[:50] for k, v in list(policy.items())[:20]}, records=records)


@lru_cache(maxsize=512)
def _local(tag: str) -> str:
    """The tag without its namespace: RFC 9990 reports use one, RFC 7489 reports do not."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _child(element: Element, *path: str) -> Element | None:
    for name in path:
        found = next((c for c in element if _local(c.tag) == name), None)
        if found is None:
            return None
        element = found
    return element


def _metadata(element: Element) -> dict[str, str]:
    date_range = _child(element, "date_range")
    return {"org_name": _text(_child(element, "org_name")), "email": _text(_child(element, "email")),
            "report_id": _text(_child(element, "report_id")),
            "begin": _text(_child(date_range, "begin")) if date_range is not None else "",
            "end": _text(_child(date_range, "end")) if date_range is not None else ""}


_EARLIEST, _LATEST = 946684800, 4102444800  # 2000-01-01, 2100-01-01


def _timestamp(value: str, name: str) -> datetime:
    try:
        seconds = int(value)
    except ValueError:
        raise ReportRefused(f"report_metadata/date_range/{name} {value[:40]!r} is not a Unix time") from None
    if not _EARLIEST <= seconds <= _LATEST:
        raise ReportRefused(f"report_metadata/date_range/{name} {seconds} is out of range")
    return datetime.fromtimestamp(seconds, timezone.utc)


def _record(element: Element, number: int) -> Record:
    row = _child(element, "row")
    if row is None:
        raise ReportRefused(f"record {number}: no <row>")
    ip_text = _text(_child(row, "source_ip"))
    try:
        source_ip = str(ipaddress.ip_address(ip_text))
    except ValueError:
        raise ReportRefused(f"record {number}: row/source_ip {ip_text[:60]!r} is not an IP address") from None
    count_text = _text(_child(row, "count"))
    if not count_text.isdigit() or int(count_text) > 10**9:
        raise ReportRefused(f"record {number}: row/count {count_text[:40]!r} is not a message count")
    evaluated = _child(row, "policy_evaluated")
    if evaluated is None:
        raise ReportRefused(f"record {number}: no row/policy_evaluated")
    identifiers = _child(element, "identifiers") or _child(element, "identities")  # "identities": early drafts
    auth = _child(element, "auth_results")
    return Record(
        source_ip=source_ip,
        count=int(count_text),
        disposition=(_text(_child(evaluated, "disposition")) or "none").lower()[:20],
        dkim_aligned=_text(_child(evaluated, "dkim")).lower() == "pass",
        spf_aligned=_text(_child(evaluated, "spf")).lower() == "pass",
        header_from=_text(_child(identifiers, "header_from")).lower()[:253] if identifiers is not None else "",
        envelope_from=_text(_child(identifiers, "envelope_from")).lower()[:253] if identifiers is not None else "",
        dkim=_results(auth, "dkim", "selector"),
        spf=_results(auth, "spf", "scope"),
        reasons=[_text(_child(r, "type"))[:40] for r in evaluated if _local(r.tag) == "reason"][:10],
    )


def _results(auth: Element | None, kind: str, detail: str) -> list[AuthResult]:
    if auth is None:
        return []
    found = []
    for item in auth:
        if _local(item.tag) != kind:
            continue
        found.append(AuthResult(_text(_child(item, "domain")).lower()[:253],
                                (_text(_child(item, "result")) or "none").lower()[:20],
                                _text(_child(item, detail))[:100]))
        if len(found) >= MAX_AUTH_RESULTS:
            break
    return found


# --- mail helpers ------------------------------------------------------------------------

def _parse(raw: bytes) -> Message:
    return email.message_from_bytes(normalise(raw), policy=email.policy.compat32)
