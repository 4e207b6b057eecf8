"""DMARC aggregate reports: Google-, Microsoft- and Yahoo-style reports mailed as real MIME messages,
through the listener and `feedback ingest`; the per-source table, de-duplication, hostile archives, the alert."""

from __future__ import annotations

import gzip
import io
import json
import mailbox
import smtplib
import tracemalloc
import zipfile
import zlib
from datetime import timedelta
from email.message import EmailMessage

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from sendwell.cli.main import cli, register_commands
from sendwell.db.models import Alert, Event, Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from sendwell.feedback import dmarc
from sendwell.feedback.dmarc import ReportRefused, find_report, parse_report
from sendwell.feedback.dmarc_store import (
    DmarcRecord,
    DmarcReport,
    ingest_mail,
    source_table,
)
from sendwell.feedback.inbound import process_inbound
from sendwell.feedback.listener import FeedbackListener
from tests.feedback.dmarc_reports import (
    ESP,
    FORWARDER,
    OURS,
    RUA,
    cli_env,
    find_report_xml,
    google,
    microsoft,
    report_mail,
    report_xml,
    row,
    yahoo,
    zipped,
)
from tests.feedback.factories import DOMAIN, reply

register_commands()

def ingest(session, runtime, raw: bytes, source: str = "smtp"):
    return process_inbound(session, raw=raw, rcpt_to=[RUA], settings=runtime.settings, source=source)


def _counts(runtime) -> tuple[int, int]:
    with transaction(runtime.factory) as s:
        return (s.scalar(select(func.count()).select_from(DmarcReport)),
                s.scalar(select(func.count()).select_from(DmarcRecord)))


# --- reading --------------------------------------------------------------------------------

def test_each_style_is_read_with_its_records() -> None:
    g = find_report(google())
    assert (g.org_name, g.report_id, g.domain, g.policy["p"]) == ("google.com", "11863357393851733711", DOMAIN,
                                                                 "quarantine")
    assert [(r.source_ip, r.count, r.dkim_aligned, r.spf_aligned, r.dkim_pass) for r in g.records] == [
        (OURS, 900, True, True, True), (OURS, 100, False, True, False), (ESP, 300, False, False, True)]
    assert g.records[2].disposition == "quarantine" and g.records[2].dkim[0].domain == "esp-mailer.example"
    assert g.end - g.begin == timedelta(days=1) and g.end.tzinfo is not None
    m = find_report(microsoft())
    assert m.org_name == "Enterprise Outlook" and m.records[1].reasons == ["forwarded"]
    y = find_report(yahoo())
    assert y.org_name == "Yahoo" and y.records[0].source_ip == ESP and y.records[0].count == 200


def test_mail_without_a_report_is_left_to_the_usual_routes() -> None:
    assert find_report(reply(sender="buyer@example.org", subject="Re: LED panels", body="Send a quote")) is None
    order = EmailMessage()
    order["Subject"], order["From"] = "Our order", "buyer@example.org"
    order.set_content("Attached, the order.")
    order.add_attachment(zipped("order.csv", b"sku,qty\nP-1,40\n"), maintype="application", subtype="zip",
                         filename="order.zip")
    assert find_report(order.as_bytes()) is None


# --- the three paths ---------------------------------------------------------------------------

def test_listener_stores_reports_once_and_builds_the_source_table(runtime) -> None:
    with FeedbackListener(runtime.factory, runtime.settings, port=free_port()) as listener:
        with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
            for raw in (google(), microsoft(), yahoo(), google()):
                client.sendmail("noreply-dmarc-support@google.com", [RUA], raw.replace(b"\n", b"\r\n"))
        assert [r.action for r in listener.handler.results] == ["dmarc_stored"] * 3 + ["dmarc_duplicate"]
        assert {r.route for r in listener.handler.results} == {"dmarc"}
    assert _counts(runtime) == (3, 6)  # the other.example row is dropped
    with transaction(runtime.factory) as s:
        table = source_table(s, settings=runtime.settings, days=7)
        # A report is mail about our mail: it never reaches the classifier, never suppresses anyone.
        assert s.scalar(select(func.count()).select_from(Event)) == 0
        assert s.scalar(select(func.count()).select_from(Suppression)) == 0
    assert table.reports == 3 and table.messages == 1500 + 500 + 20
    by_ip = {r.source_ip: r for r in table.sources}
    assert [r.source_ip for r in table.sources] == [OURS, ESP, FORWARDER]
    ours, esp, fwd = by_ip[OURS], by_ip[ESP], by_ip[FORWARDER]
    assert (ours.messages, ours.spf_pass, ours.dkim_pass, ours.spf_aligned, ours.dkim_aligned, ours.dmarc_pass) == (
        1500, 1500, 1400, 1500, 1400, 1500)
    assert not ours.failing and not ours.dkim_failing  # 93.3 % DKIM-aligned: above the 90 % target
    assert (esp.messages, esp.dkim_pass, esp.spf_pass, esp.dkim_aligned, esp.spf_aligned, esp.dmarc_pass) == (
        500, 500, 500, 0, 0, 0)
    assert esp.failing and esp.dispositions == {"quarantine": 500}
    assert esp.reporters == {"google.com", "yahoo"}
    assert fwd.failing and fwd.messages == 20 and fwd.rate(fwd.dmarc_pass) == 0


