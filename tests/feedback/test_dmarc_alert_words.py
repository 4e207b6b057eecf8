"""The sender alert from DMARC reports says what the provider did: refused, sent to spam, or only reported."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sendwell.db.models import Alert
from sendwell.db.session import transaction
from sendwell.feedback.inbound import process_inbound
from sendwell.i18n.messages import english
from tests.feedback.dmarc_reports import ESP, RUA, report_mail, report_xml, row, zipped


def google_report(report_id: str, disposition: str) -> bytes:
    xml = report_xml("google.com", "noreply-dmarc-support@google.com", report_id, [
        row(ESP, 300, dkim="fail", spf="fail", disposition=disposition, sig=("esp-mailer.example", "pass"),
            envelope_from="bounce.esp-mailer.example")])
    return report_mail("google.com", report_id, zipped(f"{report_id}.xml", xml), f"{report_id}.zip",
                       "application/zip", "noreply-dmarc-support@google.com")


def ingest(runtime, raw: bytes) -> Alert:
    with transaction(runtime.factory) as s:
        process_inbound(s, raw=raw, rcpt_to=[RUA], settings=runtime.settings)
    with transaction(runtime.factory) as s:
        alert = s.scalars(select(Alert)).one()
        s.expunge(alert)
        return alert


@pytest.mark.parametrize(("disposition", "words", "severity"), [
    ("none", "Google reports that the mail failed DMARC, but delivered it: ", "warning"),
    ("quarantine", "Google put the mail in spam (DMARC quarantine): ", "critical"),
    ("reject", "Google refused the mail: ", "critical"),
])
def test_the_alert_words_what_the_provider_did_with_the_mail(runtime, disposition, words, severity) -> None:
    alert = ingest(runtime, google_report(f"r-{disposition}", disposition))
    assert alert.message.startswith(words + f"source {ESP} fails DKIM alignment"), alert.message
    assert alert.severity == severity and alert.data["outcome"] in ("reported", "quarantined", "refused")
    if disposition == "none":
        assert "refused the mail" not in alert.message and "Nothing was refused" in alert.message
    # The stored template and params give the same English text (what the admin translates).
    assert english(alert.data["template"], alert.data["params"]) == alert.message


def test_a_later_refusal_heads_an_alert_that_began_as_a_report(runtime) -> None:
    ingest(runtime, google_report("first", "none"))
    alert = ingest(runtime, google_report("second", "reject"))
    assert alert.message.startswith("Google refused the mail: ") and alert.data["count"] == 2
