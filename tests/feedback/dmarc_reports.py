"""Realistic DMARC aggregate reports (Google-, Microsoft- and Yahoo-style) mailed as the receivers mail them."""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import format_datetime

from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.feedback.factories import DOMAIN

OURS = "203.0.113.5"  # Sendwell's own MTA: signs with d=DOMAIN
ESP = "198.51.100.7"  # a second sender (a CRM's ESP) signing with its own domain: unaligned
FORWARDER = "192.0.2.44"  # a university's forwarder: breaks SPF and the DKIM body hash
RUA = f"dmarc@{DOMAIN}"


def row(ip: str, count: int, *, dkim: str, spf: str, disposition: str = "none", header_from: str = DOMAIN,
        envelope_from: str = f"bounce.{DOMAIN}", sig: tuple[str, str] | None = (DOMAIN, "pass"),
        spf_result: str = "pass", reason: str = "") -> str:
    signature = (f"<dkim><domain>{sig[0]}</domain><selector>sendwell</selector><result>{sig[1]}</result></dkim>"
                 if sig else "")
    why = f"<reason><type>{reason}</type></reason>" if reason else ""
    return (f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
            f"<disposition>{disposition}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf>{why}</policy_evaluated>"
            f"</row><identifiers><header_from>{header_from}</header_from><envelope_from>{envelope_from}"
            f"</envelope_from></identifiers><auth_results>{signature}<spf><domain>{envelope_from}</domain>"
            f"<scope>mfrom</scope><result>{spf_result}</result></spf></auth_results></record>")


def report_xml(org: str, email: str, report_id: str, rows: list[str], *, domain: str = DOMAIN, p: str = "quarantine",
               namespace: str = "", extra: str = "", end: datetime | None = None) -> bytes:
    end = end or datetime.now(timezone.utc) - timedelta(hours=1)
    begin = end - timedelta(days=1)
    return (f'<?xml version="1.0" encoding="UTF-8" ?>\n<feedback{namespace}>\n<version>1.0</version>\n'
            f"<report_metadata><org_name>{org}</org_name><email>{email}</email>{extra}"
            f"<report_id>{report_id}</report_id><date_range><begin>{int(begin.timestamp())}</begin>"
            f"<end>{int(end.timestamp())}</end></date_range></report_metadata>\n"
            f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>{p}</p><sp>{p}</sp>"
            f"<pct>100</pct><fo>0</fo></policy_published>\n" + "\n".join(rows) + "\n</feedback>\n").encode()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def report_mail(submitter: str, report_id: str, attachment: bytes, filename: str, ctype: str,
                sender: str, to: str = RUA, domain: str = DOMAIN) -> bytes:
    """A report as the receivers mail it (RFC 7489 §7.2.1.1): the subject, a short text, the attachment."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>"
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = f"<{report_id}@{submitter}>"
    msg.set_content(f"This is an aggregate report from {submitter}.\n")
    maintype, subtype = ctype.split("/")
    msg.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def google(report_id: str = "11863357393851733711", **kw) -> bytes:
    xml = report_xml("google.com", "noreply-dmarc-support@google.com", report_id, [
        row(OURS, 900, dkim="pass", spf="pass"),
        row(OURS, 100, dkim="fail", spf="pass", sig=(DOMAIN, "fail")),
        row(ESP, 300, dkim="fail", spf="fail", disposition="quarantine", sig=("esp-mailer.example", "pass"),
            envelope_from="bounce.esp-mailer.example"),
    ], extra="<extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>", **kw)
    name = f"google.com!{DOMAIN}!1711756800!1711843199.zip"
    return report_mail("google.com", report_id, zipped(name[:-4] + ".xml", xml), name, "application/zip",
                       "noreply-dmarc-support@google.com")


def microsoft(report_id: str = "cfeafefe4129445e8c81018bd9177197") -> bytes:
    xml = report_xml("Enterprise Outlook", "dmarcreport@microsoft.com", report_id, [
        row(OURS, 500, dkim="pass", spf="pass"),
        row(FORWARDER, 20, dkim="fail", spf="fail", sig=(DOMAIN, "fail"), envelope_from="lists.uni.example",
            spf_result="fail", reason="forwarded"),
        # Mail of another domain of the same organisation is not ours to show.
        row(OURS, 7, dkim="pass", spf="pass", header_from="other.example", sig=("other.example", "pass")),
    ], namespace=' xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')
    name = f"enterprise.protection.outlook.com!{DOMAIN}!1711756800!1711843200.xml.gz"
    return report_mail("enterprise.protection.outlook.com", report_id, gzip.compress(xml), name, "application/gzip",
                       "DMARC Aggregate Report <dmarcreport@microsoft.com>")


def yahoo(report_id: str = "1711843200.452431") -> bytes:
    # RFC 9990's namespace; an octet-stream part known only by its file name.
    xml = report_xml("Yahoo", "dmarchelp@yahoo.com", report_id, [
        row(ESP, 200, dkim="fail", spf="fail", disposition="quarantine", sig=("esp-mailer.example", "pass"),
            envelope_from="bounce.esp-mailer.example"),
    ], namespace=' xmlns="urn:ietf:params:xml:ns:dmarc-2.0"')
    name = f"yahoo.com!{DOMAIN}!1711756800!1711843199.xml.zip"
    return report_mail("yahoo.com", report_id, zipped(name[:-4], xml), name, "application/octet-stream",
                       "Yahoo DMARC <dmarchelp@yahoo.com>")


def find_report_xml(raw: bytes) -> bytes:
    """The XML inside a report mail's zip attachment (to save it as a bare file)."""
    part = next(p for p in message_from_bytes(raw).walk() if p.get_filename())
    with zipfile.ZipFile(io.BytesIO(part.get_payload(decode=True))) as archive:
        return archive.read(archive.namelist()[0])


def cli_env(runtime) -> dict[str, str]:
    """The environment a `sendwell` command needs to work on the test's database."""
    return {"SENDWELL_DATA_DIR": str(runtime.settings.data_dir), "SENDWELL_DATABASE_URL": runtime.settings.database_url,
            "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER,
            "SENDWELL_FROM": f"Bright <sales@{DOMAIN}>"}