def test_a_failing_source_that_sends_our_mail_raises_the_sender_alert_with_its_fix(runtime) -> None:
    with transaction(runtime.factory) as s:
        for raw in (google(), microsoft()):
            ingest(s, runtime, raw)
    with transaction(runtime.factory) as s:
        alerts = s.scalars(select(Alert)).all()
        assert [(a.kind, a.severity, a.data["provider"]) for a in alerts] == [("sender_fault", "critical", "Google")]
        fix = alerts[0].data["fixes"][f"dmarc:{ESP}"]
        assert fix.startswith(f"source {ESP} fails DKIM alignment: it signs with d=esp-mailer.example; "
                              f"sign with d={DOMAIN}")
        assert f"add {ESP} to the SPF record of bounce.esp-mailer.example" in fix
        assert f"sign with d={DOMAIN}" in alerts[0].message
        # The forwarder fails too, but sends 20 of 2,020 mails: not ours, no alert for it.
        assert all(FORWARDER not in f for a in alerts for f in a.data["fixes"])
        count = alerts[0].data["count"]
    # The same report again changes nothing, the alert's count included.
    with transaction(runtime.factory) as s:
        assert [r.action for r in ingest(s, runtime, google())] == ["dmarc_duplicate"]
    with transaction(runtime.factory) as s:
        assert s.scalars(select(Alert)).one().data["count"] == count


def test_a_known_sending_ip_alerts_even_at_low_volume(runtime, tmp_path) -> None:
    from tests.conftest import make_settings

    if "sending_ips" not in type(runtime.settings).model_fields:
        pytest.skip("no SENDWELL_SENDING_IPS setting in this build")
    settings = make_settings(tmp_path / "d", database_url=runtime.settings.database_url,
                             sending_ips=f"{FORWARDER}/32")
    with transaction(runtime.factory) as s:
        process_inbound(s, raw=microsoft(), rcpt_to=[RUA], settings=settings)
    with transaction(runtime.factory) as s:
        alert = s.scalars(select(Alert)).one()
        assert alert.data["provider"] == "Microsoft" and alert.severity == "warning"
        assert alert.data["fixes"][f"dmarc:{FORWARDER}"].startswith(
            f"source {FORWARDER} fails DKIM alignment: sign with d={DOMAIN}")


def test_feedback_ingest_reads_reports_from_an_mbox_and_a_bare_report_file(runtime, tmp_path) -> None:
    box = mailbox.mbox(tmp_path / "rua.mbox")
    for raw in (google(), microsoft(), google()):
        box.add(raw)
    box.close()
    env = cli_env(runtime)
    result = CliRunner().invoke(cli, ["feedback", "ingest", "--json", str(tmp_path / "rua.mbox")], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"source": "mbox", "messages": 3,
                                         "actions": {"dmarc_duplicate": 1, "dmarc_stored": 2}}
    # The report file itself, as saved from a mail client.
    bare = tmp_path / f"yahoo.com!{DOMAIN}!1711756800!1711843199.xml.gz"
    bare.write_bytes(gzip.compress(find_report_xml(yahoo())))
    again = CliRunner().invoke(cli, ["feedback", "ingest", "--json", str(bare)], env=env, catch_exceptions=False)
    assert json.loads(again.output)["actions"] == {"dmarc_stored": 1}
    assert _counts(runtime) == (3, 6)
    shown = CliRunner().invoke(cli, ["feedback", "dmarc", "--json", "--days", "7"], env=env, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert (data["reports"], data["messages"]) == (3, 2020)
    assert [(s["source_ip"], s["messages"], s["failing"]) for s in data["sources"]] == [
        (OURS, 1500, False), (ESP, 500, True), (FORWARDER, 20, True)]
    assert data["sources"][0]["dkim_aligned"] == pytest.approx(1400 / 1500)
    human = CliRunner().invoke(cli, ["feedback", "dmarc"], env=env, catch_exceptions=False).output
    lines = human.splitlines()
    assert lines[0].split()[:3] == ["SOURCE", "MESSAGES", "SPF"]
    assert lines[2].split()[:2] == [ESP, "500"] and "FAILING" in lines[2] and "quarantine 500" in lines[2]
    assert lines[-1] == "3 reports, 2020 messages in the last 30 days."
    # Older reports fall out of a shorter window.
    assert "No DMARC aggregate report" not in human


# --- hostile and foreign reports ----------------------------------------------------------------

def _gzip_of_zeros(size: int) -> bytes:
    """A valid gzip of `size` zero bytes after an XML start, built fast: one full-flushed deflate block
    of 1 MiB of zeros, repeated (a full flush resets the dictionary, so every block is the same)."""
    chunk = b"\0" * (1024 * 1024)
    start = b'<?xml version="1.0"?><feedback><report_metadata><org_name>'
    head = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    opening = head.compress(start) + head.flush(zlib.Z_FULL_FLUSH)
    block = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = block.compress(chunk) + block.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(start)
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    length = len(start) + size // len(chunk) * len(chunk)
    end = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + opening + body * (size // len(chunk)) + end
            + crc.to_bytes(4, "little") + (length & 0xFFFFFFFF).to_bytes(4, "little"))


def _zip_of_zeros(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("bomb.xml", "w", force_zip64=True) as handle:
        chunk = b"\0" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            handle.write(chunk)
    return buffer.getvalue()


def _refused(runtime, raw: bytes, caplog) -> str:
    caplog.clear()
    with transaction(runtime.factory) as s:
        results = ingest(s, runtime, raw)
    assert [r.action for r in results] == ["dmarc_refused"]
    assert _counts(runtime) == (0, 0)
    assert any("DMARC report refused" in r.getMessage() for r in caplog.records)
    return caplog.records[-1].getMessage()


def test_a_gzip_bomb_is_refused_within_bounded_memory(runtime, caplog) -> None:
    bomb = _gzip_of_zeros(1024 * 1024 * 1024)  # 1 GiB of zeros in about 1 MiB
    assert len(bomb) < 2 * 1024 * 1024
    raw = report_mail("google.com", "bomb-1", bomb, f"google.com!{DOMAIN}!1!2.xml.gz", "application/gzip",
                      "noreply-dmarc-support@google.com")
    tracemalloc.start()
    try:
        message = _refused(runtime, raw, caplog)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "unpacks to over" in message
    assert peak < 4 * dmarc.MAX_XML_BYTES  # the limit, the mail and its decoded copy; never the gigabyte


def test_a_zip_bomb_is_refused_by_its_declared_and_by_its_real_size(runtime, caplog) -> None:
    bomb = _zip_of_zeros(dmarc.MAX_XML_BYTES + 1024 * 1024)
    raw = report_mail("google.com", "bomb-2", bomb, f"google.com!{DOMAIN}!1!2.zip", "application/zip",
                      "noreply-dmarc-support@google.com")
    assert "unpacks to" in _refused(runtime, raw, caplog)
    # The same archive lying about its size in the central directory: reading stops at the limit.
    lying = bytearray(bomb)
    at = lying.rfind(b"PK\x01\x02")  # the central directory entry: uncompressed size at offset 24
    lying[at + 24:at + 28] = (1000).to_bytes(4, "little")
    raw = report_mail("google.com", "bomb-3", bytes(lying), f"google.com!{DOMAIN}!1!2.zip", "application/zip",
                      "noreply-dmarc-support@google.com")
    _refused(runtime, raw, caplog)
    # Many members: a report zip holds one file.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(3):
            archive.writestr(f"r{i}.xml", b"<feedback/>")
    raw = report_mail("google.com", "bomb-4", buffer.getvalue(), f"google.com!{DOMAIN}!1!2.zip", "application/zip",
                      "noreply-dmarc-support@google.com")
    assert "holds 3" in _refused(runtime, raw, caplog)


def test_entity_expansion_and_external_entities_are_refused(runtime, caplog) -> None:
    laughs = (b'<?xml version="1.0"?>\n<!DOCTYPE feedback [\n<!ENTITY lol "lol">\n'
              + b"".join(b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i else b"&lol;") * 10)
                         for i in range(1, 10))
              + b"]>\n<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>")
    raw = report_mail("google.com", "laughs", zipped("r.xml", laughs), f"google.com!{DOMAIN}!1!2.zip",
                      "application/zip", "noreply-dmarc-support@google.com")
    assert "DTD" in _refused(runtime, raw, caplog)
    xxe = (b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b"<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>")
    raw = report_mail("google.com", "xxe", xxe, f"google.com!{DOMAIN}!1!2.xml", "text/xml",
                      "noreply-dmarc-support@google.com")
    assert "DTD" in _refused(runtime, raw, caplog)


def test_huge_xml_and_too_many_records_are_refused(runtime, caplog, monkeypatch) -> None:
    huge = b'<?xml version="1.0"?><feedback>' + b" " * dmarc.MAX_XML_BYTES + b"</feedback>"
    with transaction(runtime.factory) as s:
        results = process_inbound(s, raw=huge, rcpt_to=[f"bounce@{DOMAIN}"], settings=runtime.settings,
                                  source="eml")
        # Only a file is taken for a bare report: over SMTP such bytes are no mail, and no report.
        assert find_report(huge[:1000]) is None
    assert [r.action for r in results] == ["dmarc_refused"]
    monkeypatch.setattr(dmarc, "MAX_RECORDS", 2)
    assert "more than 2 records" in _refused(runtime, google("many"), caplog)


def test_malformed_reports_name_the_field(runtime, caplog) -> None:
    bad_ip = report_xml("google.com", "noreply-dmarc-support@google.com", "bad-ip",
                        [row(OURS, 5, dkim="pass", spf="pass"), row("300.1.2.3", 5, dkim="pass", spf="pass")])
    with pytest.raises(ReportRefused, match=r"record 2: row/source_ip '300.1.2.3' is not an IP address"):
        parse_report(bad_ip)
    no_id = report_xml("google.com", "noreply-dmarc-support@google.com", "", [row(OURS, 5, dkim="pass", spf="pass")])
    with pytest.raises(ReportRefused, match="report_metadata/report_id is missing"):
        parse_report(no_id)
    with pytest.raises(ReportRefused, match="not well-formed"):
        parse_report(b"<feedback><report_metadata>")
    raw = report_mail("google.com", "x", b"<html>not a report</html>", f"google.com!{DOMAIN}!1!2.xml", "text/xml",
                      "noreply-dmarc-support@google.com")
    assert "not a DMARC <feedback> report" in _refused(runtime, raw, caplog)


def test_a_report_about_another_domain_is_ignored(runtime, caplog) -> None:
    xml = report_xml("google.com", "noreply-dmarc-support@google.com", "foreign-1",
                     [row(OURS, 50, dkim="pass", spf="pass", header_from="victim.example")], domain="victim.example")
    raw = report_mail("google.com", "foreign-1", zipped("r.xml", xml), "google.com!victim.example!1!2.zip",
                      "application/zip", "noreply-dmarc-support@google.com", domain="victim.example")
    with transaction(runtime.factory) as s:
        assert [r.action for r in ingest(s, runtime, raw)] == ["dmarc_foreign"]
    assert _counts(runtime) == (0, 0)
    assert any("not bright-lighting.example" in r.getMessage() for r in caplog.records)


def test_a_hostile_archive_on_an_ordinary_reply_is_skipped_not_unpacked_whole(runtime, caplog) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "buyer@example.org", f"sales@{DOMAIN}", "Re: LED panels"
    msg.set_content("Our drawings attached.")
    msg.add_attachment(_gzip_of_zeros(64 * 1024 * 1024), maintype="application", subtype="gzip",
                       filename="drawings.gz")
    with transaction(runtime.factory) as s:
        results = process_inbound(s, raw=msg.as_bytes(), rcpt_to=[f"sales@{DOMAIN}"], settings=runtime.settings)
    assert [(r.route, r.action) for r in results] == [("reply", "ignored")]
    assert _counts(runtime) == (0, 0)
    assert any("not taken for a DMARC report" in r.getMessage() for r in caplog.records)


def test_a_report_for_a_foreign_recipient_only_is_not_stored(runtime) -> None:
    with transaction(runtime.factory) as s:
        results = process_inbound(s, raw=google(), rcpt_to=["dmarc@elsewhere.example"], settings=runtime.settings)
    assert [(r.route, r.action) for r in results] == [("foreign", "refused")]
    assert _counts(runtime) == (0, 0)


def test_ingest_mail_ignores_ordinary_mail(runtime) -> None:
    with transaction(runtime.factory) as s:
        assert ingest_mail(s, raw=reply(sender="a@example.org", subject="hi", body="hello"),
                           settings=runtime.settings, source="smtp") is None

